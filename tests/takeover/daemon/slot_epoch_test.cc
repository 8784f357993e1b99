// The embedding contract of TakeoverDaemon (SlotEvent::epoch, the fencing token a server writes to
// its store and refuses to go back on): every holding of a slot gets a larger epoch than the one
// before, also when the same node takes the slot back with nobody in between -- after a restart
// (the slot was shed meanwhile) or after a drain and undrain. Runs the core in the deterministic
// simulation (tests/takeover/sim), no kernel.
#include <chrono>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "tests/takeover/sim/simulation.h"
#include "takeover/core/node.h"

namespace baton::takeover {
namespace {

using sim::HoldEvent;
using sim::SimOptions;
using sim::Simulation;

using std::chrono::milliseconds;

// Every add of `slot` in the history, in order: (node, epoch).
std::vector<std::pair<NodeId, uint64_t>> Adds(const Simulation& sim, uint32_t slot) {
  std::vector<std::pair<NodeId, uint64_t>> out;
  for (const HoldEvent& e : sim.history()) {
    if (e.added && e.slot == slot) out.emplace_back(e.node, e.epoch);
  }
  return out;
}

void ExpectStrictlyGrowing(const std::vector<std::pair<NodeId, uint64_t>>& adds, uint64_t seed) {
  for (size_t i = 1; i < adds.size(); ++i) {
    EXPECT_GT(adds[i].second, adds[i - 1].second)
        << "seed " << seed << ": node " << adds[i].first << " took the slot with epoch "
        << adds[i].second << " after node " << adds[i - 1].first << " held epoch "
        << adds[i - 1].second;
  }
}

// Node 2 holds slot 1, crashes; nobody has room for slot 1 (shed); node 2 restarts and takes it
// back: a new epoch, or a server fencing on the epoch would think the new holding deposed.
TEST(SlotEpochTest, SameNodeTakingASlotBackGetsANewEpoch) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SimOptions o;
    o.seed = seed;
    o.group.peers = {{1, 30, 1}, {2, 20, 1}, {3, 10, 0}};
    o.group.num_slots = 2;
    Simulation sim(o);
    for (NodeId id : sim.ids()) sim.Start(id);
    sim.RunUntil(milliseconds(200));
    ASSERT_EQ(sim.Holder(1), 2u) << "seed " << seed;
    sim.Crash(2);
    sim.RunUntil(sim.now() + milliseconds(200));
    ASSERT_EQ(sim.Holder(1), kNoNode) << "seed " << seed << ": slot 1 should be shed";
    sim.Start(2);
    sim.RunUntil(sim.now() + milliseconds(300));
    ASSERT_EQ(sim.Holder(1), 2u) << "seed " << seed;
    const auto adds = Adds(sim, 1);
    ASSERT_EQ(adds.size(), 2u) << "seed " << seed;
    ExpectStrictlyGrowing(adds, seed);
    ASSERT_TRUE(sim.ok()) << "seed " << seed << ": " << sim.violations()[0];
  }
}

// Drain of the only node with room, then undrain: the slot comes back to it with a new epoch.
TEST(SlotEpochTest, DrainAndUndrainGiveANewEpoch) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SimOptions o;
    o.seed = seed;
    o.group.peers = {{1, 30, 1}, {2, 20, 0}, {3, 10, 0}};
    o.group.num_slots = 1;
    Simulation sim(o);
    for (NodeId id : sim.ids()) sim.Start(id);
    sim.RunUntil(milliseconds(200));
    ASSERT_EQ(sim.Holder(0), 1u) << "seed " << seed;
    sim.DrainSlot(1, 0, true);
    sim.RunUntil(sim.now() + milliseconds(100));
    ASSERT_EQ(sim.Holder(0), kNoNode) << "seed " << seed;
    sim.DrainSlot(1, 0, false);
    sim.RunUntil(sim.now() + milliseconds(200));
    ASSERT_EQ(sim.Holder(0), 1u) << "seed " << seed;
    const auto adds = Adds(sim, 0);
    ASSERT_EQ(adds.size(), 2u) << "seed " << seed;
    ExpectStrictlyGrowing(adds, seed);
    ASSERT_TRUE(sim.ok()) << "seed " << seed << ": " << sim.violations()[0];
  }
}

}  // namespace
}  // namespace baton::takeover

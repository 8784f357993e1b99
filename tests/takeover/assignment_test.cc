// Unit tests of the pool assignment (takeover/core/assignment.h): capacity,
// stickiness, load shedding, even spread, rebalancing, drained slots, and a
// seeded random check of its invariants.
#include "takeover/core/assignment.h"

#include <algorithm>
#include <map>
#include <random>

#include "gtest/gtest.h"

namespace baton::takeover {
namespace {

constexpr NodeId kNo = kNoNode;

std::map<NodeId, int> Loads(const Assignment& a) {
  std::map<NodeId, int> loads;
  for (NodeId id : a.slot_owner) {
    if (id != kNo) ++loads[id];
  }
  return loads;
}

// The paper's Figure 16 start: three servers of capacity 2, three addresses,
// nothing held: one address each, in priority order.
TEST(TakeoverAssignment, FreshStartSpreadsOnePerNodeByPriority) {
  AssignmentInput in;
  in.num_slots = 3;
  in.candidates = {{3, 10, 2}, {1, 30, 2}, {2, 20, 2}};
  const Assignment a = Assign(in);
  EXPECT_EQ(a.slot_owner, (std::vector<NodeId>{1, 2, 3}));
  EXPECT_EQ(a.shed, 0u);
}

TEST(TakeoverAssignment, FailedHoldersSlotGoesToLeastLoadedThenPriority) {
  AssignmentInput in;
  in.num_slots = 3;
  in.candidates = {{1, 30, 2}, {2, 20, 2}};  // 3 failed.
  in.holders = {1, 2, 3};
  EXPECT_EQ(Assign(in).slot_owner, (std::vector<NodeId>{1, 2, 1}));
  // Node 1 already carries two: the free slot goes to the less loaded node 2.
  in.num_slots = 4;
  in.holders = {1, 2, 1, kNo};
  EXPECT_EQ(Assign(in).slot_owner, (std::vector<NodeId>{1, 2, 1, 2}));
}

TEST(TakeoverAssignment, StickyRecoveredNodeGetsOnlyFreeSlots) {
  AssignmentInput in;
  in.num_slots = 3;
  in.candidates = {{1, 30, 2}, {2, 20, 2}, {3, 10, 2}};
  in.holders = {1, 2, 1};  // 3 came back; 1 carries its old slot.
  EXPECT_EQ(Assign(in).slot_owner, (std::vector<NodeId>{1, 2, 1}));
  in.rebalance = true;  // 1 carries 2, 3 carries 0: the last slot of 1 moves.
  EXPECT_EQ(Assign(in).slot_owner, (std::vector<NodeId>{1, 2, 3}));
}

TEST(TakeoverAssignment, ShedsTheLowestRankedSlotsAndTakesThemUpAgain) {
  AssignmentInput in;
  in.num_slots = 3;
  in.candidates = {{1, 30, 2}};
  in.holders = {1, kNo, 1};
  Assignment a = Assign(in);
  // Total capacity 2: slots 0 and 1 are served, slot 2 is shed even though
  // node 1 held it (it is the least important).
  EXPECT_EQ(a.slot_owner, (std::vector<NodeId>{1, 1, kNo}));
  EXPECT_EQ(a.shed, 1u);
  in.candidates.push_back({2, 20, 2});  // Capacity returns.
  in.holders = {1, 1, kNo};
  a = Assign(in);
  EXPECT_EQ(a.slot_owner, (std::vector<NodeId>{1, 1, 2}));
  EXPECT_EQ(a.shed, 0u);
}

TEST(TakeoverAssignment, LoweredCapacityKeepsTheMostImportantSlots) {
  AssignmentInput in;
  in.num_slots = 4;
  in.candidates = {{1, 30, 1}, {2, 20, 3}};
  in.holders = {2, 1, 1, 1};  // Node 1 carried three; its capacity is now 1.
  EXPECT_EQ(Assign(in).slot_owner, (std::vector<NodeId>{2, 1, 2, 2}));
}

TEST(TakeoverAssignment, ZeroCapacityAndNonCandidateHolders) {
  AssignmentInput in;
  in.num_slots = 2;
  in.candidates = {{1, 99, 0}, {2, 1, -5}, {3, 0, 1}};
  in.holders = {7, kNo};  // 7 is not a candidate (not heard): its slot is free.
  const Assignment a = Assign(in);
  EXPECT_EQ(a.slot_owner, (std::vector<NodeId>{3, kNo}));
  EXPECT_EQ(a.shed, 1u);
  in.candidates.clear();
  EXPECT_EQ(Assign(in).slot_owner, (std::vector<NodeId>{kNo, kNo}));
}

TEST(TakeoverAssignment, DrainedSlotGoesElsewhere) {
  AssignmentInput in;
  in.num_slots = 2;
  in.candidates = {{1, 30, 2}, {2, 20, 2}};
  in.holders = {1, kNo};
  in.excluded = {{0, 1}, {1, 2}};
  EXPECT_EQ(Assign(in).slot_owner, (std::vector<NodeId>{2, 1}));
}

// Invariants over random inputs: never above a capacity, exactly the
// min(S, C) most important slots assigned, holders within capacity kept,
// independent of the order of the candidate list, rebalanced loads even.
TEST(TakeoverAssignment, RandomInputsKeepTheInvariants) {
  for (uint64_t seed = 1; seed <= 2000; ++seed) {
    std::mt19937_64 g(seed);
    AssignmentInput in;
    in.num_slots = 1 + static_cast<uint32_t>(g() % 40);
    const int n = 1 + static_cast<int>(g() % 8);
    int64_t total = 0;
    for (int i = 0; i < n; ++i) {
      const int cap = static_cast<int>(g() % 6);
      in.candidates.push_back({static_cast<NodeId>(i + 1), static_cast<int>(g() % 3), cap});
      total += cap;
    }
    for (uint32_t k = 0; k < in.num_slots; ++k) {
      in.holders.push_back(g() % 3 == 0 ? kNo : static_cast<NodeId>(1 + g() % (n + 2)));
    }
    in.rebalance = g() % 2 == 0;
    const Assignment a = Assign(in);
    const uint32_t served = static_cast<uint32_t>(std::min<int64_t>(in.num_slots, total));
    ASSERT_EQ(a.shed, in.num_slots - served) << "seed " << seed;
    std::map<NodeId, int> cap;
    for (const Candidate& c : in.candidates) cap[c.id] = c.capacity;
    for (uint32_t k = 0; k < in.num_slots; ++k) {
      EXPECT_EQ(a.slot_owner[k] != kNo, k < served) << "seed " << seed << " slot " << k;
    }
    const std::map<NodeId, int> loads = Loads(a);
    for (const auto& [id, load] : loads) EXPECT_LE(load, cap[id]) << "seed " << seed;
    if (!in.rebalance) {
      // Sticky: a holder keeps its served slots up to its capacity.
      std::map<NodeId, int> kept;
      for (uint32_t k = 0; k < served; ++k) {
        const NodeId h = in.holders[k];
        if (!cap.count(h) || kept[h] >= cap[h]) continue;
        ++kept[h];
        EXPECT_EQ(a.slot_owner[k], h) << "seed " << seed << " slot " << k;
      }
    } else {
      for (const Candidate& x : in.candidates) {
        for (const Candidate& y : in.candidates) {
          const int lx = loads.count(x.id) ? loads.at(x.id) : 0;
          const int ly = loads.count(y.id) ? loads.at(y.id) : 0;
          if (ly < y.capacity) {
            EXPECT_LE(lx - ly, 1) << "seed " << seed;
          }
        }
      }
    }
    AssignmentInput shuffled = in;
    std::shuffle(shuffled.candidates.begin(), shuffled.candidates.end(), g);
    EXPECT_EQ(Assign(shuffled).slot_owner, a.slot_owner) << "seed " << seed;
  }
}

}  // namespace
}  // namespace baton::takeover

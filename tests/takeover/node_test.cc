// Unit tests of the take-over node, driven message by message with explicit
// clocks: grants, refusals with their wait, renewal, expiry, epochs, drain,
// restart quiet, configuration errors.
#include "takeover/core/node.h"

#include <map>

#include "gtest/gtest.h"
#include "takeover/core/wire.h"

namespace baton::takeover {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::seconds;

GroupConfig Group3() {
  GroupConfig g;
  g.peers = {{1, 30, 1}, {2, 20, 1}, {3, 10, 1}};
  return g;
}

// Three nodes on one shared clock with instant, hand-routed delivery.
class Net {
 public:
  explicit Net(GroupConfig g) : group_(std::move(g)) {
    for (const PeerConfig& p : group_.peers) Start(p.id);
  }
  void Start(NodeId id) {
    auto n = Node::Create(group_, id, now_);
    EXPECT_TRUE(n.ok()) << n.status();
    nodes_[id] = std::move(*n);
    up_[id] = true;
  }
  void Crash(NodeId id) { up_[id] = false; }
  Node& node(NodeId id) { return *nodes_.at(id); }
  // Advances time in 100 µs steps, ticking due nodes and delivering every
  // message instantly (unless cut).
  void RunFor(Time d) {
    const Time end = now_ + d;
    while (now_ < end) {
      now_ += microseconds(100);
      for (auto& [id, n] : nodes_) {
        if (up_[id] && n->NextTick() <= now_) n->Tick(now_);
      }
      Pump();
    }
  }
  void Pump() {
    for (int guard = 0; guard < 100; ++guard) {
      bool any = false;
      for (auto& [id, n] : nodes_) {
        if (!up_[id]) continue;
        for (const Action& a : n->TakeActions()) actions_[id].push_back(a);
        for (Outgoing& o : n->TakeMessages()) {
          any = true;
          if (up_[o.to] && !cut_[id] && !cut_[o.to]) {
            nodes_.at(o.to)->Receive(id, o.payload, now_);
          }
        }
      }
      if (!any) return;
    }
  }
  NodeId Holder() {
    NodeId h = kNoNode;
    for (auto& [id, n] : nodes_) {
      if (!up_[id]) continue;
      if (n->GetStatus(now_).slots[0].held_by_me) {
        EXPECT_EQ(h, kNoNode) << "two holders";
        h = id;
      }
    }
    return h;
  }
  Time now() const { return now_; }
  std::map<NodeId, std::vector<Action>> actions_;
  std::map<NodeId, bool> cut_;

 private:
  GroupConfig group_;
  Time now_{1'000'000'000};
  std::map<NodeId, std::unique_ptr<Node>> nodes_;
  std::map<NodeId, bool> up_;
};

TEST(TakeoverNode, CreateRejectsBadConfig) {
  GroupConfig g = Group3();
  EXPECT_EQ(Node::Create(g, 9, Time(0)).status().code(), absl::StatusCode::kInvalidArgument);
  GroupConfig dup = g;
  dup.peers.push_back({1, 5, 1});
  EXPECT_FALSE(Node::Create(dup, 1, Time(0)).ok());
  GroupConfig empty;
  EXPECT_FALSE(Node::Create(empty, 1, Time(0)).ok());
  GroupConfig short_lease = g;
  short_lease.timing.lease = short_lease.timing.heartbeat;
  EXPECT_FALSE(Node::Create(short_lease, 1, Time(0)).ok());
  GroupConfig drift = g;
  drift.timing.max_drift = 0.5;
  EXPECT_FALSE(Node::Create(drift, 1, Time(0)).ok());
  GroupConfig slots = g;
  slots.num_slots = 0;
  EXPECT_FALSE(Node::Create(slots, 1, Time(0)).ok());
  EXPECT_TRUE(Node::Create(g, 1, Time(0)).ok());
  GroupConfig shrink = g;
  shrink.timing.shrink_after = milliseconds(500);
  PersistentState unknown{{2, {1, 7}, {}, {}, {}}, {}, {}};
  EXPECT_FALSE(Node::Create(shrink, 1, Time(0), unknown).ok());
  PersistentState restored{{2, {1, 2}, {}, {}, {}}, {7}, {2}};
  auto n = Node::Create(shrink, 1, Time(0), restored);
  ASSERT_TRUE(n.ok());
  const Node::Status st = (*n)->GetStatus(Time(0));
  EXPECT_EQ(st.membership.version, 2u);
  EXPECT_EQ(st.membership.members, (std::vector<NodeId>{1, 2}));
  EXPECT_EQ(st.slots[0].epoch, 7u);  // The restored epoch floor.
  EXPECT_FALSE((*n)->TakeStateToPersist().has_value());
}

TEST(TakeoverNode, GrantHoldPadsForDrift) {
  Timing t;
  // 25 ms × 1.001/0.999 = 25.05005 ms, + 0.5 ms margin.
  EXPECT_NEAR(static_cast<double>(GrantHold(t).count()), 25.55005e6, 1e3);
  EXPECT_EQ(StartupQuiet(t), milliseconds(30));
  Timing t100 = Timing::ForHeartbeat(milliseconds(100));
  EXPECT_EQ(t100.lease, milliseconds(250));
  EXPECT_EQ(t100.remove_margin, milliseconds(20));
}

TEST(TakeoverNode, HighestPriorityBecomesHolderWithAddThenAnnounce) {
  Net net(Group3());
  net.RunFor(milliseconds(100));
  EXPECT_EQ(net.Holder(), 1u);
  const std::vector<Action>& a = net.actions_[1];
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].kind, Action::Kind::kAddAddress);
  EXPECT_EQ(a[1].kind, Action::Kind::kAnnounce);
  EXPECT_EQ(a[0].epoch, 1u);
  EXPECT_TRUE(net.actions_[2].empty());
  const Node::Status st = net.node(2).GetStatus(net.now());
  EXPECT_EQ(st.slots[0].holder, 1u);
  EXPECT_EQ(st.slots[0].epoch, 1u);
  EXPECT_EQ(st.view.size(), 3u);
}

TEST(TakeoverNode, RenewalKeepsLeaseAndEpoch) {
  Net net(Group3());
  net.RunFor(milliseconds(100));
  ASSERT_EQ(net.Holder(), 1u);
  net.RunFor(milliseconds(1000));
  EXPECT_EQ(net.Holder(), 1u);
  EXPECT_EQ(net.actions_[1].size(), 2u);  // No remove, no second add.
  const Node::Status st = net.node(1).GetStatus(net.now());
  EXPECT_EQ(st.slots[0].epoch, 1u);
  EXPECT_GT(st.slots[0].lease_remaining, milliseconds(10));
}

TEST(TakeoverNode, CutOffHolderRemovesBeforeLeaseEndsAndNextGetsHigherEpoch) {
  Net net(Group3());
  net.RunFor(milliseconds(100));
  ASSERT_EQ(net.Holder(), 1u);
  net.cut_[1] = true;
  const Time cut = net.now();
  net.RunFor(milliseconds(25));
  // The lease is 25 ms from the last renewal sent (≤ cut); removal 2 ms before.
  ASSERT_EQ(net.actions_[1].size(), 3u);
  EXPECT_EQ(net.actions_[1][2].kind, Action::Kind::kRemoveAddress);
  net.RunFor(milliseconds(30));
  EXPECT_EQ(net.Holder(), 2u);
  ASSERT_FALSE(net.actions_[2].empty());
  EXPECT_EQ(net.actions_[2][0].kind, Action::Kind::kAddAddress);
  EXPECT_EQ(net.actions_[2][0].epoch, 2u);
  EXPECT_LT(net.now() - cut, milliseconds(60));
}

TEST(TakeoverNode, CrashedHolderIsReplacedAfterGrantsLapse) {
  Net net(Group3());
  net.RunFor(milliseconds(100));
  net.Crash(1);
  const Time crash = net.now();
  Time took = Time::max();
  for (int i = 0; i < 500 && took == Time::max(); ++i) {
    net.RunFor(microseconds(100));
    if (net.Holder() == 2u) took = net.now() - crash;
  }
  EXPECT_LE(took, GrantHold(Timing{}) + milliseconds(1));
  EXPECT_GE(took, GrantHold(Timing{}) - milliseconds(10) - milliseconds(1));
}

TEST(TakeoverNode, GrantorRefusesSecondCandidateAndSaysHowLong) {
  GroupConfig g = Group3();
  auto grantor = *Node::Create(g, 3, Time(0));
  const Time t0 = milliseconds(100);  // After the quiet period.
  grantor->Tick(t0);
  grantor->TakeMessages();
  auto request = [](NodeId /*from*/, uint64_t epoch, Time at) {
    wire::Message m;
    m.incarnation = 5;
    m.send_time = static_cast<uint64_t>(at.count());
    m.seq = static_cast<uint64_t>(at.count());
    m.view = {1, 2, 3};
    m.full = true;
    m.members = {1, 2, 3};  // Same membership as the grantor (version 0).
    m.capacity = 1;         // As configured (a capacity-0 peer is never assigned).
    wire::SlotEntry e;
    e.request = true;
    e.request_epoch = epoch;
    m.slots = {e};
    return wire::Encode(m);
  };
  auto reply_to = [&](NodeId to) {
    for (Outgoing& o : grantor->TakeMessages()) {
      if (o.to == to) return *wire::Decode(o.payload);
    }
    ADD_FAILURE() << "no reply";
    return wire::Message{};
  };
  grantor->Receive(1, request(1, 1, t0), t0);
  wire::Message r1 = reply_to(1);
  ASSERT_TRUE(r1.slots[0].reply);
  EXPECT_TRUE(r1.slots[0].granted);
  EXPECT_EQ(r1.slots[0].reply_epoch, 1u);
  EXPECT_EQ(r1.reply_echo, static_cast<uint64_t>(t0.count()));

  const Time t1 = t0 + milliseconds(5);
  grantor->Receive(2, request(2, 2, t1), t1);
  wire::Message r2 = reply_to(2);
  ASSERT_TRUE(r2.slots[0].reply);
  EXPECT_FALSE(r2.slots[0].granted);
  EXPECT_EQ(r2.slots[0].reply_wait_ns,
            static_cast<uint64_t>((GrantHold(g.timing) - milliseconds(5)).count()));
  EXPECT_EQ(r2.slots[0].reply_epoch, 1u);

  // Once the grant lapsed, the second candidate gets it with a higher epoch;
  // a stale epoch is refused.
  const Time t2 = t0 + GrantHold(g.timing);
  grantor->Receive(2, request(2, 1, t2), t2);
  EXPECT_FALSE(reply_to(2).slots[0].granted);
  const Time t3 = t2 + milliseconds(1);
  grantor->Receive(2, request(2, 2, t3), t3);
  wire::Message r3 = reply_to(2);
  EXPECT_TRUE(r3.slots[0].granted);
  EXPECT_EQ(r3.slots[0].reply_epoch, 2u);
}

// Late messages (docs "Late messages"): a datagram delayed far beyond the
// fastest from the same peer (a burst released from a kernel neighbour queue)
// is dropped unanswered; a lasting shift (still late after the limit) is
// accepted again, so a peer whose path became slower is not lost for long.
TEST(TakeoverNode, LateRequestsAreDroppedButALastingShiftIsAccepted) {
  GroupConfig g = Group3();
  auto grantor = *Node::Create(g, 3, Time(0));
  const Time t0 = milliseconds(100);  // After the quiet period.
  grantor->Tick(t0);
  grantor->TakeMessages();
  uint64_t seq = 0;
  auto request = [&](Time sent) {
    wire::Message m;
    m.incarnation = 5;
    m.send_time = static_cast<uint64_t>(sent.count());
    m.seq = ++seq;
    m.full = true;
    m.view = {1, 2, 3};
    m.members = {1, 2, 3};
    m.capacity = 1;
    wire::SlotEntry e;
    e.request = true;
    e.request_epoch = 1;
    m.slots = {e};
    return wire::Encode(m);
  };
  auto answered = [&] {
    bool any = false;
    for (const Outgoing& o : grantor->TakeMessages()) {
      if (o.to == 1 && wire::Decode(o.payload)->slots[0].reply) any = true;
    }
    return any;
  };
  const Time limit = 2 * g.timing.lease + g.timing.heartbeat;
  // Sender clock 1 s behind ours, delivery 1 ms: the floor.
  grantor->Receive(1, request(t0 - seconds(1) - milliseconds(1)), t0);
  EXPECT_TRUE(answered());
  // Sent 2 ms later on its clock but arriving 500 ms later: late, dropped.
  const Time t1 = t0 + milliseconds(500);
  grantor->Receive(1, request(t0 - seconds(1) + milliseconds(1)), t1);
  EXPECT_FALSE(answered());
  EXPECT_EQ(grantor->GetStatus(t1).late_messages, 1u);
  // A fresh one is answered.
  grantor->Receive(1, request(t1 - seconds(1) - milliseconds(1)), t1);
  EXPECT_TRUE(answered());
  // From now on every message takes 200 ms: dropped at first, accepted once
  // the run of late messages outlasts the limit.
  Time t = t1;
  int dropped = 0;
  for (int i = 0; i < 20; ++i) {
    t += milliseconds(10);
    grantor->Receive(1, request(t - seconds(1) - milliseconds(200)), t);
    if (!answered()) ++dropped;
  }
  EXPECT_GE(dropped, 1);
  EXPECT_LE(milliseconds(10) * dropped, limit + milliseconds(10));
  EXPECT_LT(dropped, 20);
}

// A release delayed behind a newer request of the same node must not drop
// the grant that the newer request obtained (the requester counts on it).
TEST(TakeoverNode, DelayedReleaseDoesNotDropNewerGrant) {
  GroupConfig g = Group3();
  auto grantor = *Node::Create(g, 3, Time(0));
  const Time t0 = milliseconds(100);
  grantor->Tick(t0);
  grantor->TakeMessages();
  auto message = [](uint64_t seq, Time at, bool request, bool release) {
    wire::Message m;
    m.incarnation = 5;
    m.send_time = static_cast<uint64_t>(at.count());
    m.seq = seq;
    m.full = true;
    m.view = {1, 2, 3};
    m.members = {1, 2, 3};
    wire::SlotEntry e;
    e.request = request;
    e.request_epoch = 1;
    e.release = release;
    m.slots = {e};
    return wire::Encode(m);
  };
  auto granted_to = [&](NodeId to) {
    for (Outgoing& o : grantor->TakeMessages()) {
      if (o.to == to) return wire::Decode(o.payload)->slots[0].granted;
    }
    return false;
  };
  grantor->Receive(1, message(7, t0, true, false), t0);  // Newer request first.
  EXPECT_TRUE(granted_to(1));
  grantor->Receive(1, message(6, t0, false, true), t0 + milliseconds(1));  // Older release.
  grantor->TakeMessages();
  wire::Message other;
  other.incarnation = 9;
  other.seq = 1;
  other.send_time = 1;
  other.full = true;
  other.view = {1, 2, 3};
  other.members = {1, 2, 3};
  wire::SlotEntry e;
  e.request = true;
  e.request_epoch = 2;
  other.slots = {e};
  grantor->Receive(2, wire::Encode(other), t0 + milliseconds(2));
  EXPECT_FALSE(granted_to(2)) << "the delayed release dropped node 1's grant";
  EXPECT_EQ(grantor->GetStatus(t0).stale_messages, 1u);
}

// Lease traffic (docs/takeover.md "Lease traffic"): only a full message
// names every slot its sender holds. A message made only to answer requests
// (or a full one that lost its entry for the slot) must not end the sender's
// holding claim, and a full message without the slot must end it.
TEST(TakeoverNode, OnlyAFullMessageWithoutTheSlotEndsAHoldingClaim) {
  GroupConfig g = Group3();
  g.num_slots = 2;
  auto n = *Node::Create(g, 3, Time(0));
  const Time t0 = milliseconds(100);
  n->Tick(t0);
  n->TakeMessages();
  uint64_t seq = 0;
  auto message = [&](bool full, bool holds_slot1, Time at) {
    wire::Message m;
    m.incarnation = 5;
    m.send_time = static_cast<uint64_t>(at.count());
    m.seq = ++seq;
    m.full = full;
    m.view = {1, 2, 3};
    m.members = {1, 2, 3};
    m.capacity = 1;
    if (holds_slot1) {
      wire::SlotEntry e;
      e.slot = 1;
      e.holding = true;
      e.epoch = 4;
      m.slots = {e};
    }
    return wire::Encode(m);
  };
  n->Receive(1, message(true, true, t0), t0);
  EXPECT_EQ(n->GetStatus(t0).slots[1].holder, 1u);
  EXPECT_EQ(n->GetStatus(t0).slots[1].epoch, 4u);
  // A reply-only message names no slot: the claim stands.
  n->Receive(1, message(false, false, t0 + milliseconds(1)), t0 + milliseconds(1));
  EXPECT_EQ(n->GetStatus(t0 + milliseconds(1)).slots[1].holder, 1u);
  // A full message that does not name slot 1: node 1 no longer holds it.
  n->Receive(1, message(true, false, t0 + milliseconds(2)), t0 + milliseconds(2));
  EXPECT_EQ(n->GetStatus(t0 + milliseconds(2)).slots[1].holder, kNoNode);
  // Slot 0 was never claimed by anyone.
  EXPECT_EQ(n->GetStatus(t0 + milliseconds(2)).slots[0].holder, kNoNode);
}

// A reply-only message carries no state: it leaves the sender's view,
// membership and drained slots as its last full message said, so a grant
// request in it (which a correct peer never sends) is refused as "not the
// same membership" rather than judged on unknown state.
TEST(TakeoverNode, RequestWithoutStateIsRefused) {
  GroupConfig g = Group3();
  g.peers[2].capacity = 0;  // Node 3 only grants (never campaigns itself).
  auto n = *Node::Create(g, 3, Time(0));
  const Time t0 = milliseconds(100);
  n->Tick(t0);
  n->TakeMessages();
  wire::Message m;
  m.incarnation = 5;
  m.send_time = static_cast<uint64_t>(t0.count());
  m.seq = 1;
  wire::SlotEntry e;
  e.request = true;
  e.request_epoch = 1;
  m.slots = {e};
  n->Receive(1, wire::Encode(m), t0);
  bool saw = false;
  for (const Outgoing& o : n->TakeMessages()) {
    if (o.to != 1) continue;
    const wire::Message r = *wire::Decode(o.payload);
    ASSERT_EQ(r.slots.size(), 1u);
    EXPECT_TRUE(r.slots[0].reply);
    EXPECT_FALSE(r.slots[0].granted);
    saw = true;
  }
  EXPECT_TRUE(saw);
  m.full = true;
  m.seq = 2;
  m.view = {1, 2, 3};
  m.members = {1, 2, 3};
  m.capacity = 1;
  n->Receive(1, wire::Encode(m), t0 + milliseconds(1));
  saw = false;
  for (const Outgoing& o : n->TakeMessages()) {
    if (o.to == 1) saw = wire::Decode(o.payload)->slots[0].granted;
  }
  EXPECT_TRUE(saw);
}

TEST(TakeoverNode, RestartedNodeRefusesDuringQuietPeriod) {
  GroupConfig g = Group3();
  auto n = *Node::Create(g, 3, milliseconds(10));
  wire::Message m;
  m.incarnation = 5;
  m.send_time = 1;
  m.seq = 1;
  wire::SlotEntry e;
  e.request = true;
  e.request_epoch = 1;
  m.slots = {e};
  n->Receive(1, wire::Encode(m), milliseconds(15));
  bool saw = false;
  for (Outgoing& o : n->TakeMessages()) {
    wire::Message r = *wire::Decode(o.payload);
    if (o.to != 1) continue;
    saw = true;
    EXPECT_TRUE(r.quiet);
    EXPECT_FALSE(r.slots[0].granted);
    EXPECT_EQ(r.slots[0].reply_wait_ns,
              static_cast<uint64_t>((StartupQuiet(g.timing) - milliseconds(5)).count()));
  }
  EXPECT_TRUE(saw);
  EXPECT_TRUE(n->GetStatus(milliseconds(15)).quiet);
}

TEST(TakeoverNode, DrainRemovesThenNextTakesOverAtOnce) {
  Net net(Group3());
  net.RunFor(milliseconds(100));
  ASSERT_EQ(net.Holder(), 1u);
  net.node(1).Drain(net.now());
  net.Pump();
  ASSERT_EQ(net.actions_[1].back().kind, Action::Kind::kRemoveAddress);
  // Instant delivery: the release, the request and the grant all happen now.
  EXPECT_EQ(net.Holder(), 2u);
  EXPECT_EQ(net.actions_[2][0].epoch, 2u);
  net.RunFor(milliseconds(500));
  EXPECT_EQ(net.Holder(), 2u);  // The drained node never campaigns again.
  EXPECT_TRUE(net.node(1).GetStatus(net.now()).draining);
}

// Resume undoes Drain without re-creating the node: it does not take the slot
// back from the live holder (property 4), but it is a candidate again: when
// the holder crashes, the resumed top-priority node takes over.
TEST(TakeoverNode, ResumedNodeCampaignsAgainWithoutPreempting) {
  Net net(Group3());
  net.RunFor(milliseconds(100));
  ASSERT_EQ(net.Holder(), 1u);
  net.node(1).Drain(net.now());
  net.Pump();
  ASSERT_EQ(net.Holder(), 2u);
  net.node(1).Resume(net.now());
  net.Pump();
  EXPECT_FALSE(net.node(1).GetStatus(net.now()).draining);
  net.RunFor(milliseconds(300));
  EXPECT_EQ(net.Holder(), 2u);
  net.Crash(2);
  net.RunFor(milliseconds(200));
  EXPECT_EQ(net.Holder(), 1u);
}

TEST(TakeoverNode, NoMajorityNoHolder) {
  Net net(Group3());
  net.Crash(2);
  net.Crash(3);
  net.RunFor(milliseconds(300));
  EXPECT_EQ(net.Holder(), kNoNode);
}

TEST(TakeoverNode, SingleNodeGroupHoldsAlone) {
  GroupConfig g;
  g.peers = {{4, 1, 3}};
  g.num_slots = 3;
  auto n = *Node::Create(g, 4, Time(0));
  for (Time t = Time(0); t < milliseconds(100); t += milliseconds(1)) {
    if (n->NextTick() <= t) n->Tick(t);
  }
  const Node::Status st = n->GetStatus(milliseconds(100));
  ASSERT_EQ(st.slots.size(), 3u);
  for (const auto& s : st.slots) EXPECT_TRUE(s.held_by_me);
  EXPECT_EQ(st.capacity_used, 3);
  EXPECT_EQ(st.takeovers, 3u);
  EXPECT_TRUE(n->TakeMessages().empty());
}

// Capacity bounds what a node holds: the most important slots are served,
// the rest shed; lowering the capacity releases the highest-numbered slot at
// once, raising it takes the shed slot up again.
TEST(TakeoverNode, CapacityBoundsHeldSlotsAndShedsTheLowestRanked) {
  GroupConfig g;
  g.peers = {{4, 1, 2}};
  g.num_slots = 3;
  auto n = *Node::Create(g, 4, Time(0));
  Time t = Time(0);
  auto run = [&](Time until) {
    for (; t < until; t += milliseconds(1)) {
      if (n->NextTick() <= t) n->Tick(t);
    }
  };
  run(milliseconds(100));
  Node::Status st = n->GetStatus(t);
  EXPECT_TRUE(st.slots[0].held_by_me);
  EXPECT_TRUE(st.slots[1].held_by_me);
  EXPECT_FALSE(st.slots[2].held_by_me);
  EXPECT_TRUE(st.slots[2].shed);
  EXPECT_EQ(st.shed_slots, 1u);
  EXPECT_EQ(st.capacity_used, 2);
  n->TakeActions();

  n->SetCapacity(1, t);
  const std::vector<Action> removed = n->TakeActions();
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0].kind, Action::Kind::kRemoveAddress);
  EXPECT_EQ(removed[0].slot, 1u);
  st = n->GetStatus(t);
  EXPECT_EQ(st.capacity_used, 1);
  EXPECT_EQ(st.releases, 1u);
  EXPECT_EQ(st.sheds, 1u);  // Slot 1 is now beyond the total capacity.
  run(t + milliseconds(100));
  EXPECT_EQ(n->GetStatus(t).capacity_used, 1);

  n->SetCapacity(3, t);
  run(t + milliseconds(100));
  st = n->GetStatus(t);
  EXPECT_EQ(st.capacity_used, 3);
  EXPECT_EQ(st.shed_slots, 0u);
}


// A node whose view lacks a majority has no candidates, not too little
// capacity: it reports nothing as shed (the daemon's log called a holder
// that lost its lease under CPU stalls "shed (no capacity in this view)").
TEST(TakeoverNode, NoShedReportedWithoutAMajorityView) {
  GroupConfig g;
  g.peers = {{1, 3, 1}, {2, 2, 1}, {3, 1, 1}};
  auto n = *Node::Create(g, 1, Time(0));
  for (Time t = Time(0); t < milliseconds(200); t += milliseconds(1)) {
    if (n->NextTick() <= t) n->Tick(t);
  }
  const Node::Status st = n->GetStatus(milliseconds(200));
  ASSERT_EQ(st.view.size(), 1u);
  EXPECT_FALSE(st.slots[0].held_by_me);
  EXPECT_FALSE(st.slots[0].shed);
  EXPECT_EQ(st.shed_slots, 0u);
}
}  // namespace
}  // namespace baton::takeover

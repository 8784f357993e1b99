// The lease-based IP take-over protocol (Fetzer & Suri, section 4), as a pure
// state machine: no sockets, no clock reads, no threads, no randomness.
//
// A group of peers (static list) shares a number of "slots" (one service IP
// each). A node holds a slot only while a *majority* of the group (the node
// counts itself) has granted it a lease. A grantor grants a slot to at most one
// node at a time and keeps the grant, on its own monotonic clock from when it
// received the request, for GrantHold(timing) = lease*(1+ρ)/(1-ρ) + grant_margin,
// while the holder believes its lease lasts `lease` from when it sent the
// request. The holder's belief therefore always ends first in real time, and
// because two majorities intersect, at most one node believes it holds a slot
// at any real instant. The safety argument is in docs/takeover.md.
//
// Driver contract (takeover/daemon, tests/takeover/sim):
//   * Call Tick(now) at or before NextTick(); call Receive() for every
//     authenticated datagram; `now` is the node's own monotonic clock
//     (CLOCK_BOOTTIME preferred: CLOCK_MONOTONIC / steady_clock stops while
//     the host is suspended), never wall-clock time.
//   * After every call, take TakeReady() and apply it in the order struct
//     Ready documents: address actions, then durable state, then messages
//     (a release message may let another node take the slot, so the address
//     must already be gone).
//   * kRemoveAddress must take effect immediately; the driver also sets the
//     kernel valid_lft as a backstop for a frozen daemon.
//   * A node must be created fresh after a process restart (it then keeps
//     quiet for StartupQuiet(timing): it forgot the grants it gave).
//   * Store Ready::state durably before sending the messages of the same
//     Ready and pass it to Create after a restart (strictly growing epochs
//     across restarts; required when Timing::shrink_after > 0).
//
// Thread-safety: none. One Node per process, owned by one thread/event loop;
// the caller serialises all calls.
#ifndef BATON_TAKEOVER_CORE_NODE_H_
#define BATON_TAKEOVER_CORE_NODE_H_

#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace baton::takeover {

using NodeId = uint32_t;
// "No node": used for an unknown holder. Not a valid peer id.
inline constexpr NodeId kNoNode = std::numeric_limits<NodeId>::max();

// A node's own monotonic clock reading; the origin is arbitrary (clocks of
// different nodes have unrelated offsets and rates within 1±max_drift).
using Time = std::chrono::nanoseconds;

struct PeerConfig {
  NodeId id = 0;      // Unique in the group; must not be kNoNode.
  int priority = 0;   // Higher wins; ties are broken by the lower id.
  int capacity = 1;   // Most slots the peer may hold at once (>= 0; 0 = grants
                      // only, never holds). Default: 1. A node's own value
                      // can be changed at run time (Node::SetCapacity) and
                      // is advertised in its messages.
};

// Timing of the protocol. All durations are on the node's own clock.
// Defaults are for heartbeat 10 ms; Timing::ForHeartbeat(h) scales them.
// Fail-over after a holder's host crashes (docs/takeover.md), with one-way
// delay d and φ ∈ [0, heartbeat) the time since the holder's last renewal:
//   GrantHold() + 3d − φ;  worst GrantHold() + 3d, typical
//   GrantHold() + 3d − heartbeat/2 (23.5 ms at the defaults and d = 1 ms).
struct Timing {
  // Interval between rounds: heartbeats, view exchange and lease renewals.
  // Default: 10 ms.
  Time heartbeat = std::chrono::milliseconds(10);
  // How long a holder believes a lease lasts, from when it *sent* the request
  // that was granted. Default: 25 ms (2.5 × heartbeat: one lost round is
  // survived without losing the lease).
  Time lease = std::chrono::microseconds(25000);
  // Upper bound ρ on the clock-rate error of every node, as a fraction
  // (1e-3 = 1000 ppm, covers NTP slewing of CLOCK_MONOTONIC, max 500 ppm, plus
  // oscillator error). No bound on clock offsets is assumed. Default: 1e-3.
  double max_drift = 1e-3;
  // Extra time a grantor keeps a grant beyond lease × (1+ρ)/(1−ρ).
  // Default: 500 µs.
  Time grant_margin = std::chrono::microseconds(500);
  // A holder that could not renew removes the address this long before its
  // believed lease expiry (time for the driver's netlink call).
  // Default: 2 ms.
  Time remove_margin = std::chrono::milliseconds(2);
  // A peer is in this node's view if a message from it arrived within this
  // time. Default: 25 ms (= lease, so a crashed holder leaves the view no later
  // than its grants lapse).
  Time peer_timeout = std::chrono::microseconds(25000);
  // After start, a node neither campaigns nor grants for
  // max(discovery, GrantHold()): it learns the view, so that a simultaneous
  // start elects the highest priority, and it outlives the grants it forgot.
  // Default: 30 ms (3 × heartbeat).
  Time discovery = std::chrono::milliseconds(30);
  // Serial failures: once a member has been missing from the view of a
  // connected majority for this long, the survivors shrink the group to
  // exclude it; a non-member that has been back in the view for 10
  // heartbeats (or this long, if shorter) is added again (docs/takeover.md
  // "Serial failures"). Changes are agreed by
  // a majority of the current members (ballots, as in Paxos), so a partition
  // can shrink at most one side. Requires the driver to persist
  // TakeStateToPersist(). Zero disables membership changes: the group is the
  // static peer list. Default: 1 s (100 × heartbeat).
  Time shrink_after = std::chrono::seconds(1);

  // The defaults above scaled to another heartbeat (same multiples).
  static Timing ForHeartbeat(Time heartbeat);
};

// How long a grantor keeps a grant after receiving a request:
// ceil(lease × (1+ρ)/(1−ρ)) + grant_margin.
Time GrantHold(const Timing& timing);
// How long a freshly created node stays quiet: max(discovery, GrantHold()).
Time StartupQuiet(const Timing& timing);

// A membership ballot: proposals of the same version are ordered by
// (round, node); each ballot is used by one proposer for one proposal.
// (0, 0) is "none".
struct Ballot {
  uint64_t round = 0;
  NodeId node = 0;
  bool operator==(const Ballot&) const = default;
  auto operator<=>(const Ballot&) const = default;
};

// The group's current membership (changes only when Timing::shrink_after > 0).
struct Membership {
  uint64_t version = 0;             // 0 = the static peer list of GroupConfig.
  std::vector<NodeId> members;      // Sorted; the nodes whose grants count.
  std::vector<NodeId> old_members;  // Non-empty while a change is under way:
                                    // leases need a majority of both.
  // The agreement on the next version (docs/takeover.md "Serial failures"):
  // the highest ballot this node promised, and while a change is under way
  // the ballot under which it accepted `members`.
  Ballot promised;
  Ballot accepted;
};

// What a node should keep across restarts (see Node::TakeStateToPersist).
struct PersistentState {
  Membership membership;
  // Per slot: the highest epoch this node granted or saw claimed, and the
  // node it belongs to. Restored, it keeps epochs strictly growing even when
  // every node that knew the latest epoch restarts.
  std::vector<uint64_t> epochs;
  std::vector<NodeId> epoch_owners;
};

struct GroupConfig {
  std::vector<PeerConfig> peers;  // The whole group, including this node.
  uint32_t num_slots = 1;         // Slots 0..num_slots-1. Default: 1; max 1024.
  Timing timing;
  // If true, a holder hands its slot over (as by Drain) to an eligible peer of
  // higher priority. Default: false (property 4: only a failure changes the
  // holder).
  bool preempt = false;
  // Pool (num_slots > 1): a node that recovers, or whose capacity grows,
  // takes slots over from more loaded nodes until loads differ by at most
  // one (docs/takeover.md "Pool of addresses"). Each move is a planned
  // hand-over (about one round trip of outage for that address). Default:
  // false: only a failure, a capacity change or a drain moves an address.
  // In a pool, preempt = true implies rebalance.
  bool rebalance = false;
  // Hooks for the simulation (tests/takeover/sim); never set in production.
  struct Testing {
    // Every member whose view has a majority proposes membership changes,
    // not only the holder of slot 0: as many concurrent proposals as
    // possible. Safe (the agreement does not depend on who proposes).
    bool every_node_proposes = false;
    // BROKEN on purpose: a proposer skips the promise phase and proposes its
    // own change under a fresh ballot even when another change may already
    // have been agreed; acceptors still move to higher ballots. Two changes
    // of one version can then both be committed: the simulation's checker
    // must find two holders (TakeoverSim.BrokenMembershipIsCaught).
    bool skip_prepare = false;
  };
  Testing testing;
};

struct Action {
  enum class Kind {
    kAddAddress,     // Start serving the slot's address (add it).
    kRemoveAddress,  // Stop serving it now (remove it), before anything else.
    kAnnounce,       // Send gratuitous ARP / unsolicited NA for the slot.
  };
  Kind kind;
  uint32_t slot;
  // The slot's epoch (fencing token) under which the node holds or held it.
  // Strictly grows from one holder to the next.
  uint64_t epoch;
};

// One encoded protocol message for peer `to`. At most one per peer per call.
struct Outgoing {
  NodeId to;
  std::string payload;
};

// Everything the node produced since it was last taken (etcd raft's Ready), from
// Node::TakeReady(). Every driver applies it in this order, field by field:
//   1. `actions`, in order (a remove always precedes any add): the address is
//      gone before any message can let another node take the slot;
//   2. `state`, if set: store it durably (fsync). If that fails, drop
//      `messages` (as if lost: safe) and store the state again before the
//      messages of a later Ready;
//   3. `messages`: send them.
// Taking it is the acknowledgement: the node does not wait for it to be
// applied, and the next Ready holds only what later calls produce.
struct Ready {
  std::vector<Action> actions;
  std::optional<PersistentState> state;
  std::vector<Outgoing> messages;
  bool empty() const { return actions.empty() && !state.has_value() && messages.empty(); }
};

// One node of the group. See the file comment for the driver contract.
class Node {
 public:
  // Errors: kInvalidArgument for a bad configuration (empty or duplicate
  // peers, `self` not in the group, non-positive heartbeat, lease not longer
  // than heartbeat + remove_margin, max_drift outside [0, 0.1), num_slots
  // outside [1, 1024]).
  // `restored`: the state last returned by TakeStateToPersist() in an
  // earlier run of this node, if any. Required for safety when
  // shrink_after > 0; otherwise optional (without it, epochs can repeat after
  // all nodes that knew the latest one restarted; the membership part is
  // ignored while shrink_after == 0).
  static absl::StatusOr<std::unique_ptr<Node>> Create(
      const GroupConfig& config, NodeId self, Time now,
      const std::optional<PersistentState>& restored = std::nullopt);
  virtual ~Node() = default;

  // A message from peer `from` (already authenticated by the transport).
  // Malformed, unknown-version or stale (reordered/duplicated) payloads are
  // dropped and counted in Status; never crashes.
  virtual void Receive(NodeId from, std::string_view payload, Time now) = 0;
  // Advances timers: heartbeats, renewals, expiry, campaigns.
  virtual void Tick(Time now) = 0;
  // Call Tick at or before this time (on this node's clock).
  virtual Time NextTick() const = 0;
  // Planned hand-over: removes every held address, tells the peers to drop
  // their grants, and never campaigns again (the process is about to stop).
  virtual void Drain(Time now) = 0;
  // Planned hand-over of one slot: removes its address if held, tells the
  // peers to drop their grants, and stops this node from campaigning for it
  // (its peers learn that from the messages and assign it elsewhere) until
  // Undrain(slot). Out-of-range slots are ignored.
  virtual void Drain(uint32_t slot, Time now) = 0;
  virtual void Undrain(uint32_t slot, Time now) = 0;
  // Undoes Drain(now): the node may campaign and be assigned slots again
  // (its peers see the cleared draining flag in its next messages), e.g.
  // when the daemon's health check recovers, without re-creating the Node
  // (which would cost a start-up quiet period and forget the grants it
  // gives). Like a recovered node it does not take a slot from a live holder
  // unless GroupConfig::preempt / rebalance say so. Slots drained one by one
  // (Drain(slot)) stay drained until Undrain(slot). No-op if not draining.
  virtual void Resume(Time now) = 0;
  // Changes this node's capacity (clamped to >= 0). Lowering it below the
  // number of slots held releases the highest-numbered ones at once; the new
  // value is advertised to the peers, whose assignment follows it.
  virtual void SetCapacity(int capacity, Time now) = 0;
  // Everything produced since the last Take*: apply it in Ready's order.
  Ready TakeReady() {
    Ready r;
    r.actions = TakeActions();
    r.state = TakeStateToPersist();
    r.messages = TakeMessages();
    return r;
  }
  // The parts of TakeReady() one by one (kept for tests of the core; drivers
  // use TakeReady). Messages produced since the last call.
  virtual std::vector<Outgoing> TakeMessages() = 0;
  // Address actions produced since the last call, in order; a remove always
  // precedes any add. Apply them before sending TakeMessages().
  virtual std::vector<Action> TakeActions() = 0;
  // State to store durably (fsync) *before* sending the messages of the same
  // call, and to pass to Create after a restart; nullopt if nothing changed.
  // Changes only when the membership changes or a slot's epoch floor rises
  // (a new holder), never on renewals.
  virtual std::optional<PersistentState> TakeStateToPersist() = 0;

  struct SlotStatus {
    uint32_t slot = 0;
    NodeId holder = kNoNode;  // Best knowledge of the current holder.
    uint64_t epoch = 0;       // Holder's epoch as known here (0 = none yet).
    bool held_by_me = false;  // The address is added here.
    // While held_by_me: time left until the believed lease expiry
    // (not the earlier removal deadline); else zero.
    Time lease_remaining{0};
    // Who should campaign for the slot according to this node's view (the
    // pool assignment, takeover/core/assignment.h); kNoNode if nobody.
    NodeId assigned = kNoNode;
    // Unassigned for lack of capacity in this view. False while this node's
    // view lacks a majority (its assignment then means nothing).
    bool shed = false;
    // This slot's share of Status::takeovers, releases and sheds.
    uint64_t takeovers = 0;
    uint64_t releases = 0;
    uint64_t sheds = 0;
  };
  struct Status {
    NodeId self = kNoNode;
    std::vector<SlotStatus> slots;
    std::vector<NodeId> view;  // Peers heard from recently, self included.
    bool quiet = false;        // Still in the start-up quiet period.
    bool draining = false;
    Membership membership;
    uint64_t malformed_messages = 0;  // Dropped: undecodable.
    uint64_t stale_messages = 0;      // Dropped: older than one already seen.
    // Dropped: delayed more than 2 × lease + heartbeat beyond the fastest
    // message from the same peer (a burst held back by a down link).
    uint64_t late_messages = 0;
    int capacity = 0;                 // This node's current capacity.
    int capacity_used = 0;            // Slots held here now.
    uint32_t shed_slots = 0;          // Slots shed in this node's view now
                                      // (0 without a majority view).
    // Counters since Create: addresses added here (take-overs), removed here
    // (releases, any reason), and removed because the slot became shed.
    uint64_t takeovers = 0;
    uint64_t releases = 0;
    uint64_t sheds = 0;
  };
  virtual Status GetStatus(Time now) const = 0;
};

}  // namespace baton::takeover

#endif  // BATON_TAKEOVER_CORE_NODE_H_

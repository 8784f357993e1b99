// Deterministic simulation of a take-over group: simulated real time, one
// simulated monotonic clock per node (rate in [1−ρ, 1+ρ], arbitrary offset), a
// simulated network (loss, duplication, reordering through random delay,
// partitions including asymmetric ones), process pauses, crashes and
// restarts, and a checker that verifies at every simulated instant that no two
// nodes hold a slot, for every slot, and that no node holds more slots than
// its capacity.
//
// Holding model (what the checker treats as "node N serves the address"):
// from N's kAddAddress action until its kRemoveAddress action or its believed
// lease expiry (Status::lease_remaining converted to real time through N's
// clock), whichever comes first. The driver enforces the expiry by the core's
// removal deadline when it runs, and the core removes first thing when it
// resumes from a pause; the checker additionally fails if a node whose belief
// lapsed while its address was added does anything but remove it next.
// A crash (host crash) removes the address. Epochs must grow strictly from
// one holder to the next; without persisted state (SimOptions::persist =
// false), except right after a crash: a restarted node forgot the epochs it
// granted (docs/takeover.md "Epochs").
//
// Everything is driven by one seed; the same seed replays the same run.
// Not thread-safe.
#ifndef BATON_TESTS_TAKEOVER_SIM_SIMULATION_H_
#define BATON_TESTS_TAKEOVER_SIM_SIMULATION_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "takeover/core/node.h"

namespace baton::takeover::sim {

// Simulated real time, ns since the start of the run.
using RealTime = std::chrono::nanoseconds;

struct NetworkOptions {
  RealTime min_delay = std::chrono::microseconds(500);  // Default: 0.5 ms.
  RealTime max_delay = std::chrono::microseconds(1500); // Default: 1.5 ms.
  double loss = 0.0;       // Probability a datagram is lost. Default: 0.
  double duplicate = 0.0;  // Probability a datagram is delivered twice. Default: 0.
};

struct SimOptions {
  uint64_t seed = 1;
  GroupConfig group;
  NetworkOptions network;
  // Actual clock-rate error of the simulated clocks: each node's rate is
  // drawn from [1−clock_drift, 1+clock_drift] (extremes favoured). May differ
  // from group.timing.max_drift to show what a wrong bound does.
  // Default: 1e-3.
  double clock_drift = 1e-3;
  // Max |offset| of a node's clock origin. Default: 1000 s.
  RealTime max_clock_offset = std::chrono::seconds(1000);
  // Nodes keep TakeStateToPersist() across crashes (the driver's fsync) and
  // get it back on restart. Without it, epochs may repeat after a crash, and
  // the checker excuses that. Default: true.
  bool persist = true;
  // Processing time of one Receive call, during which the node is busy:
  // datagrams queue up behind it (like a socket buffer) and its timers wait.
  // A datagram the core drops (counted as malformed, stale or late in its
  // Status) costs drop_cost instead: it is only decoded, nothing is
  // evaluated or sent. Defaults: 0 (instantaneous, the node is never busy).
  RealTime receive_cost{0};
  RealTime drop_cost{0};
  // Record a human-readable trace (for replaying a failing seed).
  bool trace = false;
};

struct HoldEvent {
  RealTime at;
  NodeId node;
  uint32_t slot;
  bool added;  // false: removed (action, crash) — lapses are not events.
  uint64_t epoch;
};

class Simulation {
 public:
  explicit Simulation(SimOptions options);
  ~Simulation();

  RealTime now() const { return now_; }
  std::mt19937_64& rng() { return rng_; }
  const SimOptions& options() const { return options_; }
  const std::vector<NodeId>& ids() const { return ids_; }

  // Scenario control; takes effect at now().
  // (Re)creates the node. Its clock keeps running (process restart), or with
  // `reboot` starts again from a new random origin (host reboot: the
  // monotonic clock resets).
  void Start(NodeId id, bool reboot = false);
  void Crash(NodeId id);  // Host crash: the node and its address vanish.
  void Pause(NodeId id, RealTime duration);  // Neither receives nor ticks.
  bool IsUp(NodeId id) const;
  bool IsPaused(NodeId id) const;
  // Blocks datagrams from `from` to `to` (one direction).
  void Block(NodeId from, NodeId to, bool blocked = true);
  void HealPartitions();
  // Holds back datagrams from `from` to `to` instead of dropping them,
  // keeping the newest `max_datagrams`, like a kernel neighbour (ARP/NDP)
  // queue of an unresolved next hop while a link is down. Release() sends the
  // held datagrams on in their order (a burst of stale messages, as seen in
  // the lab about one ARP retransmit interval after a partition healed) and
  // stops holding. HealPartitions() does not release them.
  void Hold(NodeId from, NodeId to, size_t max_datagrams);
  void Release(NodeId from, NodeId to);
  NetworkOptions& network() { return options_.network; }
  // Calls Drain on a node now.
  void Drain(NodeId id);
  // Calls Resume on a node now (undoes Drain(id): the daemon's health check
  // recovered).
  void Resume(NodeId id);
  // Calls Drain(slot) (drain = true) or Undrain(slot) on a node now.
  void DrainSlot(NodeId id, uint32_t slot, bool drain = true);
  // Calls SetCapacity on a node now; the checker then holds the node to it
  // (until a restart, which goes back to the configured capacity).
  void SetCapacity(NodeId id, int capacity);
  int Capacity(NodeId id) const;

  // Runs all events up to and including `until`.
  void RunUntil(RealTime until);

  // Checker results.
  bool ok() const { return violations_.empty(); }
  const std::vector<std::string>& violations() const { return violations_; }
  // Node that holds `slot` at now() (kNoNode if none).
  NodeId Holder(uint32_t slot = 0) const;
  uint64_t HolderEpoch(uint32_t slot = 0) const;
  const std::vector<HoldEvent>& history() const { return history_; }
  // Status of an up node at now().
  Node::Status NodeStatus(NodeId id) const;
  uint64_t messages_sent() const { return messages_sent_; }
  uint64_t bytes_sent() const { return bytes_sent_; }
  // Largest payload sent since the last call (bytes); starts over.
  size_t TakeLargestPayload() { return std::exchange(largest_payload_, 0); }
  const std::string& trace() const { return trace_; }

 private:
  struct SimNode;
  struct Event {
    RealTime at;
    uint64_t seq;
    NodeId to;
    NodeId from;
    std::string payload;
    bool operator>(const Event& o) const {
      return at != o.at ? at > o.at : seq > o.seq;
    }
  };

  SimNode& N(NodeId id);
  const SimNode& N(NodeId id) const;
  Time Local(const SimNode& n, RealTime t) const;
  RealTime RealOf(const SimNode& n, Time local) const;
  void Deliver(Event e);
  void ReceiveOne(SimNode& n, Event& e);
  void WakeNode(SimNode& n);
  void AfterCall(SimNode& n);
  void BeforeCall(SimNode& n);
  void Send(NodeId from, Outgoing out);
  void Violation(const std::string& what);
  void Trace(const std::string& line);

  SimOptions options_;
  std::mt19937_64 rng_;
  RealTime now_{0};
  uint64_t seq_ = 0;
  std::vector<NodeId> ids_;
  std::map<NodeId, std::unique_ptr<SimNode>> nodes_;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> queue_;
  std::map<std::pair<NodeId, NodeId>, bool> blocked_;
  struct HeldLink {
    size_t max_datagrams = 0;
    std::vector<Outgoing> datagrams;
  };
  std::map<std::pair<NodeId, NodeId>, HeldLink> held_;
  std::vector<std::string> violations_;
  std::vector<HoldEvent> history_;
  std::vector<std::pair<NodeId, uint64_t>> last_add_;  // Per slot: node, epoch.
  std::vector<RealTime> last_add_time_;
  RealTime last_crash_ = RealTime::min() / 4;
  uint64_t messages_sent_ = 0;
  uint64_t bytes_sent_ = 0;
  size_t largest_payload_ = 0;
  uint64_t same_instant_events_ = 0;
  std::string trace_;
};

}  // namespace baton::takeover::sim

#endif  // BATON_TESTS_TAKEOVER_SIM_SIMULATION_H_

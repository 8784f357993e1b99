#include "tests/takeover/sim/simulation.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace baton::takeover::sim {

struct Simulation::SimNode {
  NodeId id = 0;
  long double rate = 1.0;
  int64_t offset = 0;
  std::unique_ptr<Node> node;  // Null while crashed / not started.
  std::optional<PersistentState> persisted;  // Survives crashes (the driver's fsync).
  RealTime paused_until{0};
  std::vector<Event> inbox;  // Datagrams that arrived during a pause.
  struct SlotCheck {
    bool added = false;
    bool lapsed = false;  // Belief ran out while the address was added.
    RealTime belief_end{0};
    uint64_t epoch = 0;
  };
  std::vector<SlotCheck> slots;
  int capacity = 0;   // Current capacity (config, or the last SetCapacity).
  RealTime wake{0};   // Real time of NextTick(), refreshed after every call.
};

Simulation::Simulation(SimOptions options)
    : options_(std::move(options)), rng_(options_.seed) {
  std::uniform_real_distribution<double> unit(-1.0, 1.0);
  std::uniform_int_distribution<int64_t> offset(-options_.max_clock_offset.count(),
                                                options_.max_clock_offset.count());
  for (const PeerConfig& p : options_.group.peers) {
    auto n = std::make_unique<SimNode>();
    n->id = p.id;
    // Favour the extremes of the drift range: they are where bugs live.
    double u = unit(rng_);
    if (std::abs(u) > 0.5) u = u > 0 ? 1.0 : -1.0;
    n->rate = 1.0L + static_cast<long double>(options_.clock_drift) * u;
    n->offset = offset(rng_);
    n->slots.resize(options_.group.num_slots);
    n->capacity = p.capacity;
    ids_.push_back(p.id);
    nodes_[p.id] = std::move(n);
  }
  last_add_.assign(options_.group.num_slots, {kNoNode, 0});
  last_add_time_.assign(options_.group.num_slots, RealTime(0));
}

Simulation::~Simulation() = default;

Simulation::SimNode& Simulation::N(NodeId id) { return *nodes_.at(id); }
const Simulation::SimNode& Simulation::N(NodeId id) const { return *nodes_.at(id); }

Time Simulation::Local(const SimNode& n, RealTime t) const {
  return Time(n.offset + static_cast<int64_t>(std::floor(
                             n.rate * static_cast<long double>(t.count()))));
}

// The first real instant at which the node's clock reads at least `local`.
RealTime Simulation::RealOf(const SimNode& n, Time local) const {
  const long double x =
      static_cast<long double>(local.count() - n.offset) / n.rate;
  int64_t t = static_cast<int64_t>(std::ceil(x));
  while (Local(n, RealTime(t)) < local) ++t;
  while (Local(n, RealTime(t - 1)) >= local) --t;
  return RealTime(t);
}

void Simulation::Trace(const std::string& line) {
  if (!options_.trace) return;
  trace_ += std::to_string(now_.count() / 1000) + "us " + line + "\n";
}

void Simulation::Violation(const std::string& what) {
  std::ostringstream s;
  s << "t=" << now_.count() << "ns: " << what;
  violations_.push_back(s.str());
  Trace("VIOLATION " + what);
}

void Simulation::Start(NodeId id, bool reboot) {
  SimNode& n = N(id);
  if (reboot && !n.node) {
    std::uniform_int_distribution<int64_t> offset(-options_.max_clock_offset.count(),
                                                  options_.max_clock_offset.count());
    n.offset = offset(rng_);
  }
  absl::StatusOr<std::unique_ptr<Node>> node =
      Node::Create(options_.group, id, Local(n, now_),
                   options_.persist ? n.persisted : std::nullopt);
  if (!node.ok()) {
    Violation("Create failed: " + std::string(node.status().message()));
    return;
  }
  n.node = std::move(*node);
  for (const PeerConfig& p : options_.group.peers) {
    if (p.id == id) n.capacity = p.capacity;
  }
  n.paused_until = now_;
  n.inbox.clear();
  Trace("start " + std::to_string(id));
  AfterCall(n);
}

void Simulation::Crash(NodeId id) {
  SimNode& n = N(id);
  if (!n.node) return;
  for (uint32_t s = 0; s < n.slots.size(); ++s) {
    if (n.slots[s].added) history_.push_back({now_, id, s, false, n.slots[s].epoch});
    n.slots[s] = {};
  }
  n.node.reset();
  n.inbox.clear();
  last_crash_ = now_;
  Trace("crash " + std::to_string(id));
}

void Simulation::Pause(NodeId id, RealTime duration) {
  SimNode& n = N(id);
  if (!n.node) return;
  n.paused_until = std::max(n.paused_until, now_ + duration);
  Trace("pause " + std::to_string(id) + " for " +
        std::to_string(duration.count() / 1000) + "us");
}

bool Simulation::IsUp(NodeId id) const { return N(id).node != nullptr; }
bool Simulation::IsPaused(NodeId id) const { return N(id).paused_until > now_; }

void Simulation::Block(NodeId from, NodeId to, bool blocked) {
  blocked_[{from, to}] = blocked;
  Trace("link " + std::to_string(from) + "->" + std::to_string(to) +
        (blocked ? " cut" : " restored"));
}
void Simulation::Hold(NodeId from, NodeId to, size_t max_datagrams) {
  held_[{from, to}].max_datagrams = max_datagrams;
  Trace("link " + std::to_string(from) + "->" + std::to_string(to) + " holding");
}

void Simulation::Release(NodeId from, NodeId to) {
  auto it = held_.find({from, to});
  if (it == held_.end()) return;
  std::vector<Outgoing> burst = std::move(it->second.datagrams);
  held_.erase(it);
  Trace("link " + std::to_string(from) + "->" + std::to_string(to) + " releases " +
        std::to_string(burst.size()) + " held datagrams");
  // In order, 10 µs apart (a queue drained onto the wire).
  RealTime at = now_ + options_.network.min_delay;
  for (Outgoing& o : burst) {
    queue_.push(Event{at, seq_++, o.to, from, std::move(o.payload)});
    at += std::chrono::microseconds(10);
  }
}

void Simulation::HealPartitions() {
  blocked_.clear();
  Trace("partitions healed");
}

void Simulation::Drain(NodeId id) {
  SimNode& n = N(id);
  if (!n.node || n.paused_until > now_) return;
  Trace("drain " + std::to_string(id));
  BeforeCall(n);
  n.node->Drain(Local(n, now_));
  AfterCall(n);
}

void Simulation::Resume(NodeId id) {
  SimNode& n = N(id);
  if (!n.node || n.paused_until > now_) return;
  Trace("resume " + std::to_string(id));
  BeforeCall(n);
  n.node->Resume(Local(n, now_));
  AfterCall(n);
}

void Simulation::DrainSlot(NodeId id, uint32_t slot, bool drain) {
  SimNode& n = N(id);
  if (!n.node || n.paused_until > now_) return;
  Trace((drain ? "drain " : "undrain ") + std::to_string(id) + " slot " + std::to_string(slot));
  BeforeCall(n);
  if (drain) {
    n.node->Drain(slot, Local(n, now_));
  } else {
    n.node->Undrain(slot, Local(n, now_));
  }
  AfterCall(n);
}

void Simulation::SetCapacity(NodeId id, int capacity) {
  SimNode& n = N(id);
  if (!n.node || n.paused_until > now_) return;
  Trace("capacity " + std::to_string(id) + " = " + std::to_string(capacity));
  BeforeCall(n);
  n.capacity = std::max(0, capacity);
  n.node->SetCapacity(capacity, Local(n, now_));
  AfterCall(n);
}

int Simulation::Capacity(NodeId id) const { return N(id).capacity; }

NodeId Simulation::Holder(uint32_t slot) const {
  for (const auto& [id, n] : nodes_) {
    const SimNode::SlotCheck& c = n->slots[slot];
    if (n->node && c.added && !c.lapsed && c.belief_end > now_) return id;
  }
  return kNoNode;
}

uint64_t Simulation::HolderEpoch(uint32_t slot) const {
  const NodeId h = Holder(slot);
  return h == kNoNode ? 0 : N(h).slots[slot].epoch;
}

Node::Status Simulation::NodeStatus(NodeId id) const {
  const SimNode& n = N(id);
  return n.node ? n.node->GetStatus(Local(n, now_)) : Node::Status{};
}

void Simulation::BeforeCall(SimNode& n) {
  for (SimNode::SlotCheck& c : n.slots) {
    if (c.added && !c.lapsed && c.belief_end <= now_) c.lapsed = true;
  }
}

void Simulation::AfterCall(SimNode& n) {
  const Time local = Local(n, now_);
  // The node's output, applied in Ready's order: actions, durable state, messages.
  Ready ready = n.node->TakeReady();
  for (const Action& a : ready.actions) {
    if (a.slot >= n.slots.size()) {
      Violation("action for unknown slot");
      continue;
    }
    SimNode::SlotCheck& c = n.slots[a.slot];
    std::ostringstream what;
    switch (a.kind) {
      case Action::Kind::kRemoveAddress:
        if (!c.added) Violation("node " + std::to_string(n.id) + " removed an address it had not added");
        c.added = false;
        c.lapsed = false;
        history_.push_back({now_, n.id, a.slot, false, a.epoch});
        Trace("node " + std::to_string(n.id) + " REMOVE slot " +
              std::to_string(a.slot) + " epoch " + std::to_string(a.epoch));
        break;
      case Action::Kind::kAddAddress: {
        if (c.added) Violation("node " + std::to_string(n.id) + " added twice");
        for (const auto& [oid, o] : nodes_) {
          if (oid == n.id || !o->node) continue;
          const SimNode::SlotCheck& oc = o->slots[a.slot];
          if (oc.added && !oc.lapsed && oc.belief_end > now_) {
            what << "two holders of slot " << a.slot << ": node " << n.id
                 << " adds (epoch " << a.epoch << ") while node " << oid
                 << " holds (epoch " << oc.epoch << ") for another "
                 << (oc.belief_end - now_).count() << " ns";
            Violation(what.str());
          }
        }
        auto& [last_node, last_epoch] = last_add_[a.slot];
        // Epochs must grow unless every grantor that remembered the last one
        // may have forgotten it: a crash (amnesia) since shortly before the
        // last add excuses a repeat (docs/takeover.md "Epochs").
        const RealTime window_start = last_add_time_[a.slot] - 2 * StartupQuiet(options_.group.timing);
        const bool amnesia = !options_.persist && last_crash_ >= window_start;
        if (last_node != kNoNode && !amnesia &&
            (last_node == n.id ? a.epoch < last_epoch : a.epoch <= last_epoch)) {
          Violation("epoch did not grow: node " + std::to_string(n.id) + " epoch " +
                    std::to_string(a.epoch) + " after node " +
                    std::to_string(last_node) + " epoch " + std::to_string(last_epoch));
        }
        last_add_[a.slot] = {n.id, a.epoch};
        last_add_time_[a.slot] = now_;
        c.added = true;
        c.lapsed = false;
        c.epoch = a.epoch;
        history_.push_back({now_, n.id, a.slot, true, a.epoch});
        Trace("node " + std::to_string(n.id) + " ADD slot " +
              std::to_string(a.slot) + " epoch " + std::to_string(a.epoch));
        break;
      }
      case Action::Kind::kAnnounce:
        if (!c.added) Violation("announce without add");
        break;
    }
  }
  if (ready.state) {
    std::optional<PersistentState>& st = ready.state;
    const bool membership_changed =
        !n.persisted || n.persisted->membership.version != st->membership.version ||
        n.persisted->membership.members != st->membership.members ||
        n.persisted->membership.old_members != st->membership.old_members;
    n.persisted = std::move(st);
    const Membership& m = n.persisted->membership;
    if (membership_changed && m.version > 0) {
      std::string ids;
      for (NodeId id : m.members) ids += std::to_string(id) + ",";
      Trace("node " + std::to_string(n.id) + " membership v" + std::to_string(m.version) +
            " members [" + ids + "]" + (m.old_members.empty() ? "" : " (joint)"));
    }
  }
  const Node::Status st = n.node->GetStatus(local);
  int held = 0;
  for (const SimNode::SlotCheck& c : n.slots) held += c.added ? 1 : 0;
  if (held > n.capacity) {
    Violation("node " + std::to_string(n.id) + " holds " + std::to_string(held) +
              " slots, above its capacity " + std::to_string(n.capacity));
  }
  for (const Node::SlotStatus& ss : st.slots) {
    SimNode::SlotCheck& c = n.slots[ss.slot];
    if (c.added && c.lapsed) {
      Violation("node " + std::to_string(n.id) +
                " acted on an expired lease (no remove first)");
      c.lapsed = false;
    }
    if (ss.held_by_me != c.added) {
      Violation("node " + std::to_string(n.id) + " status disagrees with its actions");
    }
    if (c.added) c.belief_end = RealOf(n, local + ss.lease_remaining);
  }
  for (Outgoing& o : ready.messages) Send(n.id, std::move(o));
  n.wake = RealOf(n, n.node->NextTick());
}

void Simulation::Send(NodeId from, Outgoing out) {
  ++messages_sent_;
  bytes_sent_ += out.payload.size();
  largest_payload_ = std::max(largest_payload_, out.payload.size());
  if (!nodes_.count(out.to)) {
    Violation("message to unknown node");
    return;
  }
  auto it = blocked_.find({from, out.to});
  if (it != blocked_.end() && it->second) return;
  if (auto h = held_.find({from, out.to}); h != held_.end()) {
    std::vector<Outgoing>& q = h->second.datagrams;
    q.push_back(std::move(out));
    if (q.size() > h->second.max_datagrams) q.erase(q.begin());
    return;
  }
  std::uniform_real_distribution<double> u(0.0, 1.0);
  if (u(rng_) < options_.network.loss) return;
  const int copies = u(rng_) < options_.network.duplicate ? 2 : 1;
  std::uniform_int_distribution<int64_t> delay(options_.network.min_delay.count(),
                                               options_.network.max_delay.count());
  for (int i = 0; i < copies; ++i) {
    queue_.push(Event{now_ + RealTime(delay(rng_)), seq_++, out.to, from,
                      i + 1 < copies ? out.payload : std::move(out.payload)});
  }
}

void Simulation::Deliver(Event e) {
  SimNode& n = N(e.to);
  if (!n.node) return;
  const bool costly = options_.receive_cost > RealTime(0) || options_.drop_cost > RealTime(0);
  if (n.paused_until > now_ || (costly && !n.inbox.empty())) {
    n.inbox.push_back(std::move(e));  // Behind what queued up (socket order).
    return;
  }
  ReceiveOne(n, e);
}

void Simulation::ReceiveOne(SimNode& n, Event& e) {
  const bool costly = options_.receive_cost > RealTime(0) || options_.drop_cost > RealTime(0);
  auto dropped = [&] {
    const Node::Status st = n.node->GetStatus(Local(n, now_));
    return st.malformed_messages + st.stale_messages + st.late_messages;
  };
  const uint64_t before = costly ? dropped() : 0;
  BeforeCall(n);
  n.node->Receive(e.from, e.payload, Local(n, now_));
  AfterCall(n);
  if (!costly || !n.node) return;
  const RealTime cost = dropped() > before ? options_.drop_cost : options_.receive_cost;
  n.paused_until = std::max(n.paused_until, now_ + cost);
}

void Simulation::WakeNode(SimNode& n) {
  if ((options_.receive_cost > RealTime(0) || options_.drop_cost > RealTime(0)) &&
      !n.inbox.empty()) {
    // Busy, not paused: timers that came due run between datagrams (an
    // event loop), and one queued datagram is handled per wake-up.
    if (n.wake <= now_) {
      BeforeCall(n);
      n.node->Tick(Local(n, now_));
      AfterCall(n);
      if (!n.node) return;
    }
    Event e = std::move(n.inbox.front());
    n.inbox.erase(n.inbox.begin());
    ReceiveOne(n, e);
    return;
  }
  // A resumed node first sees what queued up in its socket, then ticks.
  std::vector<Event> inbox = std::move(n.inbox);
  n.inbox.clear();
  for (Event& e : inbox) {
    if (!n.node) break;
    BeforeCall(n);
    n.node->Receive(e.from, e.payload, Local(n, now_));
    AfterCall(n);
  }
  if (!n.node) return;
  BeforeCall(n);
  n.node->Tick(Local(n, now_));
  AfterCall(n);
}

void Simulation::RunUntil(RealTime until) {
  while (true) {
    RealTime next = RealTime::max();
    SimNode* wake = nullptr;
    for (auto& [id, n] : nodes_) {
      if (!n->node) continue;
      RealTime w = std::max(n->wake, n->paused_until);
      if (!n->inbox.empty()) w = std::max(n->paused_until, now_);
      w = std::max(w, now_);
      if (w < next) {
        next = w;
        wake = n.get();
      }
    }
    const bool message_first = !queue_.empty() && queue_.top().at <= next;
    if (message_first) next = queue_.top().at;
    if (next > until) break;
    // A protocol that keeps exchanging messages or waking up without time
    // passing would hang the simulation: report it as a failure instead.
    same_instant_events_ = next == now_ ? same_instant_events_ + 1 : 0;
    if (same_instant_events_ > 100000) {
      Violation("livelock: 100000 events without time passing");
      break;
    }
    if (queue_.size() > 1000000 || messages_sent_ > 20000000) {
      Violation("message storm: too many datagrams");
      break;
    }
    now_ = next;
    if (message_first) {
      Event e = queue_.top();
      queue_.pop();
      Deliver(std::move(e));
    } else {
      WakeNode(*wake);
    }
  }
  now_ = until;
}

}  // namespace baton::takeover::sim

// Implementation of the lease protocol. The safety argument (why each margin
// is what it is) is in docs/takeover.md; comments here point at its sections.
#include "takeover/core/node.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "takeover/core/assignment.h"
#include "takeover/core/wire.h"

namespace baton::takeover {
namespace {

// Far past/future sentinels, with headroom so that adding or subtracting a
// margin never overflows.
constexpr Time kNever = Time::max() / 4;
constexpr Time kLongAgo = Time::min() / 4;

uint64_t ToWire(Time t) { return static_cast<uint64_t>(t.count()); }
// A time or duration from a peer's message, bounded to [-2^61, 2^61] ns
// (73 years either way): differences and sums of two such values, and with
// our own clock, can then never overflow, whatever an authenticated but
// broken or hostile peer sends (found by tests/fuzz: send_time >= 2^63
// overflowed `now - send_time`). Values a correct peer sends are within the
// bound, so they round-trip exactly (negative ones too).
constexpr int64_t kMaxWireTime = int64_t{1} << 61;
Time FromWire(uint64_t v) {
  return Time(std::clamp(static_cast<int64_t>(v), -kMaxWireTime, kMaxWireTime));
}

Time Scale(Time t, double f) {
  return Time(static_cast<int64_t>(std::ceil(static_cast<double>(t.count()) * f)));
}

}  // namespace

Timing Timing::ForHeartbeat(Time heartbeat) {
  Timing t;
  const double f = static_cast<double>(heartbeat.count()) /
                   static_cast<double>(t.heartbeat.count());
  t.heartbeat = heartbeat;
  t.lease = Scale(t.lease, f);
  t.grant_margin = Scale(t.grant_margin, f);
  t.remove_margin = Scale(t.remove_margin, f);
  t.peer_timeout = Scale(t.peer_timeout, f);
  t.discovery = Scale(t.discovery, f);
  t.shrink_after = Scale(t.shrink_after, f);
  return t;
}

// Docs "Leases": the grantor's hold, measured on the grantor's clock from
// receipt, lasts at least lease×(1+ρ)/(1−ρ) of its clock, i.e. at least
// lease/(1−ρ) real time, which is the longest real time the holder's `lease`
// of its own clock can last.
Time GrantHold(const Timing& timing) {
  const double rho = timing.max_drift;
  return Scale(timing.lease, (1.0 + rho) / (1.0 - rho)) + timing.grant_margin;
}

Time StartupQuiet(const Timing& timing) {
  return std::max(timing.discovery, GrantHold(timing));
}

namespace {

struct PeerState {
  PeerConfig config;
  bool heard = false;
  Time last_heard = kLongAgo;  // Our clock.
  uint64_t incarnation = 0;
  uint64_t last_seq = 0;  // Highest message counter seen (this incarnation).
  // Per slot: counter of the newest request and release seen from the peer,
  // so that a delayed release never drops a newer grant and a delayed
  // request never revives a released one.
  std::vector<uint64_t> request_seq;
  std::vector<uint64_t> release_seq;
  bool quiet = false;
  bool draining = false;
  std::vector<uint32_t> view;  // As last reported by the peer.
  Time present_since = kLongAgo;  // When it last came into our view.
  // The peer's membership as last reported (for counting promises and
  // acceptances): version, members, whether it is joint, and its ballots.
  uint64_t config_version = 0;
  std::vector<uint32_t> members;
  bool joint = false;
  Ballot promised;
  Ballot accepted;
  // Pool: the peer's advertised capacity (config value until heard), the
  // slots it drained alone, and whether its reported view has a majority of
  // our membership (cached: recomputed when either changes).
  int capacity = 0;
  std::vector<bool> drained;
  size_t drained_count = 0;
  bool view_majority = false;
  // Late-message filter (docs "Late messages"): the smallest
  // (our receipt time − its send time) seen, relaxed upward by kFloorRelax
  // per unit of our time since `floor_at`. A message whose value exceeds it
  // by more than late_limit_ was delayed at least that much longer than the
  // fastest one: its requests, replies, claims and view are long out of date.
  bool have_floor = false;
  Time delay_floor{0};
  Time floor_at{0};
  // Start of the current run of late messages (kNever: none). A run longer
  // than late_limit_ is a lasting shift, not a burst: the floor is re-based.
  Time late_since = kNever;
  Time last_late = kLongAgo;
};

struct PendingReply {
  bool granted = false;
  uint64_t echo = 0;
  uint64_t epoch = 0;
  Time wait{0};
};

struct SlotState {
  // --- Grantor side (docs "Grants").
  NodeId grantee = kNoNode;
  uint64_t grantee_incarnation = 0;  // Only that run of the grantee may release.
  Time grant_until = kLongAgo;  // Our clock.
  uint64_t grant_epoch = 0;
  // Highest epoch granted here or claimed by a confirmed holder, and to whom.
  uint64_t max_epoch = 0;
  NodeId max_epoch_owner = kNoNode;
  // Highest epoch heard of from anyone (gossip), and its owner: a floor for
  // our own proposals, so that a node that forgot (restart) still proposes
  // above what the live group remembers.
  uint64_t known_epoch = 0;
  NodeId known_owner = kNoNode;

  // --- Candidate / holder side (docs "Leases").
  bool campaigning = false;
  Time campaign_start = kLongAgo;
  uint64_t my_epoch = 0;
  std::vector<Time> valid_until;  // Per peer index; lease believed per grantor.
  bool added = false;
  uint64_t held_epoch = 0;
  Time retry_at = kNever;
  // A request round ran in this call: the messages of this call carry the
  // request. Other messages (replies, news) do not, so that a reply never
  // asks for a reply (two candidates would otherwise ping-pong forever).
  bool request_now = false;
  Time release_until = kLongAgo;  // Advertise a release until then.
  bool drained_here = false;      // Drain(slot): we do not campaign for it.
  // Counters since Create (Status): added here, removed here, removed as shed.
  uint64_t takeovers = 0;
  uint64_t releases = 0;
  uint64_t sheds = 0;

  // --- Knowledge of others' holding (from their own claims).
  NodeId claimed_holder = kNoNode;
  uint64_t claimed_epoch = 0;
  Time claim_heard = kLongAgo;
};

class NodeImpl final : public Node {
 public:
  NodeImpl(const GroupConfig& config, NodeId self, size_t self_index, Time now,
           const std::optional<PersistentState>& restored)
      : config_(config),
        timing_(config.timing),
        self_(self),
        self_index_(self_index),
        grant_hold_(GrantHold(config.timing)),
        commit_wait_(Scale(GrantHold(config.timing),
                           (1.0 + config.timing.max_drift) / (1.0 - config.timing.max_drift)) +
                     config.timing.grant_margin),
        grow_after_(std::min(config.timing.shrink_after, 10 * config.timing.heartbeat)),
        stall_wait_(2 * commit_wait_ + 2 * config.timing.peer_timeout +
                    2 * config.timing.heartbeat),
        start_(now),
        quiet_until_(now + StartupQuiet(config.timing)),
        incarnation_(now.count() == 0 ? 1 : static_cast<uint64_t>(now.count())),
        next_heartbeat_(now),
        last_now_(now),
        floor_relax_(2 * config.timing.max_drift + 1.0 / 32),
        late_limit_(2 * config.timing.lease + config.timing.heartbeat) {
    for (const PeerConfig& p : config.peers) {
      PeerState ps;
      ps.config = p;
      ps.capacity = std::max(0, p.capacity);
      ps.drained.assign(config.num_slots, false);
      index_[p.id] = peers_.size();
      peers_.push_back(ps);
    }
    capacity_ = peers_[self_index].capacity;
    rebalance_ = config.rebalance || (config.preempt && config.num_slots > 1);
    slots_.resize(config.num_slots);
    assigned_.assign(config.num_slots, kNoNode);
    for (SlotState& s : slots_) s.valid_until.assign(peers_.size(), kLongAgo);
    pending_replies_.resize(peers_.size());
    send_to_.assign(peers_.size(), false);
    gossip_epoch_.assign(config.num_slots, 0);
    gossip_owner_.assign(config.num_slots, kNoNode);
    gossip_left_.assign(config.num_slots, 0);
    named_.assign(config.num_slots, false);
    member_.assign(peers_.size(), true);
    if (restored && config.timing.shrink_after > Time(0)) {
      const Membership& m = restored->membership;
      cfg_version_ = m.version;
      member_ = SetOf(m.members);
      if (!m.old_members.empty()) old_member_ = SetOf(m.old_members);
      promised_ = m.promised;
      if (Joint()) {
        accepted_ = m.accepted;
        joint_since_ = now;
      }
    }
    if (restored) {
      for (size_t i = 0; i < slots_.size() && i < restored->epochs.size(); ++i) {
        slots_[i].max_epoch = restored->epochs[i];
        slots_[i].known_epoch = restored->epochs[i];
        if (i < restored->epoch_owners.size()) {
          slots_[i].max_epoch_owner = restored->epoch_owners[i];
          slots_[i].known_owner = restored->epoch_owners[i];
        }
      }
    }
    persisted_epochs_ = EpochFloors();
  }

  void Receive(NodeId from, std::string_view payload, Time now) override {
    Advance(now);
    ExpireLeases(now);
    const std::optional<size_t> idx = IndexOf(from);
    std::optional<wire::Message> msg = wire::Decode(payload);
    if (!idx || *idx == self_index_ || !msg) {
      ++malformed_;
    } else if (const Freshness f = Classify(*idx, *msg, now); f != Freshness::kDrop) {
      Handle(*idx, *msg, f == Freshness::kNewest, now);
    }
    Evaluate(now);
    Flush(now);
  }

  void Tick(Time now) override {
    Advance(now);
    ExpireLeases(now);
    if (now >= next_heartbeat_) {
      SendToAll();
      heartbeat_due_ = true;
      next_heartbeat_ = now + timing_.heartbeat;
    }
    Evaluate(now);
    Flush(now);
  }

  Time NextTick() const override {
    Time next = next_heartbeat_;
    auto consider = [&](Time t) {
      if (t > last_now_ && t < next) next = t;
    };
    consider(quiet_until_);
    consider(commit_at_);
    for (const PeerState& p : peers_) {
      if (p.heard) consider(p.last_heard + timing_.peer_timeout);
    }
    for (const SlotState& s : slots_) {
      if (s.added) consider(LeaseEnd(s) - timing_.remove_margin);
      if (s.campaigning) consider(s.retry_at);
      if (s.grantee != kNoNode) consider(s.grant_until);
      if (s.claimed_holder != kNoNode) {
        consider(s.claim_heard + timing_.peer_timeout);
      }
    }
    return next;
  }

  void Drain(Time now) override {
    Advance(now);
    ExpireLeases(now);
    draining_ = true;
    for (uint32_t i = 0; i < slots_.size(); ++i) GiveUp(i, now);
    Evaluate(now);
    Flush(now);
  }

  void Drain(uint32_t slot, Time now) override {
    Advance(now);
    ExpireLeases(now);
    if (slot < slots_.size()) {
      slots_[slot].drained_here = true;
      GiveUp(slot, now);
      SendToAll();  // Peers learn the drained flag and reassign the slot.
    }
    Evaluate(now);
    Flush(now);
  }

  void Undrain(uint32_t slot, Time now) override {
    Advance(now);
    ExpireLeases(now);
    if (slot < slots_.size() && slots_[slot].drained_here) {
      slots_[slot].drained_here = false;
      SendToAll();
    }
    Evaluate(now);
    Flush(now);
  }

  void Resume(Time now) override {
    Advance(now);
    ExpireLeases(now);
    if (draining_) {
      draining_ = false;
      SendToAll();  // Peers learn the cleared flag and count us again.
    }
    Evaluate(now);
    Flush(now);
  }

  void SetCapacity(int capacity, Time now) override {
    Advance(now);
    ExpireLeases(now);
    capacity_ = std::max(0, capacity);
    peers_[self_index_].capacity = capacity_;
    SendToAll();
    Evaluate(now);  // Releases slots above the new capacity first thing.
    Flush(now);
  }

  std::vector<Outgoing> TakeMessages() override {
    return std::exchange(out_, {});
  }
  std::vector<Action> TakeActions() override {
    return std::exchange(actions_, {});
  }
  std::optional<PersistentState> TakeStateToPersist() override {
    std::vector<uint64_t> epochs = EpochFloors();
    if (!persist_pending_ && epochs == persisted_epochs_) return std::nullopt;
    persist_pending_ = false;
    persisted_epochs_ = epochs;
    PersistentState st;
    st.membership = CurrentMembership();
    st.epochs = std::move(epochs);
    for (const SlotState& s : slots_) st.epoch_owners.push_back(s.max_epoch_owner);
    return st;
  }

  Status GetStatus(Time now) const override {
    Status st;
    st.self = self_;
    st.quiet = now < quiet_until_;
    st.draining = draining_;
    st.malformed_messages = malformed_;
    st.stale_messages = stale_;
    st.late_messages = late_;
    st.membership = CurrentMembership();
    st.capacity = capacity_;
    st.shed_slots = shed_now_;
    st.takeovers = takeovers_;
    st.releases = releases_;
    st.sheds = sheds_;
    for (size_t i = 0; i < peers_.size(); ++i) {
      if (i == self_index_ || InView(i, now)) st.view.push_back(peers_[i].config.id);
    }
    for (uint32_t i = 0; i < slots_.size(); ++i) {
      const SlotState& s = slots_[i];
      SlotStatus ss;
      ss.slot = i;
      ss.assigned = assigned_[i];
      ss.shed = i >= slots_.size() - shed_now_;
      ss.takeovers = s.takeovers;
      ss.releases = s.releases;
      ss.sheds = s.sheds;
      if (s.added) ++st.capacity_used;
      if (s.added) {
        ss.holder = self_;
        ss.epoch = s.held_epoch;
        ss.held_by_me = true;
        ss.lease_remaining = std::max(Time(0), LeaseEnd(s) - now);
      } else if (ClaimLive(s, now)) {
        ss.holder = s.claimed_holder;
        ss.epoch = s.claimed_epoch;
      } else {
        ss.epoch = s.max_epoch;
      }
      st.slots.push_back(ss);
    }
    return st;
  }

 private:
  void Advance(Time now) { last_now_ = std::max(last_now_, now); }

  std::optional<size_t> IndexOf(NodeId id) const {
    auto it = index_.find(id);
    if (it == index_.end()) return std::nullopt;
    return it->second;
  }
  // Every peer gets a full message in this call's Flush (docs "Lease
  // traffic"): the state, every held slot, requests and releases.
  void SendToAll() {
    std::fill(send_to_.begin(), send_to_.end(), true);
    send_to_[self_index_] = false;
    full_flush_ = true;
  }

  bool InView(size_t i, Time now) const {
    return peers_[i].heard && now < peers_[i].last_heard + timing_.peer_timeout;
  }
  // --- Membership (docs "Serial failures").
  std::vector<bool> SetOf(const std::vector<NodeId>& ids) const {
    std::vector<bool> set(peers_.size(), false);
    for (NodeId id : ids) {
      if (std::optional<size_t> i = IndexOf(id)) set[*i] = true;
    }
    return set;
  }
  std::vector<uint32_t> IdsOf(const std::vector<bool>& set) const {
    std::vector<uint32_t> ids;
    for (size_t i = 0; i < set.size(); ++i) {
      if (set[i]) ids.push_back(peers_[i].config.id);
    }
    std::sort(ids.begin(), ids.end());
    return ids;
  }
  Membership CurrentMembership() const {
    Membership m;
    m.version = cfg_version_;
    m.members = IdsOf(member_);
    if (Joint()) m.old_members = IdsOf(old_member_);
    m.promised = promised_;
    m.accepted = accepted_;
    return m;
  }
  bool Joint() const { return !old_member_.empty(); }
  std::vector<uint64_t> EpochFloors() const {
    std::vector<uint64_t> v;
    for (const SlotState& s : slots_) v.push_back(s.max_epoch);
    return v;
  }
  static size_t MajorityOf(const std::vector<bool>& set) {
    return static_cast<size_t>(std::count(set.begin(), set.end(), true)) / 2 + 1;
  }
  // True if the ids in `view` contain a majority of `set`.
  bool HasMajority(const std::vector<uint32_t>& view, const std::vector<bool>& set) const {
    // Distinct ids only: a peer's list is trusted for who it names, not for
    // how often.
    const std::vector<bool> in_view = SetOf(view);
    size_t n = 0;
    for (size_t i = 0; i < set.size(); ++i) {
      if (set[i] && in_view[i]) ++n;
    }
    return n >= MajorityOf(set);
  }
  // True if `view` has a majority of the members (and of the old members
  // while a change is under way).
  bool ViewHasMajority(const std::vector<uint32_t>& view) const {
    return HasMajority(view, member_) && (!Joint() || HasMajority(view, old_member_));
  }
  std::vector<uint32_t> MyView(Time now) const {
    std::vector<uint32_t> v;
    for (size_t j = 0; j < peers_.size(); ++j) {
      if (j == self_index_ || InView(j, now)) v.push_back(peers_[j].config.id);
    }
    return v;
  }
  // The version of the last membership this node knows to be committed.
  uint64_t CommittedVersion() const { return Joint() ? cfg_version_ - 1 : cfg_version_; }
  const std::vector<bool>& CommittedSet() const { return Joint() ? old_member_ : member_; }

  void SetConfig(uint64_t version, std::vector<bool> members, std::vector<bool> old_members) {
    const uint64_t was_committed = CommittedVersion();
    cfg_version_ = version;
    member_ = std::move(members);
    old_member_ = std::move(old_members);
    commit_at_ = kNever;
    persist_pending_ = true;
    if (!Joint()) accepted_ = Ballot{};
    if (CommittedVersion() != was_committed) {
      // A new committed version: ballots are per version.
      promised_ = Ballot{};
      accepted_ = Ballot{};
      prepare_ = Ballot{};
    }
    SendToAll();
    for (PeerState& p : peers_) p.view_majority = ViewHasMajority(p.view);
  }
  // Accepts the change (version committed + 1, members) under `ballot`: we
  // become joint with the committed set as the old members (docs "Serial
  // failures": phase 2). From now on we grant only at that membership.
  void Accept(const Ballot& ballot, std::vector<bool> members, Time now) {
    std::vector<bool> base = CommittedSet();
    const uint64_t version = CommittedVersion() + 1;
    promised_ = std::max(promised_, ballot);
    SetConfig(version, std::move(members), std::move(base));
    accepted_ = ballot;
    joint_since_ = now;
  }
  // Learns the membership from a peer's newest message (before its requests
  // are decided): committed memberships are adopted, promises are raised,
  // and a change under a ballot we may accept is accepted.
  void LearnConfig(size_t from, const wire::Message& m, Time now) {
    PeerState& p = peers_[from];
    const bool joint = !m.old_members.empty();
    p.config_version = m.config_version;
    p.members = m.members;
    p.joint = joint;
    p.promised = Ballot{m.promised_round, m.promised_node};
    p.accepted = joint ? Ballot{m.accepted_round, m.accepted_node} : Ballot{};
    if (timing_.shrink_after <= Time(0)) return;
    // A committed membership (version, set) is known from a stable sender,
    // and from a changing sender as the base of its change (a change of
    // version w is only ever made on top of the committed w−1). At most one
    // membership per version is ever committed (the ballots below), so a
    // newer one is adopted on sight, and so is one of the version we are
    // still changing to (whatever we accepted, this one was chosen).
    if (m.config_version == 0 && !joint) {
      // The static peer list: nothing to learn.
    } else {
      const uint64_t committed_version = joint ? m.config_version - 1 : m.config_version;
      if (committed_version > CommittedVersion() ||
          (committed_version == cfg_version_ && Joint())) {
        SetConfig(committed_version, SetOf(joint ? m.old_members : m.members), {});
      }
    }
    // The agreement on version CommittedVersion() + 1 (same base only).
    const uint64_t base = joint ? m.config_version - 1 : m.config_version;
    if (base != CommittedVersion()) return;
    if (p.promised > promised_) {
      // Promising more only refuses more: always safe, and it carries a
      // proposer's ballot to nodes it does not reach directly.
      promised_ = p.promised;
      promise_raised_at_ = now;
      persist_pending_ = true;
      SendToAll();  // The proposer counts our promise from our next message.
    }
    if (joint && SetOf(m.old_members) == CommittedSet() && p.accepted >= promised_ &&
        (!Joint() || p.accepted > accepted_)) {
      Accept(p.accepted, SetOf(m.members), now);
    }
  }
  // True if no peer in our view reports hearing peer `i` (makes conflicting
  // proposals from nodes with different views less likely).
  bool NobodyHears(size_t i, Time now) const {
    const uint32_t id = peers_[i].config.id;
    for (size_t j = 0; j < peers_.size(); ++j) {
      if (j == self_index_ || j == i || !InView(j, now)) continue;
      const std::vector<uint32_t>& v = peers_[j].view;
      if (std::find(v.begin(), v.end(), id) != v.end()) return false;
    }
    return true;
  }
  bool SameConfig(const wire::Message& m) const {
    return m.config_version == cfg_version_ && SetOf(m.members) == member_;
  }
  // The membership this node would like next (shrink and grow) instead of
  // the committed one, or nullopt.
  std::optional<std::vector<bool>> DesiredChange(Time now) const {
    const std::vector<bool>& base = CommittedSet();
    std::vector<bool> next = base;
    bool changed = false;
    for (size_t i = 0; i < peers_.size(); ++i) {
      if (i == self_index_) continue;
      const PeerState& p = peers_[i];
      const Time last = p.heard ? p.last_heard : start_;
      if (base[i] && now - last >= timing_.shrink_after && NobodyHears(i, now)) {
        next[i] = false;
        changed = true;
      } else if (!base[i] && InView(i, now) && !p.draining && !p.quiet &&
                 now - p.present_since >= grow_after_) {
        next[i] = true;
        changed = true;
      }
    }
    if (!changed) return std::nullopt;
    return next;
  }
  // Phase 1 (docs "Serial failures"): asks for promises of a fresh ballot,
  // higher than every ballot we know of, for the change `value`.
  void Prepare(std::vector<bool> value, Time now) {
    Ballot b{std::max(promised_.round, accepted_.round) + 1, self_};
    for (const PeerState& p : peers_) b.round = std::max(b.round, p.promised.round + 1);
    prepare_ = b;
    prepare_value_ = std::move(value);
    prepare_at_ = now;
    promised_ = b;
    persist_pending_ = true;
    SendToAll();
    if (config_.testing.skip_prepare) {
      // BROKEN (GroupConfig::Testing): no promises, no look at what may
      // already have been accepted.
      Accept(b, prepare_value_, now);
      prepare_ = Ballot{};
    }
  }
  // Phase 1 under way: once a majority of the committed members promised our
  // ballot, propose. If a change may have been chosen -- reported as
  // accepted by so many promisers that, with the members that did not
  // answer, they could form a majority -- propose the one with the highest
  // ballot any promiser accepted (Paxos). Otherwise nothing was chosen, and
  // we propose what we want now: our own change, or, if we want none but
  // someone is stuck in an old change, the unchanged membership under the new
  // version (which frees it).
  void CompletePrepare(Time now) {
    if (prepare_ == Ballot{} || promised_ != prepare_) return;
    const std::vector<bool>& base = CommittedSet();
    struct Report {
      size_t index;
      Ballot accepted;  // (0, 0): accepted nothing.
      std::vector<bool> value;
    };
    std::vector<Report> reports = {
        {self_index_, Joint() ? accepted_ : Ballot{}, Joint() ? member_ : std::vector<bool>{}}};
    for (size_t i = 0; i < peers_.size(); ++i) {
      const PeerState& p = peers_[i];
      if (i == self_index_ || !p.heard || p.promised != prepare_) continue;
      const uint64_t peer_base = p.joint ? p.config_version - 1 : p.config_version;
      if (peer_base != CommittedVersion()) continue;
      reports.push_back({i, p.joint ? p.accepted : Ballot{},
                         p.joint ? SetOf(p.members) : std::vector<bool>{}});
    }
    size_t promised = 0;
    std::vector<bool> answered(peers_.size(), false);
    for (const Report& r : reports) {
      promised += base[r.index] ? 1 : 0;
      answered[r.index] = true;
    }
    const size_t majority = MajorityOf(base);
    if (promised < majority) return;
    // A majority suffices, but every answer more can rule out that an old
    // change was chosen (and so spare re-proposing it): wait a little for the
    // members we hear, who answer at once.
    bool all_in_view = true;
    for (size_t i = 0; i < peers_.size(); ++i) {
      if (base[i] && !answered[i] && InView(i, now)) all_in_view = false;
    }
    if (!all_in_view && now - prepare_at_ < 2 * timing_.heartbeat) return;
    const size_t silent = static_cast<size_t>(std::count(base.begin(), base.end(), true)) - promised;
    Ballot best;
    std::vector<bool> value;
    bool stuck = false;
    for (const Report& r : reports) {
      if (r.accepted == Ballot{}) continue;
      stuck = true;
      size_t same = 0;
      for (const Report& q : reports) {
        if (base[q.index] && q.accepted != Ballot{} && q.value == r.value) ++same;
      }
      if (same + silent >= majority && r.accepted > best) {
        best = r.accepted;
        value = r.value;
      }
    }
    const Ballot b = prepare_;
    prepare_ = Ballot{};
    if (best == Ballot{}) {
      value = prepare_value_;
      if (value == base && !stuck) return;  // Nothing to change any more.
    }
    Accept(b, std::move(value), now);
  }
  // Proposes a new membership (shrink/grow) or completes one under way.
  void EvaluateMembership(Time now) {
    if (timing_.shrink_after <= Time(0)) return;
    CompletePrepare(now);
    if (Joint()) {
      if (commit_at_ == kNever) {
        // Accepted by a majority of the old members (ourselves included)
        // under our very ballot: the change is chosen, no lease under any
        // other membership of this version can be formed any more, and
        // those formed before end within commit_wait_.
        std::vector<uint32_t> acked = {self_};
        for (size_t i = 0; i < peers_.size(); ++i) {
          const PeerState& p = peers_[i];
          if (i == self_index_ || !p.heard) continue;
          if (p.joint && p.config_version == cfg_version_ && p.accepted == accepted_ &&
              SetOf(p.members) == member_) {
            acked.push_back(p.config.id);
          }
        }
        if (HasMajority(acked, old_member_)) commit_at_ = now + commit_wait_;
      }
      if (now >= commit_at_) {
        SetConfig(cfg_version_, member_, {});
        return;
      }
      // Stalled (e.g. two proposals split the acceptances, or the proposer
      // died before a majority accepted): a member of the old group starts a
      // new ballot, which re-proposes the change that may have been chosen.
      // The top-ranked member in view goes first, the others later, so that
      // they rarely compete; any progress (a higher ballot) restarts the wait.
      if (!old_member_[self_index_]) return;
      const Time since = std::max({joint_since_, promise_raised_at_, prepare_at_});
      if (now - since >= stall_wait_ * static_cast<int64_t>(1 + RankAmong(old_member_, now))) {
        Prepare(DesiredChange(now).value_or(old_member_), now);
      }
      return;
    }
    // Only the holder of slot 0 proposes: there is at most one at any time,
    // and it can only have become holder at the current membership, so two
    // different changes of the same version are rarely proposed at once
    // (they are safe anyway: the ballots let at most one be chosen).
    // In a pool whose members in view all lack capacity nobody can hold slot
    // 0 (say the group shrank to capacity-0 grantors); then the top-ranked
    // eligible member proposes. It must have been top for a view timeout
    // plus a round first: right after a partition heals two nodes that do
    // not hear each other yet would both be "top" and compete.
    const bool fallback = assigned_[0] == kNoNode && !ClaimLive(slots_[0], now) &&
                          IAmTopEligible(now) && ViewHasMajority(MyView(now));
    if (!fallback) {
      fallback_since_ = kNever;
    } else if (fallback_since_ == kNever) {
      fallback_since_ = now;
    }
    const bool proposer =
        slots_[0].added || config_.testing.every_node_proposes ||
        (fallback && now - fallback_since_ >= timing_.peer_timeout + timing_.heartbeat);
    if (draining_ || Quiet(now) || !member_[self_index_] || !proposer) return;
    if (!ViewHasMajority(MyView(now))) return;
    std::optional<std::vector<bool>> next = DesiredChange(now);
    if (!next) return;
    if (prepare_ != Ballot{} && promised_ == prepare_) {
      // Our ballot is still the highest known: wait for the promises (every
      // message repeats our ballot), unless it has been too long.
      if (now - prepare_at_ < stall_wait_) return;
    } else if (promised_ != Ballot{} && promised_.node != self_ &&
               now - promise_raised_at_ < stall_wait_) {
      return;  // Another proposer is at work; do not compete with it.
    }
    Prepare(*std::move(next), now);
  }
  // Our position (0 = first) among the members of `set` in our view, by
  // priority, then id.
  size_t RankAmong(const std::vector<bool>& set, Time now) const {
    size_t rank = 0;
    for (size_t i = 0; i < peers_.size(); ++i) {
      if (i != self_index_ && set[i] && InView(i, now) && Outranks(i, self_index_)) ++rank;
    }
    return rank;
  }
  bool Quiet(Time now) const { return now < quiet_until_; }
  bool ClaimLive(const SlotState& s, Time now) const {
    return s.claimed_holder != kNoNode &&
           now < s.claim_heard + timing_.peer_timeout;
  }

  // Rank for "who campaigns": higher priority, then lower id.
  bool Outranks(size_t a, size_t b) const {
    const PeerConfig& pa = peers_[a].config;
    const PeerConfig& pb = peers_[b].config;
    if (pa.priority != pb.priority) return pa.priority > pb.priority;
    return pa.id < pb.id;
  }
  // A peer counts for "who campaigns" if we hear it, it hears a majority and it
  // has not drained. Quiet peers count: after a simultaneous start every node
  // is quiet for the same time, and the top one must win (property 3).
  bool PeerEligible(size_t i, Time now) const {
    const PeerState& p = peers_[i];
    return InView(i, now) && !p.draining && member_[i] && p.view_majority;
  }

  bool IAmTopEligible(Time now) const {
    for (size_t i = 0; i < peers_.size(); ++i) {
      if (i != self_index_ && PeerEligible(i, now) && Outranks(i, self_index_)) return false;
    }
    return true;
  }

  // The k-th largest per-grantor validity (k = majority): the lease the node
  // believes it has. kLongAgo if it has fewer than a majority of grants.
  Time LeaseEnd(const SlotState& s) const {
    Time end = KthValid(s, member_);
    if (Joint()) end = std::min(end, KthValid(s, old_member_));
    return end;
  }
  Time KthValid(const SlotState& s, const std::vector<bool>& set) const {
    std::vector<Time> v;
    for (size_t i = 0; i < set.size(); ++i) {
      if (set[i]) v.push_back(s.valid_until[i]);
    }
    const size_t k = MajorityOf(set);
    if (v.size() < k) return kLongAgo;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k - 1), v.end(),
                     std::greater<>());
    return v[k - 1];
  }

  enum class Freshness { kDrop, kOld, kNewest };
  // Messages from an older run of the peer are dropped. Within a run,
  // duplicated or reordered messages still carry useful replies and
  // requests (guarded per slot in Handle), but only the newest one updates
  // what we know of the peer's state; docs "Messages".
  Freshness Classify(size_t i, const wire::Message& m, Time now) {
    PeerState& p = peers_[i];
    if (p.heard && m.incarnation != p.incarnation) {
      if (m.incarnation < p.incarnation && InView(i, now)) {
        // Older run while the newer one is alive: a delayed message. (A lower
        // incarnation is accepted once the newer one went silent: a host
        // reboot resets the monotonic clock.)
        ++stale_;
        return Freshness::kDrop;
      }
      p.heard = false;
    }
    if (!p.heard) {
      p.heard = true;
      p.incarnation = m.incarnation;
      p.last_seq = 0;
      p.request_seq.assign(slots_.size(), 0);
      p.release_seq.assign(slots_.size(), 0);
      p.have_floor = false;  // A new run may have a new clock origin.
    }
    // Late messages: a burst of datagrams held back while a link was down
    // (the kernel's neighbour queue keeps them for seconds and releases them
    // once the next hop resolves again) arrives in order with fresh sequence
    // numbers, so only their age gives them away. Dropping one is a loss,
    // which the protocol tolerates; processing a few hundred of them made
    // a holder miss its renewals in the lab (docs "Late messages").
    const Time sample = now - FromWire(m.send_time);
    if (p.have_floor) {
      Time floor = p.delay_floor + Scale(now - p.floor_at, floor_relax_);
      if (sample - floor > late_limit_) {
        // A gap of late_limit_ between late messages starts a new run.
        if (p.late_since == kNever || now - p.last_late > late_limit_) p.late_since = now;
        p.last_late = now;
        if (now - p.late_since <= late_limit_) {
          ++late_;
          return Freshness::kDrop;
        }
        // Still late after late_limit_: not a burst (which drains within
        // milliseconds) but a lasting shift: a slower path, or the sender's
        // clock stood still (a suspend with CLOCK_MONOTONIC). Re-base.
        floor = sample;
      }
      p.late_since = kNever;
      p.delay_floor = std::min(floor, sample);
    } else {
      p.have_floor = true;
      p.delay_floor = sample;
    }
    p.floor_at = now;
    if (!InView(i, now)) p.present_since = now;
    p.last_heard = now;
    if (m.seq <= p.last_seq) {
      ++stale_;
      return Freshness::kOld;
    }
    p.last_seq = m.seq;
    p.quiet = m.quiet;
    p.draining = m.draining;
    if (m.full) p.view = m.view;  // Only full messages carry the view.
    return Freshness::kNewest;
  }

  void Handle(size_t from, const wire::Message& m, bool newest, Time now) {
    PeerState& peer = peers_[from];
    const NodeId from_id = peer.config.id;
    const bool replies_for_me = m.peer_incarnation == incarnation_;
    // Only a full message carries the sender's state (docs "Lease traffic");
    // one made to answer requests leaves what we know of it unchanged.
    const bool state = newest && m.full;
    if (state) {
      LearnConfig(from, m, now);
      peer.view_majority = ViewHasMajority(peer.view);
      peer.capacity = static_cast<int>(std::min<uint32_t>(m.capacity, 1u << 20));
      std::fill(peer.drained.begin(), peer.drained.end(), false);
      peer.drained_count = 0;
      for (uint32_t k : m.drained) {
        if (k >= slots_.size()) {
          ++malformed_;
          continue;
        }
        peer.drained[k] = true;
        ++peer.drained_count;
      }
    }
    const bool same_config = m.full && SameConfig(m);
    for (const wire::SlotEntry& e : m.slots) {
      if (e.slot >= slots_.size()) {
        ++malformed_;
        continue;
      }
      SlotState& s = slots_[e.slot];
      // Knowledge: the sender's own holding epoch, or its highest epoch of a
      // slot it does not hold. Floors for our proposals only (docs "Lease
      // traffic": stale or missing knowledge costs a refused round, never
      // safety).
      if (newest && (e.holding || e.knowledge)) {
        const NodeId owner = e.holding ? from_id : e.holder;
        if (e.epoch > s.known_epoch) {
          s.known_epoch = e.epoch;
          s.known_owner = owner;
        }
        if (Quiet(now) && e.epoch > s.max_epoch) {
          // A restarted node forgot its grants; while it may not grant anyway
          // it adopts the group's highest epoch as its refusal floor.
          s.max_epoch = e.epoch;
          s.max_epoch_owner = owner;
        }
      }
      // The sender's own claim to hold the slot.
      if (!newest) {
        // Only requests and replies of an old message still count.
      } else if (e.holding && ClaimLive(s, now) && s.claimed_holder != from_id &&
                 e.epoch < s.claimed_epoch) {
        // A claim from an earlier holding period (epochs strictly grow from
        // one holder to the next), delivered late: keep the newer claim.
      } else if (e.holding) {
        s.claimed_holder = from_id;
        s.claimed_epoch = e.epoch;
        s.claim_heard = now;
        if (e.epoch > s.max_epoch) {
          s.max_epoch = e.epoch;
          s.max_epoch_owner = from_id;
        }
      } else if (s.claimed_holder == from_id) {
        s.claimed_holder = kNoNode;
      }
      if (e.release && m.seq > peer.request_seq[e.slot]) {
        peer.release_seq[e.slot] = std::max(peer.release_seq[e.slot], m.seq);
      }
      if (e.release && s.grantee == from_id && s.grantee_incarnation == m.incarnation &&
          m.seq > peer.request_seq[e.slot]) {
        // The sender removed its address before sending this (driver
        // contract), so the grant can go at once: planned hand-over.
        s.grantee = kNoNode;
        s.grant_until = kLongAgo;
      }
      if (e.request && m.seq > peer.release_seq[e.slot]) {
        peer.request_seq[e.slot] = std::max(peer.request_seq[e.slot], m.seq);
        PendingReply r = Decide(e.slot, from, e.request_epoch, same_config, now);
        r.echo = ToWire(FromWire(m.send_time));
        // One echo per reply message: replies to an earlier request message
        // still pending (never within one call, as every call flushes) are
        // superseded, i.e. lost, which only fails those renewals.
        if (!pending_replies_[from].empty() &&
            pending_replies_[from].begin()->second.echo != r.echo) {
          pending_replies_[from].clear();
        }
        pending_replies_[from][e.slot] = r;
        send_to_[from] = true;
      }
      if (e.reply && replies_for_me) OnReply(e.slot, from, e, FromWire(m.reply_echo), now);
    }
    if (state) {
      // A full message names every slot its sender holds: a claim of the
      // sender that it does not name has ended (as an entry saying "not
      // holding" did when every message named every slot).
      for (const wire::SlotEntry& e : m.slots) {
        if (e.slot < slots_.size() && e.holding) named_[e.slot] = true;
      }
      for (uint32_t k = 0; k < slots_.size(); ++k) {
        if (slots_[k].claimed_holder == from_id && !named_[k]) slots_[k].claimed_holder = kNoNode;
      }
      for (const wire::SlotEntry& e : m.slots) {
        if (e.slot < slots_.size()) named_[e.slot] = false;
      }
    }
  }

  // The grantor's decision on a request (docs "Grants").
  PendingReply Decide(uint32_t slot, size_t from, uint64_t epoch, bool same_config,
                      Time now) {
    SlotState& s = slots_[slot];
    const NodeId id = peers_[from].config.id;
    PendingReply r;
    r.epoch = s.max_epoch;
    if (Quiet(now)) {
      r.wait = quiet_until_ - now;  // We forgot our grants: wait them out.
      return r;
    }
    // Grants are only given between nodes that agree on the membership, to a
    // member, by a node whose grant counts (docs "Serial failures"). The
    // refusal's message carries our membership, so the requester catches up.
    if (!same_config || !member_[from] ||
        !(member_[self_index_] || (Joint() && old_member_[self_index_]))) {
      return r;
    }
    if (s.grantee != kNoNode && s.grantee != id && now < s.grant_until) {
      r.wait = s.grant_until - now;
      return r;
    }
    // The live holder renewing the epoch it holds is granted even if our
    // floor is not its own: after a contest, the loser's self-grant of the
    // same epoch, or of the next one it proposed when refused, stays our
    // floor. Refusing the holder then left its lease on fewer grantors (one,
    // in a group of three), so one peer's stall cost it the slot (docs
    // "Epochs": renewals of the live holder). No epoch is given anew.
    const bool holder_renewal = epoch != 0 && ClaimLive(s, now) &&
                                s.claimed_holder == id && s.claimed_epoch == epoch;
    if (!holder_renewal &&
        (epoch == 0 || epoch < s.max_epoch ||
         (epoch == s.max_epoch && s.max_epoch_owner != id))) {
      return r;  // Epoch taken: the candidate retries above r.epoch.
    }
    s.grantee = id;
    s.grantee_incarnation = from == self_index_ ? incarnation_ : peers_[from].incarnation;
    s.grant_until = now + grant_hold_;
    s.grant_epoch = epoch;
    if (epoch >= s.max_epoch) {  // Below only for a holder_renewal.
      s.max_epoch = epoch;
      s.max_epoch_owner = id;
    }
    r.granted = true;
    r.epoch = epoch;
    return r;
  }

  // `echo`: the send_time of our request that `e` answers (our clock).
  void OnReply(uint32_t slot, size_t from, const wire::SlotEntry& e, Time echo, Time now) {
    SlotState& s = slots_[slot];
    if (!s.campaigning) return;
    // Only answers to requests of the current campaign count: a grant given
    // before our release may since have been dropped.
    if (echo < s.campaign_start || echo > now) return;
    if (e.granted) {
      if (e.reply_epoch != s.my_epoch) return;
      s.valid_until[from] = std::max(s.valid_until[from], echo + timing_.lease);
      return;
    }
    if (e.reply_wait_ns > 0) {
      // "Wait": the grantor is still quiet or its grant belongs to another
      // node for a while. That says nothing about our epoch (a quiet grantor
      // even reports our own epoch, adopted from our request, as its floor),
      // so retry exactly when the obstacle is gone (padded for rate drift)
      // with the same epoch; if the epoch is really taken, that retry's
      // refusal says so. Bumping here made the epoch climb by one per round
      // trip while a grantor was quiet (docs "Epochs": the start-up storm).
      const Time wait = Scale(FromWire(e.reply_wait_ns), 1.0 + 2 * timing_.max_drift);
      s.retry_at = std::min(s.retry_at, now + wait + Time(1000));
      return;
    }
    if (e.reply_epoch >= s.my_epoch && !s.added) {
      // Our epoch is taken; propose a higher one at once.
      s.my_epoch = e.reply_epoch + 1;
      StartRound(slot, now);
    }
  }

  // Removes an address whose believed lease (less the margin) ran out. Runs
  // first in every call, so a node resuming from a pause never acts on an
  // expired lease (docs "Pauses").
  void ExpireLeases(Time now) {
    for (uint32_t i = 0; i < slots_.size(); ++i) {
      SlotState& s = slots_[i];
      if (s.added && now >= LeaseEnd(s) - timing_.remove_margin) GiveUp(i, now);
    }
  }

  // Stops holding/campaigning for a slot: remove first, then release.
  void GiveUp(uint32_t slot, Time now) {
    SlotState& s = slots_[slot];
    if (s.added) {
      actions_.push_back({Action::Kind::kRemoveAddress, slot, s.held_epoch});
      s.added = false;
      ++releases_;
      ++s.releases;
    }
    if (s.campaigning) {
      s.campaigning = false;
      s.retry_at = kNever;
      std::fill(s.valid_until.begin(), s.valid_until.end(), kLongAgo);
      if (s.grantee == self_) {
        s.grantee = kNoNode;
        s.grant_until = kLongAgo;
      }
      s.release_until = now + grant_hold_;
      SendToAll();
    }
  }

  // Starts a request round for a slot now: self-grant and requests to all.
  void StartRound(uint32_t slot, Time now) {
    SlotState& s = slots_[slot];
    s.campaign_start = now;
    std::fill(s.valid_until.begin(), s.valid_until.end(), kLongAgo);
    s.retry_at = now;
  }

  // Self-grant plus a request to every peer, stamped `now`.
  void RequestRound(uint32_t slot, Time now) {
    SlotState& s = slots_[slot];
    s.retry_at = kNever;
    s.request_now = true;
    PendingReply self = Decide(slot, self_index_, s.my_epoch, true, now);
    if (self.granted) {
      s.valid_until[self_index_] =
          std::max(s.valid_until[self_index_], now + timing_.lease);
    } else if (self.epoch >= s.my_epoch && !s.added) {
      s.my_epoch = self.epoch + 1;
      s.campaign_start = now;
      std::fill(s.valid_until.begin(), s.valid_until.end(), kLongAgo);
      self = Decide(slot, self_index_, s.my_epoch, true, now);
      if (self.granted) s.valid_until[self_index_] = now + timing_.lease;
    }
    SendToAll();
  }

  // `my_majority`: ViewHasMajority(MyView(now)), computed once per call.
  // In place of the single-slot rule "outranks every eligible peer", the pool
  // assignment names the campaigner; with one slot and capacities >= 1 it
  // names exactly the top eligible node (docs "Pool of addresses").
  bool ShouldCampaign(uint32_t slot, bool my_majority, Time now) const {
    const SlotState& s = slots_[slot];
    if (draining_ || Quiet(now) || !member_[self_index_]) return false;
    if (!my_majority || assigned_[slot] != self_ || s.drained_here) return false;
    if (ClaimLive(s, now) && s.claimed_holder != self_) return false;
    if (s.grantee != kNoNode && s.grantee != self_ && now < s.grant_until) {
      return false;  // Someone else holds (or is getting) our grant.
    }
    return true;
  }

  // Pre-emption hands over only to a peer that can hold the slot: a
  // higher-ranked witness (capacity 0) would otherwise take the slot from
  // every holder, round after round, and nobody would keep it.
  bool ShouldHandOver(Time now) const {
    if (!config_.preempt) return false;
    for (size_t i = 0; i < peers_.size(); ++i) {
      if (i != self_index_ && PeerEligible(i, now) && !peers_[i].quiet &&
          peers_[i].capacity > 0 && Outranks(i, self_index_)) {
        return true;
      }
    }
    return false;
  }

  // Computes the pool assignment from our view (docs "Pool of addresses").
  // Returns whether we are a candidate ourselves.
  bool ComputeAssignment(bool my_majority, Time now) {
    AssignmentInput in;
    in.num_slots = static_cast<uint32_t>(slots_.size());
    in.rebalance = rebalance_;
    const bool self_candidate = !draining_ && member_[self_index_] && my_majority;
    for (size_t i = 0; i < peers_.size(); ++i) {
      const PeerState& p = peers_[i];
      const bool candidate = i == self_index_ ? self_candidate : PeerEligible(i, now);
      if (!candidate) continue;
      in.candidates.push_back({p.config.id, p.config.priority, p.capacity});
      if (i == self_index_) {
        for (uint32_t k = 0; k < slots_.size(); ++k) {
          if (slots_[k].drained_here) in.excluded.push_back({k, self_});
        }
      } else if (p.drained_count > 0) {
        for (uint32_t k = 0; k < slots_.size(); ++k) {
          if (p.drained[k]) in.excluded.push_back({k, p.config.id});
        }
      }
    }
    in.holders.reserve(slots_.size());
    for (const SlotState& s : slots_) {
      if (s.added) {
        in.holders.push_back(self_);
      } else if (ClaimLive(s, now) && s.claimed_holder != self_) {
        in.holders.push_back(s.claimed_holder);
      } else {
        in.holders.push_back(kNoNode);
      }
    }
    Assignment a = Assign(in);
    assigned_ = std::move(a.slot_owner);
    // Without a majority view nobody is a candidate here, so every slot
    // would count as shed; the reason is the view, not capacity (the
    // daemon logged "shed (no capacity in this view)" for a holder that
    // merely lost its lease, docs "Who campaigns").
    shed_now_ = my_majority ? a.shed : 0;
    return self_candidate;
  }

  void Evaluate(Time now) {
    EvaluateMembership(now);
    const bool my_majority = ViewHasMajority(MyView(now));
    const bool self_candidate = ComputeAssignment(my_majority, now);
    const bool pool = slots_.size() > 1;
    // Never above our capacity: after SetCapacity lowered it, release the
    // highest-numbered slots (held or being campaigned for) first.
    int used = 0;
    for (const SlotState& s : slots_) used += (s.added || s.campaigning) ? 1 : 0;
    for (uint32_t i = static_cast<uint32_t>(slots_.size()); i-- > 0 && used > capacity_;) {
      if (slots_[i].added || slots_[i].campaigning) {
        if (slots_[i].added && assigned_[i] == kNoNode) {
          ++sheds_;
          ++slots_[i].sheds;
        }
        GiveUp(i, now);
        --used;
      }
    }
    for (uint32_t i = 0; i < slots_.size(); ++i) {
      SlotState& s = slots_[i];
      if (s.added) {
        if (!pool) {
          if (ShouldHandOver(now)) GiveUp(i, now);
        } else if (self_candidate && assigned_[i] != self_) {
          // Shed, over capacity, or rebalanced away. (Without a majority
          // view our assignment means nothing; the lease decides.)
          if (assigned_[i] == kNoNode) {
            ++sheds_;
            ++s.sheds;
          }
          GiveUp(i, now);
          --used;
        }
      } else if (s.campaigning) {
        if (!ShouldCampaign(i, my_majority, now)) {
          GiveUp(i, now);
          --used;
        }
      } else if (used < capacity_ && ShouldCampaign(i, my_majority, now)) {
        ++used;
        s.campaigning = true;
        // Propose above everything we heard of, also when this node held
        // the latest epoch itself: every holding gets a new epoch, so the
        // epochs a slot's holders report (the fencing tokens an embedding
        // server writes to its store, SlotEvent) strictly grow per slot even
        // when the same node takes a slot back after losing it.
        const uint64_t floor = std::max(s.max_epoch, s.known_epoch);
        s.my_epoch = floor + 1;
        StartRound(i, now);
      }
      if (s.campaigning && (heartbeat_due_ || now >= s.retry_at)) {
        RequestRound(i, now);
      }
      // Add only once a majority granted the current campaign.
      if (s.campaigning && !s.added &&
          now < LeaseEnd(s) - timing_.remove_margin) {
        s.added = true;
        s.held_epoch = s.my_epoch;
        s.claimed_holder = self_;
        s.claimed_epoch = s.my_epoch;
        s.claim_heard = now;
        actions_.push_back({Action::Kind::kAddAddress, i, s.my_epoch});
        ++takeovers_;
        ++s.takeovers;
        actions_.push_back({Action::Kind::kAnnounce, i, s.my_epoch});
        // Tell the peers at once, so they stop campaigning.
        SendToAll();
      }
    }
    heartbeat_due_ = false;
  }

  // What any entry of ours says about slot k besides replies and knowledge:
  // whether we hold it (and under which epoch), our request of this call,
  // our release. Every entry we send is accurate on these, because a
  // receiver takes an entry that does not say "holding" from a slot's
  // claimed holder as the end of its claim.
  wire::SlotEntry BaseEntry(uint32_t k, Time now) const {
    const SlotState& s = slots_[k];
    wire::SlotEntry e;
    e.slot = k;
    e.holding = s.added;
    if (s.added) e.epoch = s.held_epoch;
    e.request = s.campaigning && s.request_now;
    if (e.request) e.request_epoch = s.my_epoch;
    e.release = !s.campaigning && now < s.release_until;
    return e;
  }

  // The slot entries every full message of this call carries (docs "Lease
  // traffic"): every held slot, this call's requests, releases still
  // advertised, and knowledge (our highest epoch of a slot we do not hold)
  // for the slots whose knowledge changed in the last kGossipRepeats full
  // rounds (at most kMaxChangedPerMessage per message, oldest first) plus a
  // rotating window of kKnowledgeWindow slots. Sorted by slot.
  std::vector<wire::SlotEntry> FullEntries(Time now) {
    const uint32_t n = static_cast<uint32_t>(slots_.size());
    std::vector<uint32_t> knowledge;
    for (uint32_t k = 0; k < n; ++k) {
      const SlotState& s = slots_[k];
      if (s.max_epoch != gossip_epoch_[k] || s.max_epoch_owner != gossip_owner_[k]) {
        gossip_epoch_[k] = s.max_epoch;
        gossip_owner_[k] = s.max_epoch_owner;
        gossip_left_[k] = kGossipRepeats;
      }
    }
    for (uint32_t i = 0; i < n && knowledge.size() < kMaxChangedPerMessage; ++i) {
      const uint32_t k = (gossip_cursor_ + i) % n;
      if (gossip_left_[k] == 0) continue;
      --gossip_left_[k];
      knowledge.push_back(k);
      gossip_cursor_ = (k + 1) % n;
    }
    for (uint32_t i = 0; i < std::min(kKnowledgeWindow, n); ++i) {
      knowledge.push_back((window_cursor_ + i) % n);
    }
    window_cursor_ = (window_cursor_ + kKnowledgeWindow) % n;
    for (uint32_t k : knowledge) {
      if (!slots_[k].added && slots_[k].max_epoch > 0) named_[k] = true;
    }
    std::vector<wire::SlotEntry> entries;
    for (uint32_t k = 0; k < n; ++k) {
      wire::SlotEntry e = BaseEntry(k, now);
      if (named_[k]) {
        named_[k] = false;
        e.knowledge = true;
        e.holder = slots_[k].max_epoch_owner;
        e.epoch = slots_[k].max_epoch;
      }
      if (e.holding || e.knowledge || e.request || e.release) entries.push_back(e);
    }
    return entries;
  }

  void Flush(Time now) {
    const bool full = std::exchange(full_flush_, false);
    std::vector<wire::SlotEntry> common;
    if (full) common = FullEntries(now);
    for (size_t i = 0; i < peers_.size(); ++i) {
      if (!send_to_[i] || i == self_index_) continue;
      send_to_[i] = false;
      wire::Message m;
      m.incarnation = incarnation_;
      m.send_time = ToWire(now);
      m.seq = ++seq_;
      m.quiet = Quiet(now);
      m.draining = draining_;
      m.full = full;
      if (full) {
        m.view = MyView(now);
        m.config_version = cfg_version_;
        m.capacity = static_cast<uint32_t>(capacity_);
        m.members = IdsOf(member_);
        if (Joint()) m.old_members = IdsOf(old_member_);
        m.promised_round = promised_.round;
        m.promised_node = promised_.node;
        m.accepted_round = accepted_.round;
        m.accepted_node = accepted_.node;
        for (uint32_t k = 0; k < slots_.size(); ++k) {
          if (slots_[k].drained_here) m.drained.push_back(k);
        }
      }
      m.slots = common;
      if (!pending_replies_[i].empty()) {
        m.peer_incarnation = peers_[i].heard ? peers_[i].incarnation : 0;
        m.reply_echo = pending_replies_[i].begin()->second.echo;
      }
      for (const auto& [k, r] : pending_replies_[i]) {
        auto it = std::lower_bound(
            m.slots.begin(), m.slots.end(), k,
            [](const wire::SlotEntry& e, uint32_t slot) { return e.slot < slot; });
        if (it == m.slots.end() || it->slot != k) it = m.slots.insert(it, BaseEntry(k, now));
        it->reply = true;
        it->granted = r.granted;
        it->reply_epoch = r.epoch;
        it->reply_wait_ns = static_cast<uint64_t>(std::max(Time(0), r.wait).count());
      }
      pending_replies_[i].clear();
      out_.push_back({peers_[i].config.id, wire::Encode(m)});
    }
    for (SlotState& s : slots_) s.request_now = false;
  }

  // Lease traffic (docs "Lease traffic"): how many full rounds a changed
  // knowledge entry is repeated, at most how many changed ones a message
  // carries, and how many others it carries in rotation (a full refresh
  // every num_slots / kKnowledgeWindow full rounds: 2.56 s at 1024 slots and
  // H = 10 ms).
  static constexpr uint8_t kGossipRepeats = 3;
  static constexpr size_t kMaxChangedPerMessage = 32;
  static constexpr uint32_t kKnowledgeWindow = 4;

  const GroupConfig config_;
  const Timing timing_;
  const NodeId self_;
  const size_t self_index_;
  const Time grant_hold_;
  // How long after a majority of the old members acknowledged a membership
  // change the new membership alone may be used: every lease formed under
  // the old one has a grant from an acknowledger, given before it
  // acknowledged, which lapses within GrantHold of its clock (padded again
  // for the rate difference between its clock and ours).
  const Time commit_wait_;
  // How long a returning non-member must have been in the view before it is
  // added again: 10 heartbeats (or shrink_after, if shorter). Much shorter
  // than shrink_after on purpose: adding a live member never hurts, and a
  // member removed while it was merely paused (or cut off) for longer than
  // shrink_after must count again before the next failure; re-adding it only
  // after another shrink_after left, e.g., a group of three shrunk to two for
  // that long, where a pause of either stopped the service.
  const Time grow_after_;
  // How long a change may be pending before a new ballot is tried (times
  // 1 + our rank among the old members): a few commit waits and view
  // timeouts, so that a working proposer is never overtaken.
  const Time stall_wait_;
  const Time start_;
  const Time quiet_until_;
  const uint64_t incarnation_;
  std::vector<PeerState> peers_;
  std::vector<SlotState> slots_;
  std::vector<std::map<uint32_t, PendingReply>> pending_replies_;
  std::vector<bool> send_to_;
  bool full_flush_ = false;  // The next Flush sends full messages.
  // Knowledge last seen per slot (max_epoch, its owner), how many more full
  // rounds to repeat it, and the rotation cursors (FullEntries).
  std::vector<uint64_t> gossip_epoch_;
  std::vector<NodeId> gossip_owner_;
  std::vector<uint8_t> gossip_left_;
  uint32_t gossip_cursor_ = 0;
  uint32_t window_cursor_ = 0;
  std::vector<bool> named_;  // Scratch, all false between calls.
  Time next_heartbeat_;
  Time last_now_;
  bool heartbeat_due_ = false;
  uint64_t cfg_version_ = 0;
  std::vector<bool> member_;      // By peer index.
  std::vector<bool> old_member_;  // Non-empty while a change is under way.
  Time commit_at_ = kNever;
  Time fallback_since_ = kNever;  // Top proposer without a slot-0 holder since.
  // The agreement on version CommittedVersion() + 1 (docs "Serial failures").
  Ballot promised_;                 // Highest ballot promised (persisted).
  Ballot accepted_;                 // While joint: the ballot of member_ (persisted).
  Ballot prepare_;                  // Our phase 1 under way, if any.
  std::vector<bool> prepare_value_;  // The change we want under prepare_.
  Time prepare_at_ = kLongAgo;      // When we last started a phase 1.
  Time promise_raised_at_ = kLongAgo;  // When another node's ballot raised promised_.
  Time joint_since_ = kLongAgo;     // When we last accepted a change.
  bool persist_pending_ = false;           // Membership changed.
  std::vector<uint64_t> persisted_epochs_;  // Epoch floors last handed out.
  bool draining_ = false;
  // Pool (docs "Pool of addresses").
  std::unordered_map<NodeId, size_t> index_;  // Peer id -> index.
  int capacity_ = 0;
  bool rebalance_ = false;
  std::vector<NodeId> assigned_;  // Last computed assignment, per slot.
  uint32_t shed_now_ = 0;
  uint64_t takeovers_ = 0;
  uint64_t releases_ = 0;
  uint64_t sheds_ = 0;
  uint64_t malformed_ = 0;
  uint64_t stale_ = 0;
  uint64_t late_ = 0;
  // Late-message filter: the delay floor rises at this rate (our clock),
  // which is well above 2ρ, the fastest a clock offset can change, so the
  // floor never ends up above a message's true value by more than the drift
  // since and a message judged late was truly delayed that long; and a
  // lasting rise of the path delay by D stops the drops after about
  // 32 × (D − late_limit_).
  const double floor_relax_;
  // A message later than the fastest by more than this is dropped:
  // 2 × lease + heartbeat (60 ms at the defaults): its grant or request
  // would have expired anyway, and ordinary jitter stays far below.
  const Time late_limit_;
  uint64_t seq_ = 0;
  std::vector<Outgoing> out_;
  std::vector<Action> actions_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Node>> Node::Create(const GroupConfig& config,
                                                   NodeId self, Time now,
                                                   const std::optional<PersistentState>& restored) {
  if (config.peers.empty()) return absl::InvalidArgumentError("empty peer group");
  std::set<NodeId> ids;
  std::optional<size_t> self_index;
  for (size_t i = 0; i < config.peers.size(); ++i) {
    const NodeId id = config.peers[i].id;
    if (id == kNoNode) return absl::InvalidArgumentError("peer id kNoNode is reserved");
    if (!ids.insert(id).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate peer id ", id));
    }
    if (id == self) self_index = i;
  }
  if (!self_index) {
    return absl::InvalidArgumentError(absl::StrCat("self id ", self, " not in the group"));
  }
  const Timing& t = config.timing;
  if (t.heartbeat <= Time(0)) return absl::InvalidArgumentError("heartbeat must be > 0");
  if (t.lease <= t.heartbeat + t.remove_margin) {
    return absl::InvalidArgumentError("lease must exceed heartbeat + remove_margin");
  }
  if (!(t.max_drift >= 0.0 && t.max_drift < 0.1)) {
    return absl::InvalidArgumentError("max_drift must be in [0, 0.1)");
  }
  if (t.grant_margin < Time(0) || t.remove_margin < Time(0) ||
      t.peer_timeout <= Time(0) || t.discovery < Time(0)) {
    return absl::InvalidArgumentError("negative margin or non-positive peer_timeout");
  }
  if (config.num_slots < 1 || config.num_slots > wire::kMaxSlots) {
    return absl::InvalidArgumentError("num_slots must be in [1, 1024]");
  }
  if (t.shrink_after < Time(0)) return absl::InvalidArgumentError("negative shrink_after");
  if (restored) {
    const Membership& m = restored->membership;
    for (const std::vector<NodeId>* list : {&m.members, &m.old_members}) {
      for (NodeId id : *list) {
        if (!ids.count(id)) {
          return absl::InvalidArgumentError(
              absl::StrCat("restored membership names unknown peer ", id));
        }
      }
    }
    if (m.members.empty() && t.shrink_after > Time(0)) {
      return absl::InvalidArgumentError("restored membership is empty");
    }
  }
  return std::unique_ptr<Node>(new NodeImpl(config, self, *self_index, now, restored));
}

}  // namespace baton::takeover

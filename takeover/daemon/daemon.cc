#include "takeover/daemon/daemon.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>

#include <boost/asio/post.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/errno_status.h"
#include "spdlog/spdlog.h"
#include "takeover/core/wire.h"
#include "takeover/daemon/metrics.h"

namespace baton::takeover {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

Time Multiple(Time heartbeat, double k) {
  return Time(static_cast<int64_t>(std::llround(static_cast<double>(heartbeat.count()) * k)));
}

double Ms(Time t) { return static_cast<double>(t.count()) / 1e6; }

std::string NodeName(NodeId id) { return id == kNoNode ? "none" : std::to_string(id); }

// The incarnation file's directory is created if missing (the transport persists into it).
void EnsureParentDirectory(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return;
  std::string dir = path.substr(0, slash);
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    spdlog::warn("cannot create {}: {}", dir, std::strerror(errno));
  }
}

}  // namespace

Timing TimingFromConfig(const DaemonConfig& c) {
  Timing t = Timing::ForHeartbeat(c.heartbeat);
  if (c.lease_heartbeats) t.lease = Multiple(c.heartbeat, *c.lease_heartbeats);
  if (c.grant_margin_heartbeats) t.grant_margin = Multiple(c.heartbeat, *c.grant_margin_heartbeats);
  if (c.remove_margin_heartbeats) t.remove_margin = Multiple(c.heartbeat, *c.remove_margin_heartbeats);
  if (c.peer_timeout_heartbeats) t.peer_timeout = Multiple(c.heartbeat, *c.peer_timeout_heartbeats);
  if (c.discovery_heartbeats) t.discovery = Multiple(c.heartbeat, *c.discovery_heartbeats);
  t.max_drift = c.max_drift;
  t.shrink_after = Multiple(c.heartbeat, c.shrink_after_heartbeats);
  return t;
}

GroupConfig GroupFromConfig(const DaemonConfig& config) {
  GroupConfig group;
  for (const DaemonPeerConfig& p : config.peers) {
    group.peers.push_back(PeerConfig{p.id, p.priority, p.capacity});
  }
  group.num_slots = static_cast<uint32_t>(config.service_addresses.size());
  group.timing = TimingFromConfig(config);
  group.preempt = config.preempt;
  group.rebalance = config.rebalance;
  return group;
}

namespace {

absl::StatusOr<std::vector<IpPrefix>> ParsePrefixes(const DaemonConfig& config) {
  if (config.service_addresses.empty()) {
    return absl::InvalidArgumentError("config: service_address: no service address");
  }
  std::vector<IpPrefix> prefixes;
  for (const ServiceAddress& a : config.service_addresses) {
    absl::StatusOr<IpPrefix> prefix = IpPrefix::Parse(absl::StrCat(a.address, "/", a.prefix_length));
    if (!prefix.ok()) return prefix.status();
    prefixes.push_back(*std::move(prefix));
  }
  return prefixes;
}

}  // namespace

absl::Status TakeoverDaemon::Validate(const DaemonConfig& config, const Clock& clock) {
  absl::StatusOr<std::vector<IpPrefix>> prefixes = ParsePrefixes(config);
  if (!prefixes.ok()) return prefixes.status();
  const GroupConfig group = GroupFromConfig(config);
  absl::StatusOr<std::unique_ptr<Node>> probe = Node::Create(group, config.node_id, clock.MonotonicNow());
  if (!probe.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config refused by the core: ", probe.status().message()));
  }
  absl::StatusOr<std::string> key = LoadClusterKey(config.key_file);
  if (!key.ok()) return key.status();
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TakeoverDaemon>> TakeoverDaemon::Create(boost::asio::io_context& io,
                                                                       const Clock& clock,
                                                                       DaemonConfig config,
                                                                       DriverFactory& drivers) {
  // Validates the group and timing as the core sees them, before anything touches the system.
  if (absl::Status s = Validate(config, clock); !s.ok()) return s;
  absl::StatusOr<std::vector<IpPrefix>> prefixes = ParsePrefixes(config);
  if (!prefixes.ok()) return prefixes.status();
  absl::StatusOr<std::string> key = LoadClusterKey(config.key_file);
  if (!key.ok()) return key.status();
  EnsureParentDirectory(config.incarnation_file);
  // The core's state of an earlier run; a corrupt or unreadable file is never skipped (a node
  // that forgot a membership change could help form a majority of the old group).
  absl::StatusOr<std::optional<PersistentState>> restored = LoadPersistentState(config.state_file);
  if (!restored.ok()) return restored.status();
  EnsureParentDirectory(config.state_file);
  absl::StatusOr<uint64_t> incarnation = NextIncarnation(config.incarnation_file, clock.WallNow());
  if (!incarnation.ok()) return incarnation.status();
  auto daemon = std::unique_ptr<TakeoverDaemon>(
      new TakeoverDaemon(io, clock, drivers, std::move(config), *std::move(key), *incarnation,
                         *std::move(prefixes)));
  daemon->restored_ = *std::move(restored);
  if (daemon->restored_) {
    // The core checks the restored membership against the peer list (e.g. a peer removed from
    // the config since): refuse at start-up like any other config error.
    absl::StatusOr<std::unique_ptr<Node>> probe =
        Node::Create(daemon->group_, daemon->config_.node_id, clock.MonotonicNow(), daemon->restored_);
    if (!probe.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("state file ", daemon->config_.state_file,
                                                     " refused by the core: ", probe.status().message()));
    }
  }
  return daemon;
}

TakeoverDaemon::TakeoverDaemon(boost::asio::io_context& io, const Clock& clock,
                               DriverFactory& drivers, DaemonConfig config, std::string key,
                               uint64_t incarnation, std::vector<IpPrefix> prefixes)
    : io_(io),
      clock_(clock),
      drivers_(drivers),
      config_(std::move(config)),
      group_(GroupFromConfig(config_)),
      key_(std::move(key)),
      incarnation_(incarnation),
      damper_(config_.damping, config_.service_addresses.size()),
      tick_timer_(io) {
  for (IpPrefix& p : prefixes) {
    Slot slot;
    slot.prefix = std::move(p);
    slots_.push_back(std::move(slot));
  }
}

void TakeoverDaemon::SetSlotListener(std::function<void(const SlotEvent&)> listener) {
  slot_listener_ = std::move(listener);
}

void TakeoverDaemon::SetReleaseGate(ReleaseGate gate) { release_gate_ = std::move(gate); }

void TakeoverDaemon::GateRelease(uint32_t slot, std::function<void()> then) {
  std::vector<uint32_t> held;
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    if ((slot == kAllSlots || i == slot) && slots_[i].holding) held.push_back(i);
  }
  // From now on new connections to these addresses are refused (a reset: the client goes on to
  // the next holder at once), while the lease keeps the ones being closed working.
  for (uint32_t i : held) RefuseConnections(i, true);
  if (!release_gate_ || held.empty() || config_.close_timeout.count() == 0) {
    then();
    return;
  }
  struct Gate {
    explicit Gate(boost::asio::io_context& io) : timer(io) {}
    size_t waiting = 0;
    bool passed = false;
    boost::asio::steady_timer timer;
    std::function<void()> then;
  };
  auto gate = std::make_shared<Gate>(io_);
  gate->waiting = held.size();
  gate->then = std::move(then);
  std::shared_ptr<bool> alive = alive_;
  // `then` runs once: when the last slot's gate opened, or at the timeout.
  auto pass = [alive, gate] {
    if (gate->passed || !*alive) return;
    gate->passed = true;
    gate->timer.cancel();
    auto then = std::move(gate->then);
    then();
  };
  gate->timer.expires_after(config_.close_timeout);
  gate->timer.async_wait([this, alive, gate, pass](const boost::system::error_code& ec) {
    if (ec || gate->passed || !*alive) return;
    ++gate_timeouts_;
    spdlog::warn("release gate: the server did not close its connections within {} ms; "
                 "releasing anyway", config_.close_timeout.count());
    pass();
  });
  for (uint32_t i : held) {
    ++gated_releases_;
    SlotEvent e;
    e.slot = i;
    e.address = slots_[i].prefix.address.to_string();
    e.held = true;
    e.epoch = slots_[i].held_epoch;
    spdlog::info("slot {} ({}): planned release; the server closes its connections there first",
                 i, e.address);
    auto opened = std::make_shared<bool>(false);
    release_gate_(e, [this, alive, gate, pass, opened] {
      boost::asio::post(io_, [alive, gate, pass, opened] {
        if (!*alive || *opened) return;
        *opened = true;
        if (--gate->waiting == 0) pass();
      });
    });
  }
}

void TakeoverDaemon::RefuseConnections(uint32_t slot, bool refuse) {
  if (!fence_) return;
  if (absl::Status s = fence_->RefuseConnections(slots_[slot].prefix.address.to_string(), refuse);
      !s.ok()) {
    ++fence_errors_;
    spdlog::warn("kernel fence: cannot {} new connections to {}: {}", refuse ? "refuse" : "accept",
                 slots_[slot].prefix.ToString(), s.ToString());
  }
}

void TakeoverDaemon::OnLeaseLoss(uint32_t slot) {
  const Time now = clock_.MonotonicNow();
  if (!damper_.OnLoss(slot, now)) return;
  // Stepping back only helps when a peer can take the slot: one in this node's view.
  if (node_->GetStatus(now).view.size() < 2) {
    spdlog::warn("slot {} ({}): lost its lease {} times within {} ms, but no peer is in view to "
                 "take it; not stepping back",
                 slot, slots_[slot].prefix.ToString(), config_.damping.losses,
                 config_.damping.window.count());
    damper_.Cancel(slot);
    return;
  }
  spdlog::warn("slot {} ({}): lost its lease {} times within {} ms (a lossy or slow link?): "
               "stepping back from it for {} ms so that a peer takes it",
               slot, slots_[slot].prefix.ToString(), config_.damping.losses,
               config_.damping.window.count(), config_.damping.hold.count());
  node_->Drain(slot, now);
}

void TakeoverDaemon::EndStepBacks() {
  for (uint32_t i : damper_.TakeEnded(clock_.MonotonicNow())) {
    if (slots_[i].drained || shutting_down_) continue;  // the operator's drain stays
    spdlog::info("slot {} ({}): step-back over; campaigning for it again", i,
                 slots_[i].prefix.ToString());
    node_->Undrain(i, clock_.MonotonicNow());
  }
}

absl::Status TakeoverDaemon::LockInstance() {
  if (config_.incarnation_file.empty()) return absl::OkStatus();
  const std::string path = config_.incarnation_file + ".lock";
  EnsureParentDirectory(path);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return baton::ErrnoToStatus(errno, absl::StrCat("instance lock ", path));
  }
  // Real time: waiting for another process to exit, not a protocol decision.
  const auto deadline = std::chrono::steady_clock::now() + kInstanceLockWait;
  bool logged = false;
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) {
      const int err = errno;
      ::close(fd);
      return baton::ErrnoToStatus(err, absl::StrCat("instance lock ", path));
    }
    char pid[32] = {};
    const ssize_t n = ::pread(fd, pid, sizeof pid - 1, 0);
    const std::string owner = n > 0 ? std::string(pid, static_cast<size_t>(n)) : "?";
    if (std::chrono::steady_clock::now() >= deadline) {
      ::close(fd);
      return absl::UnavailableError(absl::StrCat(
          "another agent of node ", config_.node_id, " (pid ", owner, ", lock ", path,
          ") still runs after ", kInstanceLockWait.count(), " s"));
    }
    if (!logged) {
      spdlog::info("waiting for the previous agent of node {} (pid {}) to finish its hand-over",
                   config_.node_id, owner);
      logged = true;
    }
    ::usleep(5000);
  }
  const std::string me = std::to_string(::getpid());
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, me.data(), me.size(), 0) < 0) {
    spdlog::debug("instance lock {}: cannot record the pid: {}", path, std::strerror(errno));
  }
  if (logged) spdlog::info("the previous agent of node {} has exited", config_.node_id);
  lock_fd_ = fd;
  return absl::OkStatus();
}

void TakeoverDaemon::SetHealthy(bool healthy) {
  boost::asio::post(io_, [this, alive = posted_alive_, healthy] {
    if (!*alive) return;
    if (external_healthy_ == healthy) return;
    external_healthy_ = healthy;
    spdlog::info("external health: {}", healthy ? "healthy" : "unhealthy");
    OnHealth();
  });
}

void TakeoverDaemon::DrainSlot(uint32_t slot, bool drain) {
  boost::asio::post(io_, [this, alive = posted_alive_, slot, drain] {
    if (*alive) ApplyDrain(slot, drain);
  });
}

void TakeoverDaemon::GetStatusAsync(std::function<void(nlohmann::json)> done) {
  boost::asio::post(io_, [this, alive = posted_alive_, done = std::move(done)] {
    if (!*alive) {
      done(nlohmann::json{{"error", "stopped"}});
      return;
    }
    done(StatusJson());
  });
}

void TakeoverDaemon::ApplyDrain(uint32_t slot, bool drain) {
  if (slot != kAllSlots && slot >= slots_.size()) return;
  if (shutting_down_) return;  // everything is being released anyway
  std::vector<uint32_t> changed;
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    if (slot != kAllSlots && i != slot) continue;
    if (slots_[i].drained == drain) continue;
    slots_[i].drained = drain;
    if (drain) ++drains_;
    spdlog::info("operator {} slot {} ({})", drain ? "drains" : "undrains", i,
                 slots_[i].prefix.ToString());
    changed.push_back(i);
  }
  if (!node_ || changed.empty()) return;  // applied when the Node is created at Start
  if (!drain) {
    for (uint32_t i : changed) {
      if (!damper_.stepped_back(i)) node_->Undrain(i, clock_.MonotonicNow());
    }
    Pump();
    return;
  }
  // The server closes its connections on a held address before it goes (GateRelease).
  GateRelease(slot, [this, changed] {
    if (shutting_down_) return;
    const Time now = clock_.MonotonicNow();
    for (uint32_t i : changed) {
      if (slots_[i].drained) {
        node_->Drain(i, now);
      } else if (slots_[i].holding) {
        RefuseConnections(i, false);  // undone meanwhile: keeps serving
      }
    }
    Pump();
  });
}

bool TakeoverDaemon::holding_any() const {
  return std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) { return s.holding; });
}

void TakeoverDaemon::Notify(uint32_t slot, bool held, uint64_t epoch) {
  if (!slot_listener_) return;
  SlotEvent e;
  e.slot = slot;
  e.address = slots_[slot].prefix.address.to_string();
  e.held = held;
  e.epoch = epoch;
  slot_listener_(e);
}

TakeoverDaemon::~TakeoverDaemon() {
  *alive_ = false;
  *posted_alive_ = false;
  if (lock_fd_ >= 0) ::close(lock_fd_);
  if (status_acceptor_) ::unlink(config_.status_socket.c_str());
}

std::chrono::seconds TakeoverDaemon::ValidLifetime() const {
  double s = static_cast<double>(config_.heartbeat.count()) * config_.address_lifetime_heartbeats / 1e9;
  return std::chrono::seconds(std::max<int64_t>(2, static_cast<int64_t>(std::ceil(s))));
}

absl::Status TakeoverDaemon::StartAddressDrivers() {
  AddressDriverOptions aopt;
  aopt.label_suffix = config_.label_suffix();
  absl::StatusOr<std::unique_ptr<AddressDriver>> addresses = drivers_.MakeAddressDriver(aopt);
  if (!addresses.ok()) return addresses.status();
  addresses_ = *std::move(addresses);
  // Whatever an earlier run left behind must go before this node may take anything: every
  // address with our label, and every configured service address present under another label
  // (e.g. a run with a different label): only a lease holder may have one.
  absl::StatusOr<std::vector<ManagedAddress>> stale = addresses_->RemoveStale(config_.interface);
  if (!stale.ok()) return stale.status();
  for (const ManagedAddress& a : *stale) {
    spdlog::warn("removed stale address {} (label '{}') from {} left by an earlier run",
                 a.prefix.ToString(), a.label, a.ifname);
  }
  for (const Slot& slot : slots_) {
    absl::StatusOr<bool> has = addresses_->Has(slot.prefix, config_.interface);
    if (!has.ok() || !*has) continue;
    if (absl::Status s = addresses_->Remove(slot.prefix, config_.interface);
        !s.ok() && s.code() != absl::StatusCode::kNotFound) {
      return absl::Status(s.code(), absl::StrCat("cannot remove stale service address ",
                                                 slot.prefix.ToString(), ": ", s.message()));
    }
    spdlog::warn("removed stale address {} from {} (not labelled {})", slot.prefix.ToString(),
                 config_.interface, config_.label);
  }

  // Before anything can be taken: a stale fence table is replaced by one that leases nothing.
  if (absl::Status s = StartFence(); !s.ok()) return s;

  AnnouncerOptions nopt;
  nopt.schedule = config_.announce_schedule;
  absl::StatusOr<std::unique_ptr<Announcer>> announcer = drivers_.MakeAnnouncer(nopt);
  if (!announcer.ok()) return announcer.status();
  announcer_ = *std::move(announcer);
  announcer_driver_ = std::make_unique<AsioAnnouncerDriver>(io_, clock_, *announcer_);
  return absl::OkStatus();
}

absl::Status TakeoverDaemon::Start() {
  if (absl::Status s = LockInstance(); !s.ok()) return s;
  const Time now = clock_.MonotonicNow();
  started_ = now;
  if (!config_.witness) {
    if (absl::Status s = StartAddressDrivers(); !s.ok()) return s;
  }

  UdpTransportOptions topt;
  topt.self = config_.node_id;
  topt.bind_host = config_.bind_host;
  topt.bind_port = config_.self()->port;
  for (const DaemonPeerConfig& p : config_.peers) {
    if (p.id != config_.node_id) topt.peers.push_back(PeerAddress{p.id, p.host, p.port});
  }
  topt.key = key_;
  topt.incarnation = incarnation_;
  topt.freshness_window = config_.freshness_window;
  // One message per peer per round carries every slot (about 18 bytes each: 18.2 KB at 1024
  // slots), so a large pool needs more than the transport's 8 KiB default. Every member of the
  // group has the same pool, hence the same limit on both sides. 65467 is the transport's maximum.
  topt.max_payload_bytes =
      std::min<size_t>(65467, std::max<size_t>(topt.max_payload_bytes,
                                               1024 + 64 * config_.service_addresses.size()));
  absl::StatusOr<std::unique_ptr<UdpTransport>> transport = drivers_.MakeTransport(
      io_, clock_, std::move(topt),
      [this](NodeId from, std::string_view payload) { OnReceive(from, payload); });
  if (!transport.ok()) return transport.status();
  transport_ = *std::move(transport);

  if (absl::Status s = StartStatusSocket(); !s.ok()) return s;
  if (!config_.metrics_host.empty()) {
    MetricsServerOptions mopt;
    mopt.host = config_.metrics_host;
    mopt.port = config_.metrics_port;
    absl::StatusOr<std::unique_ptr<MetricsServer>> metrics = MetricsServer::Create(
        io_, mopt, [this] { return RenderTakeoverMetrics(StatusJson()); });
    if (!metrics.ok()) return metrics.status();
    metrics_ = *std::move(metrics);
    spdlog::info("metrics on http://{}/metrics", config_.metrics_listen);
  }

  absl::StatusOr<std::unique_ptr<Node>> node = Node::Create(group_, config_.node_id, now, restored_);
  if (!node.ok()) return node.status();
  node_ = *std::move(node);
  if (restored_) {
    spdlog::info("restored state from {}: membership version {}, {} members, slot 0 epoch floor {}",
                 config_.state_file, restored_->membership.version, restored_->membership.members.size(),
                 restored_->epochs.empty() ? 0 : restored_->epochs[0]);
  }
  // Requests that arrived before the Node existed (DrainSlot, SetHealthy before Start).
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].drained) node_->Drain(i, now);
  }
  if (!external_healthy_) {
    node_->Drain(now);
    draining_ = true;
  }

  const HealthCheckConfig::Kind kind = config_.health_check.kind;
  if (kind == HealthCheckConfig::Kind::kCommand || kind == HealthCheckConfig::Kind::kTcp) {
    health_ = std::make_unique<HealthChecker>(io_, config_.health_check, [this](bool healthy) {
      check_healthy_ = healthy;
      OnHealth();
    });
    health_->Start();
  }
  const Timing& t = group_.timing;
  std::vector<std::string> pool;
  for (const Slot& slot : slots_) pool.push_back(slot.prefix.ToString());
  if (config_.witness) {
    spdlog::info("baton-takeoverd node {} started as a witness (grants only) for {} slot(s), {} peers, "
                 "heartbeat {} ms, lease {} ms, shrink after {} ms, incarnation {}",
                 config_.node_id, slots_.size(), config_.peers.size(), Ms(t.heartbeat), Ms(t.lease),
                 Ms(t.shrink_after), incarnation_);
  } else {
    spdlog::info(
        "baton-takeoverd node {} started: {} on {} (label {}), {} peers, capacity {}, heartbeat {} ms, "
        "lease {} ms, grant hold {} ms, start-up quiet {} ms, valid_lft {} s, kernel fence {}, "
        "preempt {}, rebalance {}, incarnation {}",
        config_.node_id, absl::StrJoin(pool, ","), config_.interface, config_.label,
        config_.peers.size(), config_.self()->capacity, Ms(t.heartbeat), Ms(t.lease),
        Ms(GrantHold(t)), Ms(StartupQuiet(t)), ValidLifetime().count(),
        fence_ ? fence_->table() : std::string("off"), config_.preempt, config_.rebalance,
        incarnation_);
  }
  Pump();
  return absl::OkStatus();
}

void TakeoverDaemon::OnReceive(NodeId from, std::string_view payload) {
  if (!node_) return;
  // A peer of another build speaks another wire version: the core only sees a malformed
  // message; say which version came from whom, so that a half-upgraded group is obvious.
  if (payload.size() >= 3 && static_cast<uint8_t>(payload[0]) == wire::kMagic0 &&
      static_cast<uint8_t>(payload[1]) == wire::kMagic1 &&
      static_cast<uint8_t>(payload[2]) != wire::kVersion) {
    ++wrong_version_messages_;
    ++wrong_version_unlogged_;
    const Time now = clock_.MonotonicNow();
    if (!wrong_version_logged_ || now - *wrong_version_logged_ >= std::chrono::seconds(10)) {
      wrong_version_logged_ = now;
      spdlog::warn("take-over message version {} from peer {}, expected {}: dropped ({} such "
                   "message(s) since the last report); upgrade the group as a whole",
                   static_cast<unsigned>(static_cast<uint8_t>(payload[2])), from,
                   static_cast<unsigned>(wire::kVersion), wrong_version_unlogged_);
      wrong_version_unlogged_ = 0;
    }
  }
  node_->Receive(from, payload, clock_.MonotonicNow());
  Pump();
}

void TakeoverDaemon::OnTick() {
  if (!node_) return;
  const Time now = clock_.MonotonicNow();
  node_->Tick(now);
  EndStepBacks();
  RefreshLifetimes(false);
  Pump();
  if (shutting_down_ && now >= shutdown_deadline_) Finish();
}

void TakeoverDaemon::Pump() {
  // The core's output in the order struct Ready documents: actions, durable state, messages.
  Ready ready = node_->TakeReady();
  for (const Action& a : ready.actions) ApplyAction(a);
  SyncFence();
  // If the write fails, these messages are dropped (as if lost: safe) and the write is retried
  // next time.
  if (ready.state) pending_state_ = std::move(ready.state);
  if (pending_state_) {
    if (absl::Status s = SavePersistentState(config_.state_file, *pending_state_); !s.ok()) {
      ++state_errors_;
      spdlog::error("cannot store the protocol state (messages held back): {}", s.ToString());
      LogRoleChanges();
      ArmTick();
      return;
    }
    ++state_writes_;
    const Membership& m = pending_state_->membership;
    std::string membership = absl::StrCat(
        "version ", m.version, ": members [", absl::StrJoin(m.members, ","), "]",
        m.old_members.empty() ? "" : absl::StrCat(" joint with [", absl::StrJoin(m.old_members, ","), "]"));
    if (membership != logged_membership_) {
      spdlog::info("group membership {}", membership);
      logged_membership_ = std::move(membership);
    }
    pending_state_.reset();
  }
  for (const Outgoing& m : ready.messages) {
    if (absl::Status s = transport_->Send(m.to, m.payload); !s.ok()) {
      spdlog::debug("send to {} failed: {}", m.to, s.ToString());
    }
  }
  LogRoleChanges();
  ArmTick();
}

void TakeoverDaemon::ApplyAction(const Action& action) {
  if (action.slot >= slots_.size()) {
    spdlog::error("core action for unknown slot {}", action.slot);
    return;
  }
  if (config_.witness) {  // capacity 0: the core never asks; nothing to act with anyway
    spdlog::error("witness: ignored an address action for slot {}", action.slot);
    return;
  }
  Slot& slot = slots_[action.slot];
  const Time now = clock_.MonotonicNow();
  switch (action.kind) {
    case Action::Kind::kRemoveAddress: {
      announcer_driver_->Cancel(slot.prefix.address);
      // Not a release this node chose (operator or health drain, shutdown, a step-back): the
      // lease ran out. Counted for damping once the address is gone.
      const bool lost = slot.holding && !slot.drained && !draining_ && !shutting_down_ &&
                        !damper_.stepped_back(action.slot);
      RemoveAddressIfPresent(action.slot, "lease not renewed or released");
      if (lost && !slot.holding) OnLeaseLoss(action.slot);
      break;
    }
    case Action::Kind::kAddAddress: {
      SyncFence();  // lease the fence first, so the kernel answers from the first instant
      const std::chrono::seconds lft = ValidLifetime();
      absl::Status s = addresses_->Add(slot.prefix, config_.interface, config_.label, lft, lft);
      if (s.code() == absl::StatusCode::kAlreadyExists) {
        s = addresses_->Refresh(slot.prefix, config_.interface, lft, lft);
      }
      if (!s.ok()) {
        ++address_errors_;
        spdlog::error("cannot add {} to {}: {}", slot.prefix.ToString(), config_.interface,
                      s.ToString());
        break;
      }
      ++adds_;
      slot.holding = true;
      slot.held_epoch = action.epoch;
      slot.next_refresh = now + std::max<Time>(config_.heartbeat, milliseconds(500));
      if (absl::Status a = announcer_driver_->Start(slot.prefix.address, config_.interface); !a.ok()) {
        spdlog::warn("announce {} failed: {}", slot.prefix.ToString(), a.ToString());
      }
      Notify(action.slot, true, action.epoch);
      break;
    }
    case Action::Kind::kAnnounce:
      ++announces_;
      if (absl::Status a = announcer_driver_->Start(slot.prefix.address, config_.interface); !a.ok()) {
        spdlog::warn("announce {} failed: {}", slot.prefix.ToString(), a.ToString());
      }
      break;
  }
}

void TakeoverDaemon::RemoveAddressIfPresent(uint32_t index, const char* why) {
  RevokeFence(index);  // the kernel stops answering first, then the address goes
  Slot& slot = slots_[index];
  if (!slot.holding) return;
  absl::Status s = addresses_->Remove(slot.prefix, config_.interface);
  if (!s.ok() && s.code() != absl::StatusCode::kNotFound) {
    ++address_errors_;
    spdlog::error("cannot remove {} from {}: {}; retrying", slot.prefix.ToString(),
                  config_.interface, s.ToString());
    s = addresses_->Remove(slot.prefix, config_.interface);
    if (!s.ok() && s.code() != absl::StatusCode::kNotFound) {
      spdlog::critical("address {} could not be removed: {}", slot.prefix.ToString(), s.ToString());
      return;  // holding stays true: the next tick tries again
    }
  }
  ++removes_;
  slot.holding = false;
  spdlog::debug("removed {} ({})", slot.prefix.ToString(), why);
  Notify(index, false, slot.held_epoch);
}

absl::Status TakeoverDaemon::StartFence() {
  if (config_.kernel_fence.has_value() && !*config_.kernel_fence) return absl::OkStatus();
  // Named after the instance (label and node id): a restart finds and replaces its own table.
  std::string table = absl::StrCat("baton_", config_.label_suffix(), "_", config_.node_id);
  for (char& c : table) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0) c = '_';
  }
  if (table.size() > 32) table.resize(32);
  NftFenceOptions fopt;
  fopt.table = table;
  for (const Slot& slot : slots_) fopt.addresses.push_back(slot.prefix.address.to_string());
  absl::StatusOr<std::unique_ptr<KernelFence>> fence = drivers_.MakeFence(clock_, std::move(fopt));
  if (!fence.ok()) {
    if (config_.kernel_fence.has_value()) {
      return absl::Status(fence.status().code(),
                          absl::StrCat("kernel_fence: ", fence.status().message()));
    }
    spdlog::warn(
        "kernel fence unavailable ({}); a paused daemon's address answers until valid_lft ends",
        fence.status().ToString());
    return absl::OkStatus();
  }
  fence_ = *std::move(fence);
  return absl::OkStatus();
}

void TakeoverDaemon::SyncFence() {
  if (!fence_ || !node_) return;
  const Time now = clock_.MonotonicNow();
  const Node::Status st = node_->GetStatus(now);
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    Slot& slot = slots_[i];
    if (i >= st.slots.size() || !st.slots[i].held_by_me) {
      RevokeFence(i);
      continue;
    }
    const Time end = now + st.slots[i].lease_remaining;
    // Renewals move the end; re-reading the same lease must not cost a transaction.
    if (end <= slot.fence_end + std::chrono::microseconds(500)) continue;
    if (absl::Status s = fence_->Lease(slot.prefix.address.to_string(), end); !s.ok()) {
      ++fence_errors_;
      spdlog::error("kernel fence: cannot lease {}: {}", slot.prefix.ToString(), s.ToString());
      continue;
    }
    ++fence_updates_;
    slot.fence_end = end;
    // For measurements (tests/integration/takeover_pause.sh reads it): the lease end as seen now.
    spdlog::debug("kernel fence: lease ends in {:.3f} ms (slot {}, {})", Ms(end - clock_.MonotonicNow()), i,
                  slot.prefix.ToString());
  }
}

void TakeoverDaemon::RevokeFence(uint32_t index) {
  Slot& slot = slots_[index];
  if (!fence_ || slot.fence_end == Time(0)) return;
  if (absl::Status s = fence_->Revoke(slot.prefix.address.to_string()); !s.ok()) {
    ++fence_errors_;
    spdlog::error("kernel fence: cannot revoke {}: {}", slot.prefix.ToString(), s.ToString());
    return;
  }
  slot.fence_end = Time(0);
}

void TakeoverDaemon::RefreshLifetimes(bool force) {
  const Time now = clock_.MonotonicNow();
  for (Slot& slot : slots_) {
    if (!slot.holding) continue;
    if (!force && now < slot.next_refresh) continue;
    const std::chrono::seconds lft = ValidLifetime();
    absl::Status s = addresses_->Refresh(slot.prefix, config_.interface, lft, lft);
    if (s.code() == absl::StatusCode::kNotFound) {
      // Someone removed it (or it expired) while the core still holds a valid lease: put it back.
      spdlog::warn("{} vanished from {} while held; adding it again", slot.prefix.ToString(),
                   config_.interface);
      s = addresses_->Add(slot.prefix, config_.interface, config_.label, lft, lft);
    }
    if (!s.ok()) {
      ++address_errors_;
      spdlog::error("cannot refresh {}: {}", slot.prefix.ToString(), s.ToString());
    } else {
      ++refreshes_;
    }
    slot.next_refresh = now + std::max<Time>(config_.heartbeat, milliseconds(500));
  }
}

void TakeoverDaemon::ArmTick() {
  if (!node_) return;
  Time next = node_->NextTick();
  for (const Slot& slot : slots_) {
    if (slot.holding) next = std::min(next, slot.next_refresh);
  }
  if (shutting_down_) next = std::min(next, shutdown_deadline_);
  if (std::optional<Time> end = damper_.NextEnd()) next = std::min(next, *end);
  const Time delay = std::max<Time>(Time(0), next - clock_.MonotonicNow());
  tick_timer_.expires_after(delay);
  tick_timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive) return;
    OnTick();
  });
}

void TakeoverDaemon::LogRoleChanges() {
  const Node::Status st = node_->GetStatus(clock_.MonotonicNow());
  for (const Node::SlotStatus& s : st.slots) {
    if (s.slot >= slots_.size()) continue;
    Slot& slot = slots_[s.slot];
    if (s.holder == slot.last_holder && s.epoch == slot.last_epoch &&
        s.held_by_me == slot.last_held) {
      continue;
    }
    ++role_changes_;
    spdlog::info("role {}: slot {} holder {} epoch {} (was holder {} epoch {}){}",
                 s.held_by_me ? "HOLDER" : (draining_ || slot.drained ? "drained" : "backup"),
                 s.slot, NodeName(s.holder), s.epoch, NodeName(slot.last_holder), slot.last_epoch,
                 s.held_by_me ? absl::StrCat(", ", slot.prefix.ToString(), " on ", config_.interface)
                              : (s.shed && !draining_ && !slot.drained
                                     ? std::string(", shed (no capacity in this view)")
                                     : ""));
    slot.last_holder = s.holder;
    slot.last_epoch = s.epoch;
    slot.last_held = s.held_by_me;
  }
}

void TakeoverDaemon::OnHealth() {
  if (shutting_down_ || !node_) return;
  const bool healthy = check_healthy_ && external_healthy_;
  const Time now = clock_.MonotonicNow();
  if (!healthy && !draining_) {
    if (health_gate_pending_) return;
    spdlog::warn("local service unhealthy: draining (hand-over to a peer)");
    health_gate_pending_ = true;
    GateRelease(kAllSlots, [this] {
      health_gate_pending_ = false;
      if (shutting_down_ || draining_) return;
      if (check_healthy_ && external_healthy_) {  // recovered meanwhile: keeps serving
        for (uint32_t i = 0; i < slots_.size(); ++i) {
          if (slots_[i].holding) RefuseConnections(i, false);
        }
        return;
      }
      node_->Drain(clock_.MonotonicNow());
      draining_ = true;
      ++drains_;
      Pump();
    });
  } else if (healthy && draining_) {
    // Resume keeps the Node (its grants, membership and epochs): no start-up quiet period, and
    // like a recovered node it does not take an address from a live holder unless preempt.
    node_->Resume(now);
    draining_ = false;
    ++node_generation_;
    spdlog::info("local service healthy again: campaigning (resume {})", node_generation_ - 1);
    Pump();
  }
}

void TakeoverDaemon::Shutdown(std::function<void()> done, bool gate) {
  if (shutting_down_) {
    spdlog::warn("second stop request: exiting now");
    Finish();
    return;
  }
  shutting_down_ = true;
  shutdown_done_ = std::move(done);
  spdlog::info("stop requested: handing over");
  if (health_) health_->Stop();
  // No Finish from OnTick while the release gate is open.
  shutdown_deadline_ = Time::max();
  if (!gate) {
    for (uint32_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].holding) RefuseConnections(i, true);
    }
    return HandOver();
  }
  GateRelease(kAllSlots, [this] { HandOver(); });
}

void TakeoverDaemon::HandOver() {
  const Time now = clock_.MonotonicNow();
  if (node_ && !draining_) {
    node_->Drain(now);
    draining_ = true;
  }
  shutdown_deadline_ = now + std::min<Time>(config_.heartbeat, milliseconds(100));
  if (node_) {
    Pump();  // removals first, then the release messages
  } else {
    Finish();
  }
}

void TakeoverDaemon::Finish() {
  if (!alive_ || !*alive_) return;
  for (uint32_t i = 0; i < slots_.size(); ++i) RemoveAddressIfPresent(i, "shutdown");
  if (fence_ && !holding_any()) {
    if (absl::Status s = fence_->RemoveTables(); !s.ok()) {
      spdlog::warn("kernel fence: cannot remove tables: {}", s.ToString());
    }
  }
  if (announcer_driver_) {
    for (const Slot& slot : slots_) announcer_driver_->Cancel(slot.prefix.address);
  }
  tick_timer_.cancel();
  if (health_) health_->Stop();
  if (transport_) transport_->Close();
  if (status_acceptor_) {
    boost::system::error_code ec;
    status_acceptor_->close(ec);
  }
  if (metrics_) metrics_->Close();
  spdlog::info("stopped (address held: {})", holding_any());
  *alive_ = false;
  alive_ = std::make_shared<bool>(false);
  if (shutdown_done_) {
    auto done = std::move(shutdown_done_);
    shutdown_done_ = nullptr;
    done();
  }
}

nlohmann::json TakeoverDaemon::StatusJson() const {
  using nlohmann::json;
  const Time now = clock_.MonotonicNow();
  json j;
  j["node_id"] = config_.node_id;
  j["witness"] = config_.witness;
  j["service_address"] = slots_.empty() ? std::string() : slots_[0].prefix.ToString();
  j["interface"] = config_.interface;
  j["address_held"] = holding_any();
  j["healthy"] = check_healthy_ && external_healthy_;
  j["draining"] = draining_;
  j["shutting_down"] = shutting_down_;
  j["uptime_ms"] = node_ ? Ms(now - started_) : 0.0;
  j["node_generation"] = node_generation_;
  j["role_changes"] = role_changes_;
  j["kernel_fence"] = fence_ ? json(fence_->table()) : json(nullptr);
  j["fence_updates"] = fence_updates_;
  j["fence_errors"] = fence_errors_;
  j["state_file"] = config_.state_file;
  j["state_writes"] = state_writes_;
  j["state_errors"] = state_errors_;
  j["capacity"] = config_.self() ? config_.self()->capacity : 0;
  int used = 0;
  for (const Slot& slot : slots_) used += slot.holding ? 1 : 0;
  j["capacity_used"] = used;
  json counters = {{"takeovers", 0}, {"releases", 0}, {"sheds", 0}, {"drains", drains_},
                   {"address_adds", adds_}, {"address_removes", removes_},
                   {"step_backs", damper_.step_backs()}, {"gated_releases", gated_releases_},
                   {"gate_timeouts", gate_timeouts_}};
  std::vector<NodeId> view;
  std::optional<Node::Status> st;
  if (node_) st = node_->GetStatus(now);
  json slots = json::array();
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    const Node::SlotStatus* s = st && i < st->slots.size() ? &st->slots[i] : nullptr;
    slots.push_back(
        {{"slot", i},
         {"address", slots_[i].prefix.ToString()},
         {"holder", s && s->holder != kNoNode ? json(s->holder) : json(nullptr)},
         {"epoch", s ? s->epoch : 0},
         {"held_by_me", s ? s->held_by_me : false},
         {"address_here", slots_[i].holding},
         {"lease_remaining_ms", s ? Ms(s->lease_remaining) : 0.0},
         {"assigned", s && s->assigned != kNoNode ? json(s->assigned) : json(nullptr)},
         {"shed", s ? s->shed : false},
         {"drained", slots_[i].drained},
         {"stepped_back", damper_.stepped_back(i)},
         {"takeovers", s ? s->takeovers : 0},
         {"releases", s ? s->releases : 0},
         {"sheds", s ? s->sheds : 0}});
  }
  j["slots"] = slots;
  if (st) {
    j["quiet"] = st->quiet;
    view = st->view;
    counters["takeovers"] = st->takeovers;
    counters["releases"] = st->releases;
    counters["sheds"] = st->sheds;
    j["capacity"] = st->capacity;
    j["shed_slots"] = st->shed_slots;
    // Slot 0 at the top level: what the single-address daemon always reported.
    const Node::SlotStatus* s0 = st->slots.empty() ? nullptr : &st->slots[0];
    std::string role = config_.witness ? "witness" : "backup";
    if (shutting_down_) role = "stopping";
    else if (draining_) role = "drained";
    else if (holding_any()) role = "holder";
    else if (st->quiet) role = "starting";
    j["role"] = role;
    j["holder"] = s0 && s0->holder != kNoNode ? json(s0->holder) : json(nullptr);
    j["epoch"] = s0 ? s0->epoch : 0;
    j["lease_remaining_ms"] = s0 ? Ms(s0->lease_remaining) : 0.0;
    j["core"] = {{"malformed_messages", st->malformed_messages},
                 {"wrong_version_messages", wrong_version_messages_},
                 {"stale_messages", st->stale_messages},
                 {"late_messages", st->late_messages}};
    j["membership"] = {{"version", st->membership.version},
                       {"members", st->membership.members},
                       {"old_members", st->membership.old_members}};
  }
  j["counters"] = counters;
  j["view"] = view;
  json peers = json::array();
  for (const DaemonPeerConfig& p : config_.peers) {
    peers.push_back({{"id", p.id},
                     {"priority", p.priority},
                     {"capacity", p.capacity},
                     {"address", absl::StrCat(p.host.find(':') != std::string::npos ? "[" : "", p.host,
                                              p.host.find(':') != std::string::npos ? "]" : "", ":", p.port)},
                     {"self", p.id == config_.node_id},
                     {"in_view", std::find(view.begin(), view.end(), p.id) != view.end()}});
  }
  j["peers"] = peers;
  if (transport_) {
    const UdpTransportStats ts = transport_->GetStats();
    json dropped = json::object();
    for (size_t r = 0; r < static_cast<size_t>(DropReason::kCount); ++r) {
      std::string name(DropReasonName(static_cast<DropReason>(r)));
      // "bad MAC" -> "bad_mac": easy to query from scripts.
      for (char& ch : name) ch = ch == ' ' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      dropped[name] = ts.dropped[r];
    }
    j["transport"] = {{"sent", ts.sent},
                      {"send_failed", ts.send_failed},
                      {"delivered", ts.delivered},
                      {"dropped_total", ts.dropped_total()},
                      {"dropped", dropped}};
  }
  j["address"] = {{"adds", adds_},
                  {"removes", removes_},
                  {"refreshes", refreshes_},
                  {"errors", address_errors_},
                  {"announces", announces_},
                  {"valid_lft_s", ValidLifetime().count()}};
  if (health_) {
    j["health_check"] = {{"checks", health_->checks()}, {"failures", health_->failures()}};
  }
  return j;
}

}  // namespace baton::takeover

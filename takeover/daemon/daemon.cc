#include "takeover/daemon/daemon.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <sstream>

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spdlog/spdlog.h"

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
  if (c.shrink_after_heartbeats > 0) t.shrink_after = Multiple(c.heartbeat, c.shrink_after_heartbeats);
  return t;
}

absl::Status TakeoverDaemon::Validate(const DaemonConfig& config, const Clock& clock) {
  absl::StatusOr<IpPrefix> prefix =
      IpPrefix::Parse(absl::StrCat(config.service_address, "/", config.prefix_length));
  if (!prefix.ok()) return prefix.status();
  GroupConfig group;
  for (const DaemonPeerConfig& p : config.peers) {
    group.peers.push_back(PeerConfig{p.id, p.priority, p.capacity});
  }
  group.num_slots = 1;
  group.timing = TimingFromConfig(config);
  group.preempt = config.preempt;
  absl::StatusOr<std::unique_ptr<Node>> probe = Node::Create(group, config.node_id, clock.Now());
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
                                                                       DaemonConfig config) {
  // Validates the group and timing as the core sees them, before anything touches the system.
  if (absl::Status s = Validate(config, clock); !s.ok()) return s;
  absl::StatusOr<IpPrefix> prefix =
      IpPrefix::Parse(absl::StrCat(config.service_address, "/", config.prefix_length));
  if (!prefix.ok()) return prefix.status();
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
      new TakeoverDaemon(io, clock, std::move(config), *std::move(key), *incarnation, *prefix));
  daemon->restored_ = *std::move(restored);
  if (daemon->restored_) {
    // The core checks the restored membership against the peer list (e.g. a peer removed from
    // the config since): refuse at start-up like any other config error.
    absl::StatusOr<std::unique_ptr<Node>> probe =
        Node::Create(daemon->group_, daemon->config_.node_id, clock.Now(), daemon->restored_);
    if (!probe.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("state file ", daemon->config_.state_file,
                                                     " refused by the core: ", probe.status().message()));
    }
  }
  return daemon;
}

TakeoverDaemon::TakeoverDaemon(boost::asio::io_context& io, const Clock& clock, DaemonConfig config,
                               std::string key, uint64_t incarnation, IpPrefix prefix)
    : io_(io),
      clock_(clock),
      config_(std::move(config)),
      key_(std::move(key)),
      incarnation_(incarnation),
      prefix_(std::move(prefix)),
      tick_timer_(io) {
  for (const DaemonPeerConfig& p : config_.peers) {
    group_.peers.push_back(PeerConfig{p.id, p.priority, p.capacity});
  }
  group_.num_slots = 1;
  group_.timing = TimingFromConfig(config_);
  group_.preempt = config_.preempt;
}

TakeoverDaemon::~TakeoverDaemon() {
  *alive_ = false;
  if (status_acceptor_) ::unlink(config_.status_socket.c_str());
}

std::chrono::seconds TakeoverDaemon::ValidLifetime() const {
  double s = static_cast<double>(config_.heartbeat.count()) * config_.address_lifetime_heartbeats / 1e9;
  return std::chrono::seconds(std::max<int64_t>(2, static_cast<int64_t>(std::ceil(s))));
}

absl::Status TakeoverDaemon::Start() {
  const Time now = clock_.Now();
  started_ = now;
  AddressDriverOptions aopt;
  aopt.label_suffix = config_.label_suffix();
  absl::StatusOr<std::unique_ptr<AddressDriver>> addresses = AddressDriver::Create(aopt);
  if (!addresses.ok()) return addresses.status();
  addresses_ = *std::move(addresses);
  // Whatever an earlier run left behind must go before this node may take anything.
  absl::StatusOr<std::vector<ManagedAddress>> stale = addresses_->RemoveStale(config_.interface);
  if (!stale.ok()) return stale.status();
  for (const ManagedAddress& a : *stale) {
    spdlog::warn("removed stale address {} (label '{}') from {} left by an earlier run",
                 a.prefix.ToString(), a.label, a.ifname);
  }

  // Before anything can be taken: a stale fence table is replaced by one that leases nothing.
  if (absl::Status s = StartFence(); !s.ok()) return s;

  AnnouncerOptions nopt;
  nopt.schedule = config_.announce_schedule;
  absl::StatusOr<std::unique_ptr<Announcer>> announcer = Announcer::Create(nopt);
  if (!announcer.ok()) return announcer.status();
  announcer_ = *std::move(announcer);
  announcer_driver_ = std::make_unique<AsioAnnouncerDriver>(io_, clock_, *announcer_);

  UdpTransportOptions topt;
  topt.self = config_.node_id;
  topt.bind_host = config_.bind_host;
  topt.bind_port = config_.self()->port;
  for (const DaemonPeerConfig& p : config_.peers) {
    if (p.id != config_.node_id) topt.peers.push_back(PeerAddress{p.id, p.host, p.port});
  }
  topt.key = key_;
  topt.incarnation = incarnation_;
  absl::StatusOr<std::unique_ptr<UdpTransport>> transport = UdpTransport::Create(
      io_, clock_, std::move(topt),
      [this](NodeId from, std::string_view payload) { OnReceive(from, payload); });
  if (!transport.ok()) return transport.status();
  transport_ = *std::move(transport);

  if (absl::Status s = StartStatusSocket(); !s.ok()) return s;

  absl::StatusOr<std::unique_ptr<Node>> node = Node::Create(group_, config_.node_id, now, restored_);
  if (!node.ok()) return node.status();
  node_ = *std::move(node);
  if (restored_) {
    spdlog::info("restored state from {}: membership version {}, {} members, slot 0 epoch floor {}",
                 config_.state_file, restored_->membership.version, restored_->membership.members.size(),
                 restored_->epochs.empty() ? 0 : restored_->epochs[0]);
  }

  if (config_.health_check.kind != HealthCheckConfig::Kind::kNone) {
    health_ = std::make_unique<HealthChecker>(io_, config_.health_check,
                                              [this](bool healthy) { OnHealth(healthy); });
    health_->Start();
  }
  const Timing& t = group_.timing;
  spdlog::info(
      "baton-takeoverd node {} started: {} on {} (label {}), {} peers, heartbeat {} ms, lease {} ms, "
      "grant hold {} ms, start-up quiet {} ms, valid_lft {} s, kernel fence {}, preempt {}, "
      "incarnation {}",
      config_.node_id, prefix_.ToString(), config_.interface, config_.label, config_.peers.size(),
      Ms(t.heartbeat), Ms(t.lease), Ms(GrantHold(t)), Ms(StartupQuiet(t)), ValidLifetime().count(),
      fence_ ? fence_->table() : std::string("off"), config_.preempt, incarnation_);
  Pump();
  return absl::OkStatus();
}

void TakeoverDaemon::OnReceive(NodeId from, std::string_view payload) {
  if (!node_) return;
  node_->Receive(from, payload, clock_.Now());
  Pump();
}

void TakeoverDaemon::OnTick() {
  if (!node_) return;
  const Time now = clock_.Now();
  node_->Tick(now);
  RefreshLifetime(false);
  Pump();
  if (shutting_down_ && now >= shutdown_deadline_) Finish();
}

void TakeoverDaemon::Pump() {
  for (const Action& a : node_->TakeActions()) ApplyAction(a);
  SyncFence();
  // The core's contract: its state is durable before the messages of the same call leave. If the
  // write fails, these messages are dropped (as if lost: safe) and the write is retried next time.
  if (std::optional<PersistentState> st = node_->TakeStateToPersist()) pending_state_ = std::move(st);
  if (pending_state_) {
    if (absl::Status s = SavePersistentState(config_.state_file, *pending_state_); !s.ok()) {
      ++state_errors_;
      spdlog::error("cannot store the protocol state (messages held back): {}", s.ToString());
      node_->TakeMessages();
      LogRoleChange();
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
  for (Outgoing& m : node_->TakeMessages()) {
    if (absl::Status s = transport_->Send(m.to, m.payload); !s.ok()) {
      spdlog::debug("send to {} failed: {}", m.to, s.ToString());
    }
  }
  LogRoleChange();
  ArmTick();
}

void TakeoverDaemon::ApplyAction(const Action& action) {
  const Time now = clock_.Now();
  switch (action.kind) {
    case Action::Kind::kRemoveAddress:
      announcer_driver_->Cancel(prefix_.address);
      RemoveAddressIfPresent("lease not renewed or released");
      break;
    case Action::Kind::kAddAddress: {
      SyncFence();  // lease the fence first, so the kernel answers from the first instant
      const std::chrono::seconds lft = ValidLifetime();
      absl::Status s = addresses_->Add(prefix_, config_.interface, config_.label, lft, lft);
      if (s.code() == absl::StatusCode::kAlreadyExists) {
        s = addresses_->Refresh(prefix_, config_.interface, lft, lft);
      }
      if (!s.ok()) {
        ++address_errors_;
        spdlog::error("cannot add {} to {}: {}", prefix_.ToString(), config_.interface, s.ToString());
        break;
      }
      ++adds_;
      holding_ = true;
      held_epoch_ = action.epoch;
      next_refresh_ = now + std::max<Time>(config_.heartbeat, milliseconds(500));
      if (absl::Status a = announcer_driver_->Start(prefix_.address, config_.interface); !a.ok()) {
        spdlog::warn("announce {} failed: {}", prefix_.ToString(), a.ToString());
      }
      break;
    }
    case Action::Kind::kAnnounce:
      ++announces_;
      if (absl::Status a = announcer_driver_->Start(prefix_.address, config_.interface); !a.ok()) {
        spdlog::warn("announce {} failed: {}", prefix_.ToString(), a.ToString());
      }
      break;
  }
}

void TakeoverDaemon::RemoveAddressIfPresent(const char* why) {
  RevokeFence();  // the kernel stops answering first, then the address goes
  if (!holding_) return;
  absl::Status s = addresses_->Remove(prefix_, config_.interface);
  if (!s.ok() && s.code() != absl::StatusCode::kNotFound) {
    ++address_errors_;
    spdlog::error("cannot remove {} from {}: {}; retrying", prefix_.ToString(), config_.interface,
                  s.ToString());
    s = addresses_->Remove(prefix_, config_.interface);
    if (!s.ok() && s.code() != absl::StatusCode::kNotFound) {
      spdlog::critical("address {} could not be removed: {}", prefix_.ToString(), s.ToString());
      return;  // holding_ stays true: the next tick tries again
    }
  }
  ++removes_;
  holding_ = false;
  spdlog::debug("removed {} ({})", prefix_.ToString(), why);
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
  fopt.addresses = {prefix_.address.to_string()};
  absl::StatusOr<std::unique_ptr<NftFence>> fence = NftFence::Create(clock_, std::move(fopt));
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
  const Time now = clock_.Now();
  const Node::Status st = node_->GetStatus(now);
  if (st.slots.empty() || !st.slots[0].held_by_me) {
    RevokeFence();
    return;
  }
  const Time end = now + st.slots[0].lease_remaining;
  // Renewals move the end; re-reading the same lease must not cost a transaction.
  if (end <= fence_end_ + std::chrono::microseconds(500)) return;
  if (absl::Status s = fence_->Lease(prefix_.address.to_string(), end); !s.ok()) {
    ++fence_errors_;
    spdlog::error("kernel fence: cannot lease {}: {}", prefix_.ToString(), s.ToString());
    return;
  }
  ++fence_updates_;
  fence_end_ = end;
  // For measurements (tests/integration/takeover_pause.sh reads it): the lease end as seen now.
  spdlog::debug("kernel fence: lease ends in {:.3f} ms", Ms(end - clock_.Now()));
}

void TakeoverDaemon::RevokeFence() {
  if (!fence_ || fence_end_ == Time(0)) return;
  if (absl::Status s = fence_->Revoke(prefix_.address.to_string()); !s.ok()) {
    ++fence_errors_;
    spdlog::error("kernel fence: cannot revoke {}: {}", prefix_.ToString(), s.ToString());
    return;
  }
  fence_end_ = Time(0);
}

void TakeoverDaemon::RefreshLifetime(bool force) {
  if (!holding_) return;
  const Time now = clock_.Now();
  if (!force && now < next_refresh_) return;
  const std::chrono::seconds lft = ValidLifetime();
  absl::Status s = addresses_->Refresh(prefix_, config_.interface, lft, lft);
  if (s.code() == absl::StatusCode::kNotFound) {
    // Someone removed it (or it expired) while the core still holds a valid lease: put it back.
    spdlog::warn("{} vanished from {} while held; adding it again", prefix_.ToString(),
                 config_.interface);
    s = addresses_->Add(prefix_, config_.interface, config_.label, lft, lft);
  }
  if (!s.ok()) {
    ++address_errors_;
    spdlog::error("cannot refresh {}: {}", prefix_.ToString(), s.ToString());
  } else {
    ++refreshes_;
  }
  next_refresh_ = now + std::max<Time>(config_.heartbeat, milliseconds(500));
}

void TakeoverDaemon::ArmTick() {
  if (!node_) return;
  Time next = node_->NextTick();
  if (holding_) next = std::min(next, next_refresh_);
  if (shutting_down_) next = std::min(next, shutdown_deadline_);
  const Time delay = std::max<Time>(Time(0), next - clock_.Now());
  tick_timer_.expires_after(delay);
  tick_timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive) return;
    OnTick();
  });
}

void TakeoverDaemon::LogRoleChange() {
  const Node::Status st = node_->GetStatus(clock_.Now());
  if (st.slots.empty()) return;
  const Node::SlotStatus& s = st.slots[0];
  if (s.holder == last_holder_ && s.epoch == last_epoch_ && s.held_by_me == last_held_) return;
  ++role_changes_;
  spdlog::info("role {}: slot 0 holder {} epoch {} (was holder {} epoch {}){}",
               s.held_by_me ? "HOLDER" : (draining_ ? "drained" : "backup"), NodeName(s.holder),
               s.epoch, NodeName(last_holder_), last_epoch_,
               s.held_by_me ? absl::StrCat(", ", prefix_.ToString(), " on ", config_.interface) : "");
  last_holder_ = s.holder;
  last_epoch_ = s.epoch;
  last_held_ = s.held_by_me;
}

void TakeoverDaemon::OnHealth(bool healthy) {
  if (shutting_down_ || !node_) return;
  const Time now = clock_.Now();
  if (!healthy && !draining_) {
    spdlog::warn("local service unhealthy: draining (hand-over to a peer)");
    node_->Drain(now);
    draining_ = true;
    Pump();
  } else if (healthy && draining_) {
    // Resume keeps the Node (its grants, membership and epochs): no start-up quiet period, and
    // like a recovered node it does not take the address from a live holder unless preempt.
    node_->Resume(now);
    draining_ = false;
    ++node_generation_;
    spdlog::info("local service healthy again: campaigning (resume {})", node_generation_ - 1);
    Pump();
  }
}

void TakeoverDaemon::Shutdown(std::function<void()> done) {
  if (shutting_down_) {
    spdlog::warn("second stop request: exiting now");
    Finish();
    return;
  }
  shutting_down_ = true;
  shutdown_done_ = std::move(done);
  const Time now = clock_.Now();
  spdlog::info("stop requested: handing over");
  if (health_) health_->Stop();
  if (node_ && !draining_) {
    node_->Drain(now);
    draining_ = true;
  }
  shutdown_deadline_ = now + std::min<Time>(config_.heartbeat, milliseconds(100));
  if (node_) {
    Pump();  // removal first, then the release messages
  } else {
    Finish();
  }
}

void TakeoverDaemon::Finish() {
  if (!alive_ || !*alive_) return;
  RemoveAddressIfPresent("shutdown");
  if (fence_ && !holding_) {
    if (absl::Status s = fence_->RemoveTables(); !s.ok()) {
      spdlog::warn("kernel fence: cannot remove tables: {}", s.ToString());
    }
  }
  if (announcer_driver_) announcer_driver_->Cancel(prefix_.address);
  tick_timer_.cancel();
  if (health_) health_->Stop();
  if (transport_) transport_->Close();
  if (status_acceptor_) {
    boost::system::error_code ec;
    status_acceptor_->close(ec);
  }
  spdlog::info("stopped (address held: {})", holding_);
  *alive_ = false;
  alive_ = std::make_shared<bool>(false);
  if (shutdown_done_) {
    auto done = std::move(shutdown_done_);
    shutdown_done_ = nullptr;
    done();
  }
}

absl::Status TakeoverDaemon::StartStatusSocket() {
  const std::string& path = config_.status_socket;
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat("status socket path ", path, " exists and is not a socket"));
    }
    if (QueryStatus(path).ok()) {
      return absl::FailedPreconditionError(absl::StrCat("another daemon answers on ", path));
    }
    ::unlink(path.c_str());
  }
  boost::system::error_code ec;
  auto acceptor = std::make_unique<boost::asio::local::stream_protocol::acceptor>(io_);
  boost::asio::local::stream_protocol::endpoint ep(path);
  acceptor->open(ep.protocol(), ec);
  if (!ec) acceptor->bind(ep, ec);
  if (!ec) acceptor->listen(8, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("status socket ", path, ": ", ec.message()));
  ::chmod(path.c_str(), 0600);
  status_acceptor_ = std::move(acceptor);
  AcceptStatus();
  return absl::OkStatus();
}

void TakeoverDaemon::AcceptStatus() {
  status_acceptor_->async_accept(
      [this, alive = alive_](const boost::system::error_code& ec,
                             boost::asio::local::stream_protocol::socket socket) {
        if (!*alive || ec == boost::asio::error::operation_aborted) return;
        if (!ec) {
          auto sock = std::make_shared<boost::asio::local::stream_protocol::socket>(std::move(socket));
          auto text = std::make_shared<std::string>(StatusJson().dump() + "\n");
          boost::asio::async_write(*sock, boost::asio::buffer(*text),
                                   [sock, text](const boost::system::error_code&, size_t) {
                                     boost::system::error_code ignored;
                                     sock->close(ignored);
                                   });
        }
        AcceptStatus();
      });
}

nlohmann::json TakeoverDaemon::StatusJson() const {
  using nlohmann::json;
  const Time now = clock_.Now();
  json j;
  j["node_id"] = config_.node_id;
  j["service_address"] = prefix_.ToString();
  j["interface"] = config_.interface;
  j["address_held"] = holding_;
  j["healthy"] = health_ ? health_->healthy() : true;
  j["draining"] = draining_;
  j["shutting_down"] = shutting_down_;
  j["uptime_ms"] = Ms(now - started_);
  j["node_generation"] = node_generation_;
  j["role_changes"] = role_changes_;
  j["kernel_fence"] = fence_ ? nlohmann::json(fence_->table()) : nlohmann::json(nullptr);
  j["fence_updates"] = fence_updates_;
  j["fence_errors"] = fence_errors_;
  j["state_file"] = config_.state_file;
  j["state_writes"] = state_writes_;
  j["state_errors"] = state_errors_;
  std::vector<NodeId> view;
  if (node_) {
    const Node::Status st = node_->GetStatus(now);
    j["quiet"] = st.quiet;
    view = st.view;
    json slots = json::array();
    for (const Node::SlotStatus& s : st.slots) {
      slots.push_back({{"slot", s.slot},
                       {"holder", s.holder == kNoNode ? json(nullptr) : json(s.holder)},
                       {"epoch", s.epoch},
                       {"held_by_me", s.held_by_me},
                       {"lease_remaining_ms", Ms(s.lease_remaining)}});
    }
    j["slots"] = slots;
    const Node::SlotStatus* s0 = st.slots.empty() ? nullptr : &st.slots[0];
    std::string role = "backup";
    if (shutting_down_) role = "stopping";
    else if (draining_) role = "drained";
    else if (s0 && s0->held_by_me) role = "holder";
    else if (st.quiet) role = "starting";
    j["role"] = role;
    j["holder"] = s0 && s0->holder != kNoNode ? json(s0->holder) : json(nullptr);
    j["epoch"] = s0 ? s0->epoch : 0;
    j["lease_remaining_ms"] = s0 ? Ms(s0->lease_remaining) : 0.0;
    j["core"] = {{"malformed_messages", st.malformed_messages}, {"stale_messages", st.stale_messages}};
    j["membership"] = {{"version", st.membership.version},
                       {"members", st.membership.members},
                       {"old_members", st.membership.old_members}};
  }
  j["view"] = view;
  json peers = json::array();
  for (const DaemonPeerConfig& p : config_.peers) {
    peers.push_back({{"id", p.id},
                     {"priority", p.priority},
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

absl::StatusOr<nlohmann::json> QueryStatus(const std::string& socket_path) {
  boost::asio::io_context io;
  boost::asio::local::stream_protocol::socket sock(io);
  boost::system::error_code ec;
  sock.connect(boost::asio::local::stream_protocol::endpoint(socket_path), ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot connect to ", socket_path, ": ", ec.message()));
  std::string text;
  char buf[4096];
  for (int i = 0; i < 1024; ++i) {  // bounded: at most 4 MiB
    size_t n = sock.read_some(boost::asio::buffer(buf), ec);
    text.append(buf, n);
    if (ec) break;
  }
  if (ec != boost::asio::error::eof && ec) {
    return absl::UnavailableError(absl::StrCat("reading ", socket_path, ": ", ec.message()));
  }
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::DataLossError("status socket sent malformed JSON");
  return j;
}

std::string FormatStatus(const nlohmann::json& j) {
  std::ostringstream o;
  auto id = [](const nlohmann::json& v) { return v.is_null() ? std::string("none") : v.dump(); };
  o << "node " << j.value("node_id", 0) << ": " << j.value("role", "?") << ", holder "
    << id(j.value("holder", nlohmann::json())) << ", epoch " << j.value("epoch", 0)
    << ", lease remaining " << j.value("lease_remaining_ms", 0.0) << " ms\n";
  o << "service address " << j.value("service_address", "") << " on " << j.value("interface", "")
    << " (held here: " << (j.value("address_held", false) ? "yes" : "no") << ")\n";
  o << "healthy " << (j.value("healthy", true) ? "yes" : "no") << ", draining "
    << (j.value("draining", false) ? "yes" : "no") << ", start-up quiet "
    << (j.value("quiet", false) ? "yes" : "no") << "\n";
  o << "peers:\n";
  for (const auto& p : j.value("peers", nlohmann::json::array())) {
    o << "  " << p.value("id", 0) << "  priority " << p.value("priority", 0) << "  "
      << p.value("address", "") << (p.value("self", false) ? "  (self)" : "")
      << (p.value("in_view", false) ? "  in view" : "  NOT in view") << "\n";
  }
  if (j.contains("transport")) {
    const auto& t = j["transport"];
    o << "transport: sent " << t.value("sent", 0) << ", delivered " << t.value("delivered", 0)
      << ", dropped " << t.value("dropped_total", 0);
    for (const auto& [k, v] : t["dropped"].items()) {
      if (v.get<uint64_t>() != 0) o << " (" << k << " " << v.get<uint64_t>() << ")";
    }
    o << "\n";
  }
  return o.str();
}

}  // namespace baton::takeover

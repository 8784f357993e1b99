#include "framework/embedded_agent.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <utility>
#include <vector>

extern char** environ;

#include <boost/asio/post.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "framework/absl_compat.h"
#include "framework/clock.h"
#include "framework/json.h"
#include "spdlog/spdlog.h"
#include "takeover/daemon/agent_link_protocol.h"
#include "takeover/drivers/clock.h"

namespace baton::framework {

namespace agent_link = takeover::agent_link;

namespace {

nlohmann::json FenceJson(const FenceSlot& f) {
  nlohmann::json j = {{"slot", f.slot},
                      {"address", f.address},
                      {"state", std::string(FenceStateName(f.state))},
                      {"epoch", f.epoch},
                      {"version", f.version}};
  if (!f.error.empty()) j["error"] = f.error;
  return j;
}

}  // namespace

absl::StatusOr<EmbeddedAgentConfig> ParseEmbeddedAgentConfig(
    std::string_view yaml) {
  absl::StatusOr<takeover::DaemonConfig> daemon =
      takeover::ParseDaemonConfig(yaml);
  if (!daemon.ok()) {
    // The daemon names keys from the root of its own file ("config: peers:
    // missing"); here they live under `takeover.`.
    absl::string_view m = daemon.status().message();
    absl::ConsumePrefix(&m, "config: ");
    return absl::InvalidArgumentError(absl::StrCat("takeover.", m));
  }
  EmbeddedAgentConfig c;
  c.daemon = *std::move(daemon);
  c.yaml = std::string(yaml);
  if (c.daemon.health_check.kind == takeover::HealthCheckConfig::Kind::kNone) {
    c.daemon.health_check.kind = takeover::HealthCheckConfig::Kind::kExternal;
  }
  return c;
}


ServerAgent::ServerAgent(EmbeddedAgentConfig config)
    : config_(std::move(config)) {}

ServerAgent::~ServerAgent() = default;

void ServerAgent::StartLoops(storage::StableStore& store) {
  store_ = &store;
  fence_thread_ = std::thread([this] { FenceLoop(); });
  health_thread_ = std::thread([this] { HealthLoop(); });
  liveness_thread_ = std::thread([this] { LivenessLoop(); });
  close_thread_ = std::thread([this] { CloseLoop(); });
}

void ServerAgent::StopLoops() {
  {
    absl::MutexLock lock(&loops_mu_);
    stop_ = true;
    wake_fence_.SignalAll();
    wake_health_.SignalAll();
    wake_close_.SignalAll();
  }
  if (close_thread_.joinable()) close_thread_.join();
  if (liveness_thread_.joinable()) liveness_thread_.join();
  if (health_thread_.joinable()) health_thread_.join();
  if (fence_thread_.joinable()) fence_thread_.join();
  std::deque<Closing> left;
  {
    absl::MutexLock lock(&loops_mu_);
    left.swap(closing_);
  }
  for (Closing& c : left) c.done();
}

void ServerAgent::OnReleasing(const std::string& address,
                              std::function<void()> done) {
  absl::MutexLock lock(&loops_mu_);
  if (stop_) {
    done();
    return;
  }
  closing_.push_back(Closing{address, std::move(done)});
  wake_close_.Signal();
}

void ServerAgent::CloseLoop() {
  Clock& clock = RealClock();
  // The daemon stops waiting after its close_timeout anyway; this bound
  // only keeps a closer that never reaches 0 from holding the thread.
  const absl::Duration limit =
      absl::FromChrono(config_.daemon.close_timeout) + absl::Milliseconds(50);
  for (;;) {
    Closing job;
    {
      absl::MutexLock lock(&loops_mu_);
      while (!stop_ && closing_.empty()) wake_close_.Wait(&loops_mu_);
      if (stop_) return;
      job = std::move(closing_.front());
      closing_.pop_front();
    }
    const absl::Time t0 = clock.Now();
    size_t first = 0, left = 0;
    for (int round = 0;; ++round) {
      left = closer_ ? closer_(job.address) : 0;
      if (round == 0) first = left;
      if (left == 0 || clock.Now() - t0 >= limit) break;
      absl::MutexLock lock(&loops_mu_);
      // Real time: polling the connections' closing, not a protocol step.
      if (!stop_) wake_close_.WaitWithTimeout(&loops_mu_, absl::Milliseconds(1));
      if (stop_) break;
    }
    spdlog::info("planned release of {}: {} connection(s) there closed in {}{}",
                 job.address, first - std::min(first, left),
                 absl::FormatDuration(clock.Now() - t0),
                 left > 0 ? absl::StrCat(", ", left, " still open") : "");
    job.done();
  }
}

void ServerAgent::LivenessLoop() {
  const absl::Duration liveness =
      absl::FromChrono(config_.daemon.health_check.liveness);
  const absl::Duration interval =
      std::max(liveness / 6, absl::Milliseconds(5));
  const absl::Duration stuck_after =
      absl::FromChrono(config_.daemon.health_check.timeout) *
      std::max(1, config_.daemon.health_check.fall);
  Clock& clock = RealClock();
  absl::Time last_progress = clock.Now();
  for (;;) {
    {
      absl::MutexLock lock(&loops_mu_);
      if (stop_) return;
    }
    const absl::Time t0 = clock.Now();
    // The probe waits at most one interval; it is the pause between rounds
    // when the loop is busy.
    const bool progress = !probe_ || probe_(interval);
    const absl::Time now = clock.Now();
    if (progress) last_progress = now;
    const bool live = now - last_progress < liveness;
    if (live != live_.load()) {
      live_.store(live);
      if (live) {
        spdlog::info("the server's event loop makes progress again");
      } else {
        spdlog::error("the server's event loop made no progress for {}: hung; "
                      "giving the service addresses away",
                      absl::FormatDuration(now - last_progress));
      }
      AgentHealthy(healthy());
    }
    // A store call that does not come back is no answer either: a ping
    // running longer than health_check.timeout x fall counts as a failed
    // store (HealthLoop cannot tell while it waits in the ping).
    const int64_t ping0 = ping_started_ns_.load();
    if (ping0 != 0 && !ping_stuck_.load() &&
        now - absl::FromUnixNanos(ping0) > stuck_after) {
      ping_stuck_.store(true);
      if (store_healthy_.exchange(false)) {
        spdlog::warn("store ping running for {}: giving the service addresses "
                     "away", absl::FormatDuration(now - absl::FromUnixNanos(ping0)));
        AgentHealthy(healthy());
      }
    }
    if (progress) AgentKeepalive();
    const absl::Duration rest = interval - (clock.Now() - t0);
    if (rest > absl::ZeroDuration()) {
      absl::MutexLock lock(&loops_mu_);
      // Real time: the keepalive period, not a protocol decision.
      if (!stop_) wake_health_.WaitWithTimeout(&loops_mu_, rest);
    }
  }
}

void ServerAgent::OnSlotEvent(const takeover::SlotEvent& e) {
  if (e.held) {
    spdlog::info("slot {} ({}) taken here, epoch {}: writing its fence",
                 e.slot, e.address, e.epoch);
    fences_.Held(e.slot, e.address, e.epoch);
    absl::MutexLock lock(&loops_mu_);
    establish_.emplace_back(e.slot, e.epoch);
    wake_fence_.Signal();
  } else {
    spdlog::info("slot {} ({}) released here (epoch {})", e.slot, e.address,
                 e.epoch);
    fences_.Released(e.slot);
  }
}

void ServerAgent::ReleaseAll() {
  for (const FenceSlot& f : fences_.Snapshot()) {
    if (f.state != FenceState::kReleased) fences_.Released(f.slot);
  }
}

void ServerAgent::FenceLoop() {
  for (;;) {
    std::pair<uint32_t, uint64_t> job;
    {
      absl::MutexLock lock(&loops_mu_);
      while (!stop_ && establish_.empty()) wake_fence_.Wait(&loops_mu_);
      if (stop_) return;
      job = establish_.front();
      establish_.pop_front();
    }
    absl::Duration backoff = absl::Milliseconds(100);
    while (fences_.WantsEstablish(job.first, job.second)) {
      absl::Status s = fences_.Establish(*store_, job.first, job.second);
      if (s.ok() || s.code() == absl::StatusCode::kFailedPrecondition) break;
      spdlog::warn("fence of slot {} (epoch {}) not written yet: {}; retrying",
                   job.first, job.second, std::string(s.message()));
      absl::MutexLock lock(&loops_mu_);
      // Real time: a retry pause, not a protocol decision.
      if (!stop_) wake_fence_.WaitWithTimeout(&loops_mu_, backoff);
      if (stop_) return;
      backoff = std::min(backoff * 2, absl::Seconds(1));
    }
  }
}

void ServerAgent::HealthLoop() {
  const takeover::HealthCheckConfig& hc = config_.daemon.health_check;
  const absl::Duration period = absl::FromChrono(hc.period);
  const absl::Duration timeout = absl::FromChrono(hc.timeout);
  const int fall = std::max(1, hc.fall), rise = std::max(1, hc.rise);
  Clock& clock = RealClock();
  int fails = 0, oks = 0;
  bool healthy = true;
  for (;;) {
    {
      absl::MutexLock lock(&loops_mu_);
      if (!stop_) wake_health_.WaitWithTimeout(&loops_mu_, period);
      if (stop_) return;
    }
    const absl::Time t0 = clock.Now();
    ping_started_ns_.store(absl::ToUnixNanos(t0));
    absl::Status s = store_->Ping();
    ping_started_ns_.store(0);
    const absl::Duration took = clock.Now() - t0;
    if (s.ok() && took > timeout) {
      s = absl::DeadlineExceededError(
          absl::StrCat("ping took ", absl::FormatDuration(took)));
    }
    if (ping_stuck_.exchange(false)) {
      // The liveness loop reported this ping as stuck (store unhealthy):
      // it counts as the fall-th failure; `rise` good pings undo it.
      healthy = false;
      oks = 0;
      fails = fall;
    }
    if (s.ok()) {
      fails = 0;
      if (!healthy && ++oks >= rise) {
        healthy = true;
        store_healthy_.store(true);
        spdlog::info("store reachable again ({} pings): campaigning", oks);
        AgentHealthy(this->healthy());
      }
      continue;
    }
    oks = 0;
    pings_failed_.fetch_add(1, std::memory_order_relaxed);
    spdlog::debug("store ping failed ({} in a row): {}", fails + 1,
                  std::string(s.message()));
    if (healthy && ++fails >= fall) {
      healthy = false;
      store_healthy_.store(false);
      spdlog::warn("store unreachable ({} pings failed, last: {}): giving the "
                   "service addresses away",
                   fails, std::string(s.message()));
      AgentHealthy(this->healthy());
    }
  }
}

absl::StatusOr<nlohmann::json> ServerAgent::StatusJson(absl::Duration timeout) {
  if (!running()) {
    return absl::UnavailableError("the take-over agent is not running");
  }
  absl::StatusOr<nlohmann::json> status = AgentStatus(timeout);
  if (!status.ok()) return status.status();
  nlohmann::json j = *std::move(status);
  const std::vector<FenceSlot> fences = fences_.Snapshot();
  nlohmann::json all = nlohmann::json::array();
  for (const FenceSlot& f : fences) all.push_back(FenceJson(f));
  j["fences"] = all;
  if (j.contains("slots") && j["slots"].is_array()) {
    for (nlohmann::json& slot : j["slots"]) {
      if (!slot.contains("slot")) continue;
      const uint64_t n = slot["slot"].get<uint64_t>();
      nlohmann::json fence = {{"state", "none"}, {"epoch", 0}, {"version", 0}};
      for (const FenceSlot& f : fences) {
        if (f.slot == n) {
          fence = FenceJson(f);
          fence.erase("slot");
          fence.erase("address");
        }
      }
      slot["fence"] = fence;
    }
  }
  const FenceCounters c = fences_.Counters();
  j["server"] = {{"fenced_off", c.deposed},
                 {"not_ready", c.not_ready},
                 {"fences_established", c.established},
                 {"fence_refused", c.establish_refused},
                 {"fence_errors", c.establish_errors},
                 {"store_healthy", store_healthy_.load()},
                 {"store_pings_failed", pings_failed_.load()}};
  return j;
}

absl::Status ServerAgent::Drain(std::optional<uint32_t> slot, bool drain) {
  if (!running()) {
    return absl::UnavailableError("the take-over agent is not running");
  }
  if (slot && *slot >= slot_count()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "no slot ", *slot, " (there are ", slot_count(), ")"));
  }
  if (absl::Status s =
          AgentDrain(slot ? *slot : takeover::TakeoverDaemon::kAllSlots, drain);
      !s.ok()) {
    return s;
  }
  spdlog::info("operator {} of {}", drain ? "drain" : "undo drain",
               slot ? absl::StrCat("slot ", *slot) : std::string("every slot"));
  return absl::OkStatus();
}

absl::Status ServerAgent::RegisterAdminRoutes(AdminRouter& router) {
  absl::Status s = router.Add(
      "GET", "/baton/status", [this](const AdminRequest&) {
        absl::StatusOr<nlohmann::json> j = StatusJson();
        if (!j.ok()) {
          return AdminResponse::Error(
              j.status().code() == absl::StatusCode::kUnavailable ? 503 : 500,
              absl::AsciiStrToLower(absl::StatusCodeToString(j.status().code())),
              std::string(j.status().message()));
        }
        return AdminResponse::Json(200, DumpJson(*j));
      });
  if (!s.ok()) return s;
  return router.Add(
      "POST", "/baton/drain", [this](const AdminRequest& r) {
        std::optional<uint32_t> slot;
        if (auto it = r.query.find("slot"); it != r.query.end()) {
          uint32_t n = 0;
          if (!absl::SimpleAtoi(it->second, &n)) {
            return AdminResponse::Error(400, "invalid_argument",
                                        "slot must be a slot number");
          }
          slot = n;
        }
        bool drain = true;
        if (auto it = r.query.find("undo"); it != r.query.end()) {
          drain = !(it->second == "1" || it->second == "true" ||
                    it->second.empty());
        }
        if (absl::Status d = Drain(slot, drain); !d.ok()) {
          return AdminResponse::Error(
              d.code() == absl::StatusCode::kInvalidArgument ? 400 : 503,
              absl::AsciiStrToLower(absl::StatusCodeToString(d.code())),
              std::string(d.message()));
        }
        nlohmann::json slots = nlohmann::json::array();
        for (uint32_t i = 0; i < slot_count(); ++i) {
          if (!slot || *slot == i) slots.push_back(i);
        }
        nlohmann::json j = {{"slots", slots}, {"undo", !drain}};
        return AdminResponse::Json(200, DumpJson(j));
      });
}

// --- EmbeddedAgent: the daemon on a thread of the server ----------------------

EmbeddedAgent::EmbeddedAgent(EmbeddedAgentConfig config)
    : ServerAgent(std::move(config)) {}

absl::StatusOr<std::unique_ptr<EmbeddedAgent>> EmbeddedAgent::Create(
    EmbeddedAgentConfig config) {
  std::unique_ptr<EmbeddedAgent> agent(new EmbeddedAgent(std::move(config)));
  absl::StatusOr<std::unique_ptr<takeover::TakeoverDaemon>> daemon =
      takeover::TakeoverDaemon::Create(agent->io_,
                                       takeover::SteadyClock::Get(),
                                       agent->config_.daemon);
  if (!daemon.ok()) return daemon.status();
  agent->daemon_ = *std::move(daemon);
  EmbeddedAgent* raw = agent.get();
  agent->daemon_->SetSlotListener(
      [raw](const takeover::SlotEvent& e) { raw->OnSlotEvent(e); });
  agent->daemon_->SetReleaseGate(
      [raw](const takeover::SlotEvent& e, std::function<void()> done) {
        raw->OnReleasing(e.address, std::move(done));
      });
  return agent;
}

EmbeddedAgent::~EmbeddedAgent() { Shutdown(); }

absl::Status EmbeddedAgent::Start(storage::StableStore& store) {
  if (started_) return absl::OkStatus();
  // Nothing runs on io_ yet, so the daemon may be started from here.
  if (absl::Status s = daemon_->Start(); !s.ok()) return s;
  started_ = true;
  work_.emplace(io_.get_executor());
  io_thread_ = std::thread([this] {
    // The daemon's `nice` (default -10) for the agent's thread only: a
    // holder starved of CPU past its lease loses its addresses, while the
    // request threads keep the server's own priority. Linux nice is per
    // thread.
    if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)),
                      config_.daemon.nice) != 0) {
      spdlog::warn("take-over agent: cannot set nice {} on its thread: {}",
                   config_.daemon.nice, std::strerror(errno));
    }
    io_.run();
  });
  StartLoops(store);
  spdlog::info("take-over agent started: node {}, {} service address(es), "
               "in-process (takeover_mode thread)",
               config_.daemon.node_id, slot_count());
  return absl::OkStatus();
}

void EmbeddedAgent::Shutdown() {
  if (!started_ || shut_down_) return;
  shut_down_ = true;
  auto done = std::make_shared<absl::Notification>();
  boost::asio::post(io_, [this, done] {
    daemon_->Shutdown([done] { done->Notify(); });
  });
  if (!done->WaitForNotificationWithTimeout(absl::Seconds(10))) {
    spdlog::error("take-over agent: hand-over did not finish within 10 s");
  } else {
    spdlog::info("take-over agent: addresses released");
  }
  StopLoops();
  work_.reset();
  io_.stop();
  io_thread_.join();
}

void EmbeddedAgent::AgentHealthy(bool healthy) { daemon_->SetHealthy(healthy); }

absl::Status EmbeddedAgent::AgentDrain(uint32_t slot, bool drain) {
  daemon_->DrainSlot(slot, drain);
  return absl::OkStatus();
}

absl::StatusOr<nlohmann::json> EmbeddedAgent::AgentStatus(
    absl::Duration timeout) {
  struct Pending {
    nlohmann::json status;
    absl::Notification done;
  };
  auto pending = std::make_shared<Pending>();
  daemon_->GetStatusAsync([pending](nlohmann::json j) {
    pending->status = std::move(j);
    pending->done.Notify();
  });
  if (!pending->done.WaitForNotificationWithTimeout(timeout)) {
    return absl::UnavailableError("the take-over agent did not answer");
  }
  return std::move(pending->status);
}

// --- AgentSupervisor: the daemon in a supervised child process ----------------

absl::StatusOr<std::string> FindTakeoverBinary() {
  std::error_code ec;
  const std::filesystem::path self =
      std::filesystem::read_symlink("/proc/self/exe", ec);
  std::vector<std::filesystem::path> candidates;
  if (!ec) {
    candidates.push_back(self.parent_path() / "baton-takeoverd");
    // The build tree: samples/kvservice/baton-kvserver beside
    // takeover/daemon/baton-takeoverd.
    candidates.push_back(self.parent_path() / ".." / ".." / "takeover" /
                         "daemon" / "baton-takeoverd");
  }
#ifdef BATON_INSTALL_BINDIR
  // Where `cmake --install` put baton (a service built against the
  // installed package lives elsewhere).
  candidates.push_back(std::filesystem::path(BATON_INSTALL_BINDIR) /
                       "baton-takeoverd");
#endif
  if (const char* path = std::getenv("PATH")) {
    for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
      candidates.push_back(std::filesystem::path(std::string(dir)) /
                           "baton-takeoverd");
    }
  }
  for (const std::filesystem::path& p : candidates) {
    if (::access(p.c_str(), X_OK) == 0) {
      return std::filesystem::weakly_canonical(p, ec).string();
    }
  }
  return absl::NotFoundError(
      "no baton-takeoverd beside this binary, in its build tree, in baton's "
      "install prefix or on PATH (set takeover_binary, or takeover_mode: "
      "thread)");
}

AgentSupervisor::AgentSupervisor(EmbeddedAgentConfig config,
                                 AgentSupervisorOptions options)
    : ServerAgent(std::move(config)), options_(std::move(options)) {
  drained_.assign(slot_count(), false);
}

absl::StatusOr<std::unique_ptr<AgentSupervisor>> AgentSupervisor::Create(
    EmbeddedAgentConfig config, AgentSupervisorOptions options) {
  if (absl::Status s = takeover::TakeoverDaemon::Validate(
          config.daemon, takeover::SteadyClock::Get());
      !s.ok()) {
    return s;
  }
  if (options.binary.empty()) {
    absl::StatusOr<std::string> found = FindTakeoverBinary();
    if (!found.ok()) return found.status();
    options.binary = *found;
  } else if (::access(options.binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat(
        "takeover_binary ", options.binary, " is not executable: ",
        std::strerror(errno)));
  }
  return std::unique_ptr<AgentSupervisor>(
      new AgentSupervisor(std::move(config), std::move(options)));
}

AgentSupervisor::~AgentSupervisor() { Shutdown(); }

absl::Status AgentSupervisor::Spawn() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return absl::UnavailableError(
        absl::StrCat("socketpair: ", std::strerror(errno)));
  }
  // The child's end becomes its fd 3 (dup2 clears close-on-exec); the
  // child closes every other descriptor it inherited.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, sv[1], 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, deflt;
  sigemptyset(&none);
  sigemptyset(&deflt);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP}) sigaddset(&deflt, sig);
  // The server blocks SIGINT/SIGTERM for sigwait; the child wants them.
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &deflt);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<std::string> args = {options_.binary, "--parent-fd", "3"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, options_.binary.c_str(), &actions, &attr,
                               argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(sv[1]);
  if (rc != 0) {
    ::close(sv[0]);
    return absl::UnavailableError(absl::StrCat(
        "cannot start ", options_.binary, ": ", std::strerror(rc)));
  }
  child_pid_ = pid;
  starts_.fetch_add(1);
  input_.clear();
  child_started_ = false;
  child_error_ = absl::OkStatus();
  {
    absl::MutexLock lock(&mu_);
    fd_ = sv[0];
    link_up_ = true;
  }
  SendLine(agent_link::Config{agent_link::kVersion, config_.yaml});
  SendLine(agent_link::Health{healthy()});
  std::vector<bool> drained;
  {
    absl::MutexLock lock(&mu_);
    drained = drained_;
  }
  for (uint32_t i = 0; i < drained.size(); ++i) {
    if (drained[i]) SendLine(agent_link::Drain{i, true});
  }
  return absl::OkStatus();
}

bool AgentSupervisor::SendLine(const agent_link::ServerMessage& message) {
  const std::string line = agent_link::Encode(message);
  absl::MutexLock lock(&mu_);
  if (!link_up_) return false;
  size_t off = 0;
  while (off < line.size()) {
    // Never blocks a request thread on a stopped child: the socket buffer
    // holds far more than the few lines in flight.
    const ssize_t n = ::send(fd_, line.data() + off, line.size() - off,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      spdlog::warn("take-over agent: cannot write to the agent process: {}",
                   std::strerror(errno));
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

absl::Status AgentSupervisor::Start(storage::StableStore& store) {
  if (started_) return absl::OkStatus();
  if (absl::Status s = Spawn(); !s.ok()) return s;
  StartLoops(store);
  // Wait for the daemon to start: a child that cannot bind or reach
  // netlink, or does not understand --parent-fd, fails the server's start as
  // the in-process agent would.
  Clock& clock = RealClock();
  const absl::Time deadline = clock.Now() + absl::Seconds(10);
  bool ok = true;
  while (ok && !child_started_ && child_error_.ok() && clock.Now() < deadline) {
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, 100);
    if (r > 0) ok = ReadLines(fd_);
  }
  if (!child_started_) {
    const int pid = child_pid_.load();
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    child_pid_ = 0;
    {
      absl::MutexLock lock(&mu_);
      link_up_ = false;
      ::close(fd_);
      fd_ = -1;
    }
    ReleaseAll();
    StopLoops();
    if (!child_error_.ok()) return child_error_;
    return absl::UnavailableError(absl::StrCat(
        "the agent process (", options_.binary, " --parent-fd 3) ",
        ok ? "did not start within 10 s"
           : absl::StrCat("exited (status ", WIFEXITED(status)
                                                ? WEXITSTATUS(status)
                                                : 128 + WTERMSIG(status),
                          ") before its daemon started; its log says why")));
  }
  started_ = true;
  supervisor_thread_ = std::thread([this] { SupervisorLoop(); });
  spdlog::info("take-over agent started: node {}, {} service address(es), "
               "in process {} ({} --parent-fd 3)",
               config_.daemon.node_id, slot_count(), child_pid_.load(),
               options_.binary);
  return absl::OkStatus();
}

void AgentSupervisor::HandleLine(const std::string& line) {
  absl::StatusOr<agent_link::AgentMessage> m = agent_link::DecodeAgentMessage(line);
  if (!m.ok()) {
    // An unknown event is a newer agent's; anything else is a broken one.
    spdlog::log(m.status().code() == absl::StatusCode::kUnimplemented ? spdlog::level::debug
                                                                      : spdlog::level::warn,
                "take-over agent: line from the agent process ignored: {}",
                m.status().message());
    return;
  }
  std::visit(
      agent_link::Overloaded{
          [this](const agent_link::Started& e) {
            child_error_ = agent_link::CheckVersion(
                e.version, absl::StrCat("the agent process ", options_.binary));
            if (!child_error_.ok()) {
              spdlog::error("take-over agent: {}", child_error_.message());
              return;
            }
            child_started_ = true;
          },
          [this](const agent_link::SlotChange& e) {
            OnSlotEvent(takeover::SlotEvent{e.slot, e.address, e.held, e.epoch});
          },
          [this](const agent_link::Releasing& e) {
            OnReleasing(e.address,
                        [this, id = e.id] { SendLine(agent_link::Closed{id}); });
          },
          [this](agent_link::StatusReply& e) {
            std::shared_ptr<PendingStatus> p;
            {
              absl::MutexLock lock(&mu_);
              for (auto it = pending_.begin(); it != pending_.end(); ++it) {
                if (it->first == e.id) {
                  p = it->second;
                  pending_.erase(it);
                  break;
                }
              }
            }
            if (p) {
              p->status = std::move(e.status);
              p->done.Notify();
            }
          },
      },
      *m);
}

bool AgentSupervisor::ReadLines(int fd) {
  char chunk[4096];
  const ssize_t n = ::read(fd, chunk, sizeof chunk);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) return false;
  input_.append(chunk, static_cast<size_t>(n));
  size_t nl;
  while ((nl = input_.find('\n')) != std::string::npos) {
    HandleLine(input_.substr(0, nl));
    input_.erase(0, nl + 1);
    // An agent of another protocol version: nothing else it says is understood.
    if (!child_error_.ok()) return false;
  }
  if (input_.size() > agent_link::kMaxLineBytes) {
    spdlog::error("take-over agent: a line from the agent process longer than {} bytes: "
                  "ending the link", agent_link::kMaxLineBytes);
    return false;
  }
  return true;
}

void AgentSupervisor::RunChild() {
  const int fd = [this] {
    absl::MutexLock lock(&mu_);
    return fd_;
  }();
  const int pid = child_pid_.load();
  Clock& clock = RealClock();
  absl::Time kill_at = absl::InfiniteFuture();
  bool asked_shutdown = false;
  for (;;) {
    bool stopping = false;
    {
      absl::MutexLock lock(&mu_);
      stopping = stopping_;
    }
    if (stopping && !asked_shutdown) {
      // The child hands over, then exits; its EOF ends this loop.
      asked_shutdown = true;
      SendLine(agent_link::Shutdown{});
      kill_at = clock.Now() + absl::Seconds(10);
    }
    const absl::Time now = clock.Now();
    if (now >= kill_at) {
      spdlog::error("take-over agent process {} did not hand over within "
                    "10 s: SIGKILL", pid);
      ::kill(pid, SIGKILL);
      break;
    }
    // (The keepalive comes from the liveness loop, after each probe of the
    // server's event loop that passed.)
    const int wait_ms = static_cast<int>(std::clamp<int64_t>(
        absl::ToInt64Milliseconds(kill_at - clock.Now()) + 1, 1, 100));
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, wait_ms);
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    if (!ReadLines(fd)) break;  // EOF: the child exited (or is handing over)
  }
  // The link is gone: nothing this server serves is backed by an agent now.
  ReleaseAll();
  std::vector<std::pair<uint64_t, std::shared_ptr<PendingStatus>>> pending;
  {
    absl::MutexLock lock(&mu_);
    link_up_ = false;
    ::close(fd_);
    fd_ = -1;
    pending.swap(pending_);
  }
  for (auto& [id, p] : pending) p->done.Notify();  // answered empty
  int status = 0;
  // The child exits right after its hand-over (a grace of one heartbeat);
  // if it closed the link but lingers, it is ended.
  pid_t w = 0;
  for (int i = 0; i < 200; ++i) {
    w = ::waitpid(pid, &status, WNOHANG);
    if (w != 0) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  if (w == 0) {
    spdlog::warn("take-over agent process {} closed the link but did not "
                 "exit within 2 s: SIGKILL", pid);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  child_pid_ = 0;
  if (WIFSIGNALED(status)) {
    spdlog::log(asked_shutdown ? spdlog::level::info : spdlog::level::warn,
                "take-over agent process {} killed by signal {}: every slot "
                "marked released", pid, WTERMSIG(status));
  } else {
    spdlog::log(asked_shutdown ? spdlog::level::info : spdlog::level::warn,
                "take-over agent process {} exited with status {}{}", pid,
                WEXITSTATUS(status),
                asked_shutdown ? "" : ": every slot marked released");
  }
}

void AgentSupervisor::SupervisorLoop() {
  Clock& clock = RealClock();
  absl::Duration backoff = options_.restart_backoff;
  for (;;) {
    const absl::Time born = clock.Now();
    RunChild();  // the first child was spawned by Start
    if (clock.Now() - born >= absl::Seconds(30)) {
      backoff = options_.restart_backoff;
    }
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
        spdlog::warn("take-over agent: restarting the agent process in {}",
                     absl::FormatDuration(backoff));
        // Real time: a restart pause, not a protocol decision.
        wake_.WaitWithTimeout(&mu_, backoff);
        if (stopping_) return;
      }
      backoff = std::min(backoff * 2, options_.max_restart_backoff);
      absl::Status s = Spawn();
      if (s.ok()) break;
      spdlog::error("take-over agent: {}", std::string(s.message()));
    }
    spdlog::info("take-over agent: agent process {} started (start #{})",
                 child_pid_.load(), starts_.load());
  }
}

void AgentSupervisor::Shutdown() {
  if (!started_ || shut_down_) return;
  shut_down_ = true;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    wake_.SignalAll();
  }
  supervisor_thread_.join();
  spdlog::info("take-over agent: addresses released");
  StopLoops();
}

void AgentSupervisor::AgentHealthy(bool healthy) {
  SendLine(agent_link::Health{healthy});
}

void AgentSupervisor::AgentKeepalive() {
  // The child hands every address over after health_check.liveness without
  // a line: this server stopped or hung.
  SendLine(agent_link::Health{healthy()});
}

absl::Status AgentSupervisor::AgentDrain(uint32_t slot, bool drain) {
  {
    absl::MutexLock lock(&mu_);
    for (uint32_t i = 0; i < drained_.size(); ++i) {
      if (slot == takeover::TakeoverDaemon::kAllSlots || slot == i) {
        drained_[i] = drain;
      }
    }
  }
  agent_link::Drain message;
  if (slot != takeover::TakeoverDaemon::kAllSlots) message.slot = slot;
  message.drain = drain;
  if (!SendLine(message)) {
    return absl::UnavailableError(
        "the take-over agent process is not running (restarting); the "
        "drain is applied when it is back");
  }
  return absl::OkStatus();
}

absl::StatusOr<nlohmann::json> AgentSupervisor::AgentStatus(
    absl::Duration timeout) {
  auto p = std::make_shared<PendingStatus>();
  uint64_t id = 0;
  {
    absl::MutexLock lock(&mu_);
    id = next_id_++;
    pending_.emplace_back(id, p);
  }
  if (!SendLine(agent_link::StatusRequest{id}) ||
      !p->done.WaitForNotificationWithTimeout(timeout) || p->status.is_null()) {
    absl::MutexLock lock(&mu_);
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if (it->first == id) {
        pending_.erase(it);
        break;
      }
    }
    return absl::UnavailableError(
        "the take-over agent process did not answer (restarting?)");
  }
  nlohmann::json j = std::move(p->status);
  j["agent"] = {{"mode", "process"},
                {"pid", child_pid_.load()},
                {"starts", starts_.load()}};
  return j;
}

}  // namespace baton::framework

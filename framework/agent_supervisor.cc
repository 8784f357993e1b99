// AgentSupervisor: the take-over daemon in a supervised child process,
// `baton-takeoverd --parent-fd 3` (`takeover_mode: process`,
// framework/embedded_agent.h); its counterpart in the child is
// takeover/daemon/parent_link.cc, the messages between them
// takeover/daemon/agent_link_protocol.h.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <utility>
#include <variant>
#include <vector>

extern char** environ;

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "base/errno_status.h"
#include "framework/absl_compat.h"
#include "framework/clock.h"
#include "framework/embedded_agent.h"
#include "spdlog/spdlog.h"
#include "takeover/daemon/agent_link_protocol.h"
#include "takeover/daemon/daemon.h"
#include "takeover/drivers/clock.h"

namespace baton::framework {

namespace agent_link = takeover::agent_link;

struct AgentSupervisor::PendingStatus {
  nlohmann::json status;  // null until answered (or the link ended)
  absl::Notification done;
};

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
    return baton::ErrnoToStatus(errno, "socketpair");
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
    return baton::ErrnoToStatus(rc, absl::StrCat("cannot start ", options_.binary));
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
  SendLine(agent_link::Encode(agent_link::Config{agent_link::kVersion, config_.yaml}));
  SendLine(agent_link::Encode(agent_link::Health{healthy()}));
  std::vector<bool> drained;
  {
    absl::MutexLock lock(&mu_);
    drained = drained_;
  }
  for (uint32_t i = 0; i < drained.size(); ++i) {
    if (drained[i]) SendLine(agent_link::Encode(agent_link::Drain{i, true}));
  }
  return absl::OkStatus();
}

bool AgentSupervisor::SendLine(const std::string& line) {
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
            OnReleasing(e.address, [this, id = e.id] {
              SendLine(agent_link::Encode(agent_link::Closed{id}));
            });
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
      SendLine(agent_link::Encode(agent_link::Shutdown{}));
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
  SendLine(agent_link::Encode(agent_link::Health{healthy}));
}

void AgentSupervisor::AgentKeepalive() {
  // The child hands every address over after health_check.liveness without
  // a line: this server stopped or hung.
  SendLine(agent_link::Encode(agent_link::Health{healthy()}));
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
  if (!SendLine(agent_link::Encode(message))) {
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
  if (!SendLine(agent_link::Encode(agent_link::StatusRequest{id})) ||
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

// AgentSupervisor: the take-over daemon in a supervised child process,
// `baton-takeoverd --parent-fd 3` (`takeover_mode: process`,
// framework/embedded_agent.h). What is the framework's lives here: the
// messages' meaning for this server (fences, the release gate, status
// replies, the start), the binary's lookup, the operator drains replayed to
// a new child. The child's process and link are
// takeover/daemon/agent_process.h (beside its counterpart in the child,
// parent_link.h; the messages are agent_link_protocol.h's), when to restart
// or kill it takeover/daemon/supervisor_schedule.h. All of it runs on one
// io_context thread (Runtime); request threads only send, under mu_.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "framework/absl_compat.h"
#include "framework/clock.h"
#include "framework/embedded_agent.h"
#include "spdlog/spdlog.h"
#include "takeover/daemon/agent_link_protocol.h"
#include "takeover/daemon/agent_process.h"
#include "takeover/daemon/daemon.h"
#include "takeover/daemon/supervisor_schedule.h"
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

// Everything below runs on io's thread, except where a comment says so.
struct AgentSupervisor::Runtime {
  Runtime(AgentSupervisor& owner, Clock& clock)
      : s(owner),
        schedule(clock, takeover::SupervisorScheduleOptions{
                            .restart_backoff = owner.options_.restart_backoff,
                            .max_restart_backoff = owner.options_.max_restart_backoff}) {}

  absl::Status SpawnChild();
  void OnMessage(agent_link::AgentMessage& message);
  void OnLinkEnd(const std::string& why);
  void OnExit(int wait_status);
  // The child exited and its link is closed: end the start, restart it, or
  // end the supervision.
  void OnChildGone();
  void ArmRestart(takeover::SupervisorSchedule::Deadline at);
  // SIGKILL at `at` unless the child has exited by then.
  void ArmKillTimer(takeover::SupervisorSchedule::Deadline at, spdlog::level::level_enum level,
                    std::string why);
  void OnShutdownRequested();
  void FinishStart(absl::Status status);

  AgentSupervisor& s;
  boost::asio::io_context io;  // first: destroyed after the timers
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work =
      boost::asio::make_work_guard(io);
  std::thread thread;
  takeover::SupervisorSchedule schedule;
  boost::asio::steady_timer start_timer{io}, restart_timer{io}, kill_timer{io};
  std::shared_ptr<takeover::AgentProcess> child;  // the io thread's copy of s.child_
  bool link_ended = false;
  bool exited = false;
  int wait_status = 0;
  bool asked_shutdown = false;
  // Start(): until the first child said started (or failed).
  bool starting = true;
  absl::Status start_error;   // why the first child is being ended
  absl::Status start_status;  // written before start_done is notified
  absl::Notification start_done;
};

absl::Status AgentSupervisor::Runtime::SpawnChild() {
  absl::StatusOr<std::shared_ptr<takeover::AgentProcess>> spawned =
      takeover::AgentProcess::Spawn(
          io, s.options_.binary,
          {.on_message = [this](agent_link::AgentMessage& m) { OnMessage(m); },
           .on_link_end = [this](const std::string& why) { OnLinkEnd(why); },
           .on_exit = [this](int status) { OnExit(status); }});
  if (!spawned.ok()) return spawned.status();
  child = *std::move(spawned);
  schedule.ChildSpawned();
  link_ended = exited = asked_shutdown = false;
  wait_status = 0;
  s.child_pid_ = child->pid();
  s.starts_.fetch_add(1);
  std::vector<bool> drained;
  {
    absl::MutexLock lock(&s.mu_);
    s.child_ = child;
    drained = s.drained_;
  }
  s.SendLine(agent_link::Encode(agent_link::Config{agent_link::kVersion, s.config_.yaml}));
  s.SendLine(agent_link::Encode(agent_link::Health{s.healthy()}));
  for (uint32_t i = 0; i < drained.size(); ++i) {
    if (drained[i]) s.SendLine(agent_link::Encode(agent_link::Drain{i, true}));
  }
  return absl::OkStatus();
}

void AgentSupervisor::Runtime::OnMessage(agent_link::AgentMessage& message) {
  std::visit(
      agent_link::Overloaded{
          [this](const agent_link::Started& e) {
            absl::Status version = agent_link::CheckVersion(
                e.version, absl::StrCat("the agent process ", s.options_.binary));
            if (!version.ok()) {
              // Nothing else it says is understood.
              spdlog::error("take-over agent: {}", version.message());
              child->CloseLink(std::string(version.message()));
              if (starting) {
                start_error = version;
                child->Kill();
              }
              return;
            }
            // (Too late if the start timed out: it is being killed.)
            if (starting && start_error.ok()) FinishStart(absl::OkStatus());
          },
          [this](const agent_link::SlotChange& e) {
            s.OnSlotEvent(takeover::SlotEvent{e.slot, e.address, e.held, e.epoch});
          },
          [this](const agent_link::Releasing& e) {
            s.OnReleasing(e.address, [owner = &s, id = e.id] {
              owner->SendLine(agent_link::Encode(agent_link::Closed{id}));
            });
          },
          [this](agent_link::StatusReply& e) {
            std::shared_ptr<PendingStatus> p;
            {
              absl::MutexLock lock(&s.mu_);
              for (auto it = s.pending_.begin(); it != s.pending_.end(); ++it) {
                if (it->first == e.id) {
                  p = it->second;
                  s.pending_.erase(it);
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
      message);
}

void AgentSupervisor::Runtime::OnLinkEnd(const std::string& why) {
  link_ended = true;
  spdlog::log(asked_shutdown ? spdlog::level::info : spdlog::level::warn,
              "take-over agent process {}: {}", child->pid(), why);
  // The link is gone: nothing this server serves is backed by an agent now.
  s.ReleaseAll();
  std::vector<std::pair<uint64_t, std::shared_ptr<PendingStatus>>> pending;
  {
    absl::MutexLock lock(&s.mu_);
    pending.swap(s.pending_);
  }
  for (auto& [id, p] : pending) p->done.Notify();  // answered empty
  if (exited) {
    OnChildGone();
    return;
  }
  // The child exits right after its hand-over (a grace of one heartbeat);
  // if it closed the link but lingers, it is ended.
  ArmKillTimer(schedule.LingerDeadline(), spdlog::level::warn,
               absl::StrCat("closed the link but did not exit within ",
                            absl::FormatDuration(schedule.options().linger_grace)));
}

void AgentSupervisor::Runtime::OnExit(int status) {
  exited = true;
  wait_status = status;
  if (link_ended) {
    OnChildGone();
    return;
  }
  // Nothing backs the slots now, whatever else holds the child's end of the
  // link open (a process it started): the link is closed at once, not at its
  // EOF, and what is left in it is not read (a slot it still reported held
  // would be served without an agent).
  child->CloseLink("the agent process exited");
}

void AgentSupervisor::Runtime::ArmKillTimer(takeover::SupervisorSchedule::Deadline at,
                                            spdlog::level::level_enum level, std::string why) {
  kill_timer.expires_after(schedule.Until(at));
  kill_timer.async_wait([this, level, why = std::move(why),
                         target = child](const boost::system::error_code& ec) {
    if (ec || target != child) return;  // re-armed, cancelled, or another child
    if (exited) return;
    spdlog::log(level, "take-over agent process {} {}: SIGKILL", child->pid(), why);
    child->Kill();
  });
}

void AgentSupervisor::Runtime::OnChildGone() {
  kill_timer.cancel();
  const int pid = child->pid();
  const bool quiet = asked_shutdown;
  const char* released = quiet || starting ? "" : ": every slot marked released";
  if (WIFSIGNALED(wait_status)) {
    spdlog::log(quiet ? spdlog::level::info : spdlog::level::warn,
                "take-over agent process {} killed by signal {}{}", pid, WTERMSIG(wait_status),
                released);
  } else {
    spdlog::log(quiet ? spdlog::level::info : spdlog::level::warn,
                "take-over agent process {} exited with status {}{}", pid,
                WEXITSTATUS(wait_status), released);
  }
  {
    absl::MutexLock lock(&s.mu_);
    s.child_.reset();
  }
  child.reset();
  s.child_pid_ = 0;
  if (starting) {
    if (start_error.ok()) {
      start_error = absl::UnavailableError(absl::StrCat(
          "the agent process (", s.options_.binary, " --parent-fd 3) exited (status ",
          WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status),
          ") before its daemon started; its log says why"));
    }
    FinishStart(start_error);
    return;
  }
  bool stopping = false;
  {
    absl::MutexLock lock(&s.mu_);
    stopping = s.stopping_;
  }
  if (stopping) {
    io.stop();
    return;
  }
  ArmRestart(schedule.ChildEnded());
}

void AgentSupervisor::Runtime::ArmRestart(takeover::SupervisorSchedule::Deadline at) {
  spdlog::warn("take-over agent: restarting the agent process in {}",
               absl::FormatDuration(
                   absl::Ceil(absl::FromChrono(schedule.Until(at)), absl::Milliseconds(1))));
  restart_timer.expires_after(schedule.Until(at));
  restart_timer.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;  // Shutdown: OnShutdownRequested ends the loop
    {
      absl::MutexLock lock(&s.mu_);
      if (s.stopping_) return;  // the Shutdown posted meanwhile ends the loop
    }
    if (absl::Status st = SpawnChild(); !st.ok()) {
      spdlog::error("take-over agent: {}", st.message());
      ArmRestart(schedule.SpawnFailed());
      return;
    }
    spdlog::info("take-over agent: agent process {} started (start #{})", child->pid(),
                 s.starts_.load());
  });
}

void AgentSupervisor::Runtime::OnShutdownRequested() {
  restart_timer.cancel();
  if (!child) {  // between two children
    io.stop();
    return;
  }
  asked_shutdown = true;
  if (link_ended) return;  // lingering: the kill timer runs already
  // The child hands over, then exits; the supervision ends when it is gone.
  s.SendLine(agent_link::Encode(agent_link::Shutdown{}));
  ArmKillTimer(schedule.ShutdownKillDeadline(), spdlog::level::err,
               absl::StrCat("did not hand over within ",
                            absl::FormatDuration(schedule.options().shutdown_grace)));
}

void AgentSupervisor::Runtime::FinishStart(absl::Status status) {
  starting = false;
  start_timer.cancel();
  start_status = std::move(status);
  start_done.Notify();
}

AgentSupervisor::~AgentSupervisor() { Shutdown(); }

bool AgentSupervisor::SendLine(const std::string& line) {
  std::shared_ptr<takeover::AgentProcess> child;
  {
    absl::MutexLock lock(&mu_);
    child = child_;
  }
  return child != nullptr && child->Send(line);
}

absl::Status AgentSupervisor::Start(storage::StableStore& store) {
  if (started_) return absl::OkStatus();
  runtime_ = std::make_unique<Runtime>(*this, RealClock());
  Runtime& r = *runtime_;
  // Spawned before the io thread runs: its handlers run once it does.
  if (absl::Status s = r.SpawnChild(); !s.ok()) return s;
  StartLoops(store);
  // Wait for the daemon to start: a child that cannot bind or reach
  // netlink, or does not understand --parent-fd, fails the server's start as
  // the in-process agent would.
  r.start_timer.expires_after(r.schedule.Until(r.schedule.StartDeadline()));
  r.start_timer.async_wait([&r](const boost::system::error_code& ec) {
    if (ec || !r.starting || r.child == nullptr) return;
    r.start_error = absl::UnavailableError(absl::StrCat(
        "the agent process (", r.s.options_.binary, " --parent-fd 3) did not start within ",
        absl::FormatDuration(r.schedule.options().start_timeout)));
    r.child->Kill();
  });
  r.thread = std::thread([&r] { r.io.run(); });
  r.start_done.WaitForNotification();
  if (!r.start_status.ok()) {
    r.io.stop();
    r.thread.join();
    ReleaseAll();
    StopLoops();
    return r.start_status;
  }
  started_ = true;
  spdlog::info("take-over agent started: node {}, {} service address(es), "
               "in process {} ({} --parent-fd 3)",
               config_.daemon.node_id, slot_count(), child_pid_.load(),
               options_.binary);
  return absl::OkStatus();
}

void AgentSupervisor::Shutdown() {
  if (!started_ || shut_down_) return;
  shut_down_ = true;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  boost::asio::post(runtime_->io, [r = runtime_.get()] { r->OnShutdownRequested(); });
  runtime_->thread.join();
  {
    absl::MutexLock lock(&mu_);
    child_.reset();
  }
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

// baton-takeoverd: moves service IP addresses (one, or a pool) between hosts with baton's lease
// protocol.
//
//   baton-takeoverd --config /etc/baton/takeoverd.yaml      run (SIGTERM/SIGINT: hand over, exit)
//   baton-takeoverd --config FILE --check-config            validate the config and exit
//   baton-takeoverd status --socket PATH [--json]           print a running daemon's status
//   baton-takeoverd drain --socket PATH [--slot N] [--undo] hand addresses over (or take back)
//   baton-takeoverd --parent-fd N                           supervised by a server (parent_link.h):
//       the config arrives on fd N; the server's exit (EOF), silence for health_check.liveness
//       (the server's keepalives prove its event loop's progress) or its shutdown request (the
//       server first closes its connections on each address) hands every address over and
//       exits 0; also SIGTERM on the server's death (PR_SET_PDEATHSIG). health_check kind
//       external is allowed here.
//
// Exit status: 0 after a clean stop, 1 on a runtime error (e.g. bind or netlink failure),
// 2 on a bad command line or configuration (including an unusable key file, and
// `health_check: {kind: external}`, which only an embedding process can serve), 3 if `status` /
// `drain` finds no daemon, 4 if the daemon refused the drain request.
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <csignal>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"
#include "takeover/daemon/config.h"
#include "takeover/daemon/daemon.h"
#include "takeover/daemon/parent_link.h"
#include "takeover/daemon/status_socket.h"
#include "takeover/drivers/clock.h"

namespace {

// Real-time scheduling of this (the daemon's) thread, DaemonConfig::realtime_priority; a warning
// when not permitted (the daemon then runs at its nice value).
void ApplyRealtimePriority(int priority) {
  if (priority <= 0) return;
  sched_param param{};
  param.sched_priority = priority;
  if (sched_setscheduler(0, SCHED_RR | SCHED_RESET_ON_FORK, &param) != 0) {
    spdlog::warn("cannot run at real-time priority {} (SCHED_RR): {}; a busy host may make it miss "
                 "renewals", priority, std::strerror(errno));
  }
}

int RunStatus(const std::string& socket, bool json) {
  absl::StatusOr<nlohmann::json> s = baton::takeover::QueryStatus(socket);
  if (!s.ok()) {
    std::cerr << "baton-takeoverd status: " << s.status().message() << "\n";
    return 3;
  }
  if (json) {
    std::cout << s->dump(2) << "\n";
  } else {
    std::cout << baton::takeover::FormatStatus(*s);
  }
  return 0;
}

int RunDrain(const std::string& socket, std::optional<uint32_t> slot, bool undo, bool json) {
  absl::StatusOr<nlohmann::json> s = baton::takeover::RequestDrain(socket, slot, undo);
  if (!s.ok()) {
    std::cerr << "baton-takeoverd drain: " << s.status().message() << "\n";
    return s.status().code() == absl::StatusCode::kInvalidArgument ? 4 : 3;
  }
  if (json) {
    std::cout << s->dump(2) << "\n";
  } else {
    std::cout << (undo ? "undrained " : "drained ")
              << (slot ? "slot " + std::to_string(*slot) : std::string("every slot")) << "\n"
              << baton::takeover::FormatStatus(*s);
  }
  return 0;
}

int RunDaemon(const std::string& config_path, const std::string& log_level,
              const std::string& status_socket, const std::string& incarnation_file,
              bool check_only) {
  absl::StatusOr<baton::takeover::DaemonConfig> config =
      baton::takeover::LoadDaemonConfig(config_path);
  if (!config.ok()) {
    std::cerr << "baton-takeoverd: " << config.status().message() << "\n";
    return 2;
  }
  if (config->health_check.kind == baton::takeover::HealthCheckConfig::Kind::kExternal) {
    std::cerr << "baton-takeoverd: " << config_path
              << ": config: health_check.kind: external health is reported by a process that "
                 "embeds the agent (e.g. baton-kvserver); the standalone daemon needs none, "
                 "command or tcp\n";
    return 2;
  }
  if (!log_level.empty()) config->log_level = log_level;
  if (!status_socket.empty()) config->status_socket = status_socket;
  if (!incarnation_file.empty()) config->incarnation_file = incarnation_file;
  spdlog::set_level(spdlog::level::from_str(config->log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%f %^%l%$ [node " + std::to_string(config->node_id) + "] %v");

  const baton::takeover::Clock& clock = baton::takeover::SteadyClock::Get();
  if (check_only) {  // validates without writing any state (no incarnation, no socket)
    if (absl::Status s = baton::takeover::TakeoverDaemon::Validate(*config, clock); !s.ok()) {
      std::cerr << "baton-takeoverd: " << s.ToString() << "\n";
      return 2;
    }
    std::cout << "config ok\n";
    return 0;
  }
  // Ahead of ordinary work: a starved daemon misses renewals and loses its addresses. The daemon
  // is one thread (this one); Linux applies PRIO_PROCESS with who = 0 to the calling thread.
  if (setpriority(PRIO_PROCESS, 0, config->nice) != 0) {
    spdlog::warn("cannot set nice {}: {} (running at the inherited priority)", config->nice,
                 std::strerror(errno));
  }
  ApplyRealtimePriority(config->realtime_priority);
  boost::asio::io_context io;
  absl::StatusOr<std::unique_ptr<baton::takeover::TakeoverDaemon>> daemon =
      baton::takeover::TakeoverDaemon::Create(io, clock, *std::move(config));
  if (!daemon.ok()) {
    std::cerr << "baton-takeoverd: " << daemon.status().ToString() << "\n";
    // A bad configuration (also a key file that is missing, too short or world-readable, or a
    // corrupt or unreadable state file) is 2.
    const absl::StatusCode c = daemon.status().code();
    return c == absl::StatusCode::kInvalidArgument || c == absl::StatusCode::kNotFound ||
                   c == absl::StatusCode::kPermissionDenied || c == absl::StatusCode::kDataLoss
               ? 2
               : 1;
  }
  if (absl::Status s = (*daemon)->Start(); !s.ok()) {
    spdlog::error("start failed: {}", s.ToString());
    return 1;
  }
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  std::function<void()> wait_signal = [&] {
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      spdlog::info("signal {}", sig);
      (*daemon)->Shutdown([&] { io.stop(); });
      wait_signal();
    });
  };
  wait_signal();
  io.run();
  return 0;
}

// The ranges [lo, hi] of descriptors >= 3 to close so that only `a` and `b` (either may be -1)
// stay open beside 0-2.
std::vector<std::pair<unsigned, unsigned>> KeptDescriptorGaps(int a, int b) {
  std::vector<unsigned> keep;
  for (int fd : {a, b}) {
    if (fd >= 3) keep.push_back(static_cast<unsigned>(fd));
  }
  std::sort(keep.begin(), keep.end());
  std::vector<std::pair<unsigned, unsigned>> gaps;
  unsigned next = 3;
  for (unsigned k : keep) {
    if (k > next) gaps.emplace_back(next, k - 1);
    next = k + 1;
  }
  gaps.emplace_back(next, ~0U);
  return gaps;
}

// Supervised mode (--parent-fd): the agent of a server, in its own process.
int RunSupervised(int parent_fd, const std::string& log_level) {
  // The server's death also arrives as SIGTERM (a second line of defence beside EOF). Set before
  // anything else; if the server died before this, the link read below sees EOF.
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  // The server's process, to wait for its end before handing over (see server_gone below).
  const pid_t server_pid = ::getppid();
  const int server_pidfd =
      server_pid > 1 ? static_cast<int>(::syscall(SYS_pidfd_open, server_pid, 0)) : -1;
  // Only 0-2 and the link: descriptors the server left without close-on-exec (listening sockets,
  // store files) must not outlive it in this process.
  // (The server's pidfd, opened just above, is kept.)
  for (const auto& [lo, hi] : KeptDescriptorGaps(parent_fd, server_pidfd)) {
    ::close_range(lo, hi, 0);
  }
  absl::StatusOr<std::string> yaml =
      baton::takeover::ReadParentConfig(parent_fd, std::chrono::seconds(10));
  if (!yaml.ok()) {
    std::cerr << "baton-takeoverd: --parent-fd: " << yaml.status().message() << "\n";
    return yaml.status().code() == absl::StatusCode::kUnavailable ? 0 : 2;
  }
  absl::StatusOr<baton::takeover::DaemonConfig> config = baton::takeover::ParseDaemonConfig(*yaml);
  if (!config.ok()) {
    std::cerr << "baton-takeoverd: takeover." << config.status().message() << "\n";
    return 2;
  }
  // As the in-process agent: no health check of its own means the server's (external) one.
  if (config->health_check.kind == baton::takeover::HealthCheckConfig::Kind::kNone) {
    config->health_check.kind = baton::takeover::HealthCheckConfig::Kind::kExternal;
  }
  if (!log_level.empty()) config->log_level = log_level;
  spdlog::set_level(spdlog::level::from_str(config->log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%f %^%l%$ [agent " + std::to_string(config->node_id) +
                      " pid " + std::to_string(::getpid()) + "] %v");
  // The server sends a keepalive (every liveness / 6) only while its request event loop makes
  // progress; silence for health_check.liveness means it is stopped or hung, and its addresses
  // must go to a peer.
  const std::chrono::milliseconds watchdog = config->health_check.liveness;
  // ... unless the server only waits for a CPU (a busy host): then up to liveness_starved.
  const std::chrono::milliseconds watchdog_starved = config->health_check.liveness_starved;
  if (setpriority(PRIO_PROCESS, 0, config->nice) != 0) {
    spdlog::warn("cannot set nice {}: {} (running at the inherited priority)", config->nice,
                 std::strerror(errno));
  }
  ApplyRealtimePriority(config->realtime_priority);
  const baton::takeover::Clock& clock = baton::takeover::SteadyClock::Get();
  boost::asio::io_context io;
  absl::StatusOr<std::unique_ptr<baton::takeover::TakeoverDaemon>> daemon =
      baton::takeover::TakeoverDaemon::Create(io, clock, *std::move(config));
  if (!daemon.ok()) {
    std::cerr << "baton-takeoverd: " << daemon.status().ToString() << "\n";
    return 2;
  }
  bool shutting_down = false;
  // gate: the server is alive and closes its connections on each address first (a shutdown it
  // asked for); a dead or hung server has nothing to close.
  auto shutdown = [&](const std::string& why, bool gate) {
    if (shutting_down) return;
    shutting_down = true;
    spdlog::info("{}: handing the addresses over", why);
    (*daemon)->Shutdown([&] { io.stop(); }, gate);
  };
  // When the server dies, the first signs (SIGTERM from PR_SET_PDEATHSIG, which fires when the
  // thread that started this process exits; EOF on the link) can come before its last thread
  // has closed its client connections. Removing the address then would leave the kernel unable
  // to send those connections' FIN or RST (their source address is gone), and every client with
  // a request in flight would wait for its own timeout instead of retrying at once. So wait
  // until the server's process has ended (its pidfd turns readable), at most kServerExitWait,
  // without blocking the loop (leases keep being renewed meanwhile).
  constexpr std::chrono::milliseconds kServerExitWait{100};
  std::optional<boost::asio::posix::stream_descriptor> server_exit;
  boost::asio::steady_timer server_exit_timer(io);
  bool waiting_for_server = false;
  auto shutdown_after_server = [&](const std::string& why) {
    if (shutting_down || waiting_for_server) return;
    const int fd = server_pidfd >= 0 ? ::dup(server_pidfd) : -1;
    if (fd < 0) return shutdown(why, false);
    waiting_for_server = true;
    server_exit.emplace(io, fd);
    auto done = [&, why](const char* how) {
      if (shutting_down) return;
      server_exit_timer.cancel();
      boost::system::error_code ignored;
      server_exit->cancel(ignored);
      spdlog::info("the server's process {}", how);
      shutdown(why, false);
    };
    server_exit->async_wait(boost::asio::posix::descriptor_base::wait_read,
                            [done](const boost::system::error_code& ec) {
                              if (!ec) done("has ended");
                            });
    server_exit_timer.expires_after(kServerExitWait);
    server_exit_timer.async_wait([done](const boost::system::error_code& ec) {
      if (!ec) done("has not ended within 100 ms; going on");
    });
  };
  baton::takeover::ParentLink link(
      io, parent_fd, **daemon, watchdog,
      [&](const std::string& why, baton::takeover::LinkLoss loss) {
        if (loss == baton::takeover::LinkLoss::kServerExited) {
          shutdown_after_server(why);
        } else {
          shutdown(why, loss == baton::takeover::LinkLoss::kShutdownRequested);
        }
      });
  if (server_pid > 1) link.SetServerProcess(server_pid, watchdog_starved);
  (*daemon)->SetSlotListener(
      [&link](const baton::takeover::SlotEvent& e) { link.SendSlotEvent(e); });
  (*daemon)->SetReleaseGate(
      [&link](const baton::takeover::SlotEvent& e, std::function<void()> done) {
        link.SendReleasing(e, std::move(done));
      });
  if (absl::Status s = (*daemon)->Start(); !s.ok()) {
    spdlog::error("start failed: {}", s.ToString());
    return 1;
  }
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    // SIGTERM is how the server's death arrives first (PR_SET_PDEATHSIG).
    if (!ec) shutdown_after_server("signal " + std::to_string(sig));
  });
  link.Start();
  link.SendStarted();
  spdlog::info("supervised agent running (watchdog {} ms)", watchdog.count());
  io.run();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"baton-takeoverd: lease-based service IP take-over"};
  std::string config_path, log_level, status_socket, incarnation_file;
  bool check_only = false;
  app.add_option("-c,--config", config_path, "YAML configuration file");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error (overrides the config)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_option("--status-socket", status_socket, "unix socket for status (overrides the config)");
  app.add_option("--incarnation-file", incarnation_file, "transport incarnation state file (overrides the config)");
  app.add_flag("--check-config", check_only, "validate the configuration and exit");
  int parent_fd = -1;
  app.add_option("--parent-fd", parent_fd,
                 "run as a server's supervised agent on this socket (config arrives on it)")
      ->check(CLI::NonNegativeNumber);
  CLI::App* status = app.add_subcommand("status", "print the status of a running daemon");
  std::string socket = "/run/baton-takeoverd.sock";
  bool json = false;
  status->add_option("-s,--socket", socket, "the daemon's status socket")->capture_default_str();
  status->add_flag("--json", json, "print JSON");
  CLI::App* drain = app.add_subcommand(
      "drain", "hand a running daemon's addresses over to its peers (or take them back: --undo)");
  std::string drain_socket = "/run/baton-takeoverd.sock";
  int drain_slot = -1;
  bool undo = false, drain_json = false;
  drain->add_option("-s,--socket", drain_socket, "the daemon's status socket")->capture_default_str();
  drain->add_option("--slot", drain_slot, "only this slot (index into service_addresses); default: all")
      ->check(CLI::NonNegativeNumber);
  drain->add_flag("--undo", undo, "undo the drain: the node campaigns for the slot(s) again");
  drain->add_flag("--json", drain_json, "print the status after the request as JSON");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (status->parsed()) return RunStatus(socket, json);
  if (drain->parsed()) {
    std::optional<uint32_t> slot;
    if (drain_slot >= 0) slot = static_cast<uint32_t>(drain_slot);
    return RunDrain(drain_socket, slot, undo, drain_json);
  }
  if (parent_fd >= 0) return RunSupervised(parent_fd, log_level);
  if (config_path.empty()) {
    std::cerr << "baton-takeoverd: --config FILE is required\n" << app.help();
    return 2;
  }
  return RunDaemon(config_path, log_level, status_socket, incarnation_file, check_only);
}

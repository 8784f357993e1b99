// Periodic health check of the local service that baton-takeoverd fronts: a shell command (exit
// status 0 = healthy) or a TCP connect probe. After `fall` consecutive failures it reports
// "unhealthy" once; after `rise` consecutive successes it reports "healthy" once. The daemon drains
// its slot while unhealthy and campaigns again when healthy.
//
// The checker starts in the healthy state (it reports only transitions). Commands run through
// /bin/sh -c in a child process that is SIGKILLed if it outlives `timeout`; nothing blocks the
// io_context.
//
// Threading: belongs to one io_context; use from its thread.
#ifndef BATON_TAKEOVER_DAEMON_HEALTH_CHECK_H_
#define BATON_TAKEOVER_DAEMON_HEALTH_CHECK_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "absl/status/statusor.h"
#include "takeover/daemon/config.h"

namespace baton::takeover {

class HealthChecker {
 public:
  // Called on each transition (true = healthy).
  using Callback = std::function<void(bool healthy)>;
  HealthChecker(boost::asio::io_context& io, HealthCheckConfig config, Callback on_change);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Starts the periodic checks (no-op for Kind::kNone).
  void Start();
  // Stops checking; kills a running command.
  void Stop();
  bool healthy() const { return healthy_; }
  uint64_t checks() const { return checks_; }
  uint64_t failures() const { return failures_; }

 private:
  void Schedule();
  void RunOnce();
  void StartCommand();
  void PollCommand();
  void StartTcp();
  void Finish(bool ok);

  boost::asio::io_context& io_;
  HealthCheckConfig config_;
  Callback on_change_;
  boost::asio::steady_timer period_timer_;
  boost::asio::steady_timer check_timer_;  // command polling / tcp timeout
  std::unique_ptr<boost::asio::ip::tcp::socket> socket_;
  pid_t child_ = -1;
  std::chrono::steady_clock::duration child_waited_{};
  bool running_ = false;
  bool in_check_ = false;
  bool healthy_ = true;
  int consecutive_ok_ = 0;
  int consecutive_fail_ = 0;
  uint64_t checks_ = 0;
  uint64_t failures_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// ---- CPU starvation is not a hang (issue 14 item 8).
// A server proves its progress with keepalives every health_check.liveness / 6; silence for
// `liveness` means stopped or hung, and the addresses go to a peer. A server that is only starved
// of CPU (a busy host, a CPU-limited cgroup whose quota its neighbours spent) is silent too, but
// its threads are runnable: state R, and the kernel adds the time they waited for a CPU (CFS
// bandwidth throttling included) to their schedstat run_delay once they get one. A stopped server
// (SIGSTOP: state T) or a hung one (a deadlock, a call that never returns: state S) has no
// runnable thread and does not wait for a CPU. (A thread in D, waiting for a disk the host keeps
// busy, counts as runnable: a slow host, not a hang.) So a silence is excused, up to
// health_check.liveness_starved, while the server has a runnable thread or waited for a CPU at
// least kStarvedFraction of the silence. (A thread spinning in an endless loop is runnable too:
// such a hang is given up only at liveness_starved.)

// What the kernel says about a process's threads at one instant.
struct CpuWaitSample {
  // Time its threads spent runnable but not running, summed over /proc/PID/task/*/schedstat
  // (second field; a thread that exited takes its share with it).
  std::chrono::nanoseconds waited{0};
  // Threads in state R (running or waiting for a CPU) or D (waiting for the disk) other than
  // `exclude_tid`.
  int runnable = 0;
};
// Samples process `pid` (one read of stat and schedstat per thread); `exclude_tid` (0: none) is
// left out of `runnable` (the calling thread, which runs). kNotFound: no such process;
// kFailedPrecondition: it is stopped (a thread in state T or t: SIGSTOP, a tracer);
// kUnavailable: no schedstat (a kernel without CONFIG_SCHED_INFO).
[[nodiscard]] absl::StatusOr<CpuWaitSample> SampleCpuWait(pid_t pid, pid_t exclude_tid = 0);

// The judgement, fed with samples (pure; the caller reads the clock and /proc). Not thread-safe.
class StarvationExcuse {
 public:
  // A process that waited for a CPU at least this fraction of its silence is starved.
  static constexpr double kStarvedFraction = 0.25;
  // liveness: the silence that means stopped or hung; max_silence (>= liveness): the longest
  // silence a starved process is excused.
  StarvationExcuse(std::chrono::nanoseconds liveness, std::chrono::nanoseconds max_silence);
  // Progress was seen: a new silence starts from zero.
  void Progress();
  // A sample during a silence: `silence` since the last progress; `sample` nullopt when the
  // process is stopped or cannot be read. Take one at liveness / 2 or later, so that the wait
  // has a start before `liveness`. Returns whether the silence is excused: always below
  // `liveness`; from there only below max_silence, and while the process has a runnable thread
  // or waited for a CPU at least kStarvedFraction of the time since this silence's first sample.
  bool Excused(std::chrono::nanoseconds silence, std::optional<CpuWaitSample> sample);

 private:
  std::chrono::nanoseconds liveness_;
  std::chrono::nanoseconds max_silence_;
  std::optional<std::chrono::nanoseconds> first_silence_;
  std::optional<std::chrono::nanoseconds> first_wait_;
};

}  // namespace baton::takeover

#endif  // BATON_TAKEOVER_DAEMON_HEALTH_CHECK_H_

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

#include <functional>
#include <memory>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

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

}  // namespace baton::takeover

#endif  // BATON_TAKEOVER_DAEMON_HEALTH_CHECK_H_

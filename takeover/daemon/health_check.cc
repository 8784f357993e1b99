#include "takeover/daemon/health_check.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

extern char** environ;

namespace baton::takeover {
namespace {
// How often a running command is polled for its exit.
constexpr std::chrono::milliseconds kCommandPoll(5);
}  // namespace

HealthChecker::HealthChecker(boost::asio::io_context& io, HealthCheckConfig config,
                             Callback on_change)
    : io_(io),
      config_(std::move(config)),
      on_change_(std::move(on_change)),
      period_timer_(io),
      check_timer_(io) {}

HealthChecker::~HealthChecker() {
  *alive_ = false;
  Stop();
}

void HealthChecker::Start() {
  if (config_.kind == HealthCheckConfig::Kind::kNone || running_) return;
  running_ = true;
  Schedule();
}

void HealthChecker::Stop() {
  running_ = false;
  period_timer_.cancel();
  check_timer_.cancel();
  if (socket_) {
    boost::system::error_code ec;
    socket_->close(ec);
  }
  if (child_ > 0) {
    kill(child_, SIGKILL);
    waitpid(child_, nullptr, 0);
    child_ = -1;
  }
}

void HealthChecker::Schedule() {
  if (!running_) return;
  period_timer_.expires_after(config_.period);
  period_timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive || !running_) return;
    RunOnce();
  });
}

void HealthChecker::RunOnce() {
  if (in_check_) {  // the previous check is still running (bounded by its timeout)
    Schedule();
    return;
  }
  in_check_ = true;
  if (config_.kind == HealthCheckConfig::Kind::kCommand) {
    StartCommand();
  } else {
    StartTcp();
  }
  Schedule();
}

void HealthChecker::StartCommand() {
  const char* argv[] = {"/bin/sh", "-c", config_.command.c_str(), nullptr};
  pid_t pid = -1;
  int rc = posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char* const*>(argv), environ);
  if (rc != 0) {
    spdlog::warn("health check: cannot run '{}': {}", config_.command, std::strerror(rc));
    Finish(false);
    return;
  }
  child_ = pid;
  child_waited_ = {};
  PollCommand();
}

void HealthChecker::PollCommand() {
  int status = 0;
  pid_t r = waitpid(child_, &status, WNOHANG);
  if (r == child_) {
    child_ = -1;
    Finish(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return;
  }
  if (child_waited_ >= config_.timeout) {
    kill(child_, SIGKILL);
    waitpid(child_, nullptr, 0);
    child_ = -1;
    spdlog::warn("health check: '{}' timed out after {} ms", config_.command, config_.timeout.count());
    Finish(false);
    return;
  }
  child_waited_ += kCommandPoll;
  check_timer_.expires_after(kCommandPoll);
  check_timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive || child_ <= 0) return;
    PollCommand();
  });
}

void HealthChecker::StartTcp() {
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(config_.tcp_host, ec);
  if (ec) {
    Finish(false);
    return;
  }
  socket_ = std::make_unique<boost::asio::ip::tcp::socket>(io_);
  boost::asio::ip::tcp::endpoint ep(address, config_.tcp_port);
  auto done = std::make_shared<bool>(false);
  socket_->async_connect(ep, [this, alive = alive_, done](const boost::system::error_code& ec) {
    if (!*alive || *done) return;
    *done = true;
    check_timer_.cancel();
    boost::system::error_code ignored;
    if (socket_) socket_->close(ignored);
    Finish(!ec);
  });
  check_timer_.expires_after(config_.timeout);
  check_timer_.async_wait([this, alive = alive_, done](const boost::system::error_code& ec) {
    if (ec || !*alive || *done) return;
    *done = true;
    boost::system::error_code ignored;
    if (socket_) socket_->close(ignored);
    Finish(false);
  });
}

void HealthChecker::Finish(bool ok) {
  in_check_ = false;
  ++checks_;
  if (ok) {
    consecutive_fail_ = 0;
    ++consecutive_ok_;
    if (!healthy_ && consecutive_ok_ >= config_.rise) {
      healthy_ = true;
      spdlog::info("health check: healthy again after {} successful checks", consecutive_ok_);
      on_change_(true);
    }
  } else {
    ++failures_;
    consecutive_ok_ = 0;
    ++consecutive_fail_;
    if (healthy_ && consecutive_fail_ >= config_.fall) {
      healthy_ = false;
      spdlog::warn("health check: unhealthy after {} failed checks", consecutive_fail_);
      on_change_(false);
    }
  }
}

namespace {
// The state letter of a /proc/.../stat line ("pid (comm) S ..."; comm may contain anything, so the
// state follows the last ')'); 0 if unreadable.
char StatState(const std::filesystem::path& stat_path) {
  std::ifstream in(stat_path);
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return 0;
  return stat[close + 2];
}
}  // namespace

absl::StatusOr<CpuWaitSample> SampleCpuWait(pid_t pid, pid_t exclude_tid) {
  const std::filesystem::path tasks = std::filesystem::path("/proc") / std::to_string(pid) / "task";
  std::error_code ec;
  std::filesystem::directory_iterator it(tasks, ec);
  if (ec) return absl::NotFoundError(absl::StrCat("no process ", pid, ": ", ec.message()));
  CpuWaitSample sample;
  int read = 0;
  for (const std::filesystem::directory_entry& task : it) {
    const char state = StatState(task.path() / "stat");
    if (state == 0) continue;  // gone meanwhile
    if (state == 'T' || state == 't') {
      return absl::FailedPreconditionError(absl::StrCat("process ", pid, " is stopped"));
    }
    int64_t tid = 0;
    // R: running or waiting for a CPU; D: waiting for the disk (the host is slow, the thread
    // is not stuck in the server's own logic).
    if ((state == 'R' || state == 'D') && !(absl::SimpleAtoi(task.path().filename().string(), &tid) &&
                          tid == exclude_tid)) {
      ++sample.runnable;
    }
    std::ifstream in(task.path() / "schedstat");
    int64_t on_cpu = 0;
    int64_t waited = 0;
    if (!(in >> on_cpu >> waited)) continue;
    sample.waited += std::chrono::nanoseconds(waited);
    ++read;
  }
  if (read == 0) {
    return std::filesystem::exists(tasks)
               ? absl::UnavailableError(absl::StrCat("no schedstat for process ", pid))
               : absl::NotFoundError(absl::StrCat("no process ", pid));
  }
  return sample;
}

StarvationExcuse::StarvationExcuse(std::chrono::nanoseconds liveness,
                                   std::chrono::nanoseconds max_silence)
    : liveness_(liveness), max_silence_(std::max(liveness, max_silence)) {}

void StarvationExcuse::Progress() {
  first_silence_.reset();
  first_wait_.reset();
}

bool StarvationExcuse::Excused(std::chrono::nanoseconds silence,
                               std::optional<CpuWaitSample> sample) {
  if (sample && !first_wait_) {
    first_silence_ = silence;
    first_wait_ = sample->waited;
  }
  if (silence < liveness_) return true;
  if (silence >= max_silence_ || !sample) return false;
  if (sample->runnable > 0) return true;
  const std::chrono::nanoseconds elapsed = silence - *first_silence_;
  if (elapsed <= std::chrono::nanoseconds(0)) return false;
  return static_cast<double>((sample->waited - *first_wait_).count()) >=
         kStarvedFraction * static_cast<double>(elapsed.count());
}

}  // namespace baton::takeover

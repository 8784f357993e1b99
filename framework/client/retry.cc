#include "framework/client/retry.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"

namespace baton::framework::client {
namespace {

class RealEnv : public Environment {
 public:
  RealEnv() : rng_(std::random_device{}()) {}
  absl::Time Now() override {
    // The platform layer: the only place the client reads a clock.
    return absl::UnixEpoch() +
           absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
  }
  void SleepFor(absl::Duration d) override {
    if (d > absl::ZeroDuration()) std::this_thread::sleep_for(absl::ToChronoNanoseconds(d));
  }
  uint64_t Random() override {
    absl::MutexLock lock(&mu_);
    return rng_();
  }

 private:
  absl::Mutex mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

Environment& RealEnvironment() {
  static RealEnv* env = new RealEnv();
  return *env;
}

absl::Duration BackoffDelay(const RetryOptions& o, int failed_attempts,
                            uint64_t random) {
  const int n = std::max(failed_attempts, 1) - 1;
  double d = absl::ToDoubleSeconds(o.initial_backoff) *
             std::pow(o.multiplier, std::min(n, 62));
  d = std::min(d, absl::ToDoubleSeconds(o.max_backoff));
  // u uniform in [0, 1) from the top 53 bits.
  const double u = static_cast<double>(random >> 11) * 0x1.0p-53;
  d *= 1.0 - o.jitter * u;
  return absl::Seconds(d);
}

RetryDecision DecideRetry(const RetryOptions& o, bool retryable,
                          int attempts_made, absl::Time started,
                          absl::Time now, absl::Duration min_delay,
                          uint64_t random) {
  if (!retryable) return {};
  if (o.max_attempts > 0 && attempts_made >= o.max_attempts) return {};
  absl::Duration delay = BackoffDelay(o, attempts_made, random);
  delay = std::max(delay, std::min(min_delay, o.max_backoff));
  // A retry needs some time to be useful; one that could not even start
  // before the deadline is not made.
  if (now + delay >= started + o.deadline) return {};
  return {true, delay};
}

absl::Status ValidateRetryOptions(const RetryOptions& o) {
  auto bad = [](const char* name) {
    return absl::InvalidArgumentError(absl::StrCat("retry option ", name,
                                                   " is out of range"));
  };
  if (o.attempt_timeout <= absl::ZeroDuration()) return bad("attempt_timeout");
  if (o.deadline <= absl::ZeroDuration()) return bad("deadline");
  if (o.initial_backoff < absl::ZeroDuration()) return bad("initial_backoff");
  if (o.max_backoff < o.initial_backoff) return bad("max_backoff");
  if (!(o.multiplier >= 1.0)) return bad("multiplier");
  if (!(o.jitter >= 0.0 && o.jitter <= 1.0)) return bad("jitter");
  if (o.max_attempts < 0) return bad("max_attempts");
  return absl::OkStatus();
}

}  // namespace baton::framework::client

#include "framework/client/retry.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"

namespace baton::framework::client {
namespace {

class RealEnv : public Environment {
 public:
  RealEnv() : rng_(std::random_device{}()) {}
  Clock& clock() override { return RealClock(); }
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

LatencyWindow::LatencyWindow(int capacity)
    : capacity_(static_cast<size_t>(std::max(capacity, 1))) {
  samples_.reserve(capacity_);
}

void LatencyWindow::Record(absl::Duration latency) {
  if (samples_.size() < capacity_) {
    samples_.push_back(latency);
  } else {
    samples_[next_] = latency;
  }
  next_ = (next_ + 1) % capacity_;
}

absl::Duration LatencyWindow::Quantile(double p) const {
  if (samples_.empty()) return absl::ZeroDuration();
  std::vector<absl::Duration> v = samples_;
  const double rank = std::ceil(std::clamp(p, 0.0, 1.0) * static_cast<double>(v.size()));
  const size_t k = std::clamp<size_t>(static_cast<size_t>(rank), 1, v.size()) - 1;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

absl::Duration AttemptTimeout(const RetryOptions& o, const LatencyWindow& w,
                              int timeouts) {
  const AdaptiveTimeoutOptions& a = o.adaptive;
  if (!a.enabled || w.size() < a.min_samples) return o.attempt_timeout;
  absl::Duration t = std::clamp(w.Quantile(a.percentile) * a.factor, a.floor,
                                std::max(a.floor, o.attempt_timeout));
  for (int i = 0; i < timeouts && t < o.attempt_timeout; ++i) t *= 2;
  return std::min(t, o.attempt_timeout);
}

absl::Duration HedgeDelay(const RetryOptions& o, const LatencyWindow& w,
                          absl::Duration timeout) {
  const HedgeOptions& h = o.hedge;
  if (!h.enabled || h.max_in_flight < 2) return absl::InfiniteDuration();
  absl::Duration d = h.delay;
  if (d == absl::ZeroDuration()) {
    if (w.size() < o.adaptive.min_samples) return absl::InfiniteDuration();
    d = std::max(w.Quantile(h.delay_percentile), h.min_delay);
  }
  return d < timeout ? d : absl::InfiniteDuration();
}

AttemptVerdict JudgeAttempt(bool retryable, int others_in_flight) {
  if (!retryable) return AttemptVerdict::kAnswer;
  return others_in_flight > 0 ? AttemptVerdict::kWaitForOther : AttemptVerdict::kRetry;
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
  if (o.connect_timeout < absl::ZeroDuration()) return bad("connect_timeout");
  const AdaptiveTimeoutOptions& a = o.adaptive;
  if (!(a.percentile > 0.0 && a.percentile <= 1.0)) return bad("adaptive.percentile");
  if (!(a.factor >= 1.0 && a.factor <= 1000.0)) return bad("adaptive.factor");
  if (a.floor <= absl::ZeroDuration()) return bad("adaptive.floor");
  if (a.min_samples < 1) return bad("adaptive.min_samples");
  const HedgeOptions& h = o.hedge;
  if (h.delay < absl::ZeroDuration()) return bad("hedge.delay");
  if (!(h.delay_percentile > 0.0 && h.delay_percentile <= 1.0)) {
    return bad("hedge.delay_percentile");
  }
  if (h.min_delay < absl::ZeroDuration()) return bad("hedge.min_delay");
  if (h.max_in_flight < 1 || h.max_in_flight > 8) return bad("hedge.max_in_flight");
  if (!(h.budget_ratio >= 0.0 && h.budget_ratio <= 1.0)) return bad("hedge.budget_ratio");
  if (!(h.budget_burst >= 0.0 && h.budget_burst <= 1e6)) return bad("hedge.budget_burst");
  if (o.latency_window < 1 || o.latency_window > 65536) return bad("latency_window");
  return absl::OkStatus();
}

}  // namespace baton::framework::client

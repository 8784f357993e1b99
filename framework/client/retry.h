// The retry policy of baton's retrying client, as pure functions of injected
// time and randomness so that it can be tested without sleeping.
//
// A request is retried (with the same request id) after a transport failure
// (connection refused or reset, a timeout: the outcome is unknown, the server
// will answer a retry from the completion record) and after a retryable
// answer (HTTP 503, HTTP 409 `request_in_progress`/`aborted`; gRPC
// UNAVAILABLE, ABORTED with `baton-error` metadata). Any other answer is
// final. Between attempts it waits an exponentially growing, jittered delay,
// and it gives up when the overall deadline would pass.
//
// Attempt timeouts are fixed (attempt_timeout) or, with adaptive timeouts,
// derived from the latency the client observes: a high percentile of the
// recent answers times a factor, clamped to [floor, attempt_timeout], and
// doubled for each attempt of the same request that timed out (so a server
// that became slower is still waited for, and its answers move the estimate
// up). With hedging, an attempt that has not answered after a hedge delay
// (fixed, or a percentile of the same latencies) gets a second attempt of
// the same request id beside it; the first answer wins. The server
// deduplicates concurrent attempts of one id, so a hedged write still
// executes once; a "request in progress" answer to one attempt while
// another is in flight means "keep waiting for the other". A budget bounds
// the extra load hedges make.
//
// Thread safety: RetryOptions and the functions are values/pure;
// LatencyWindow and HedgeBudget are values, not thread-safe (the client
// guards them); an Environment implementation is thread-safe.
#ifndef BATON_FRAMEWORK_CLIENT_RETRY_H_
#define BATON_FRAMEWORK_CLIENT_RETRY_H_

#include <cstdint>
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/clock.h"

namespace baton::framework::client {

// Attempt timeouts from observed latency (see the file comment).
struct AdaptiveTimeoutOptions {
  // Derive the attempt timeout from latency. Off: every attempt gets
  // RetryOptions::attempt_timeout. Default: false (see docs/client.md for
  // why the fixed timeout stays the default).
  bool enabled = false;
  // The latency percentile (0..1] the timeout is a multiple of.
  // Default: 0.99.
  double percentile = 0.99;
  // Timeout = percentile latency x factor (>= 1). Default: 3.
  double factor = 3.0;
  // Lower bound of an adaptive timeout; the upper bound is
  // RetryOptions::attempt_timeout. Default: 10 ms.
  absl::Duration floor = absl::Milliseconds(10);
  // Latency samples needed before the estimate is used (the fixed timeout
  // until then). Default: 20.
  int min_samples = 20;
};

// Hedged attempts (see the file comment).
struct HedgeOptions {
  // Send hedged attempts. Default: false.
  bool enabled = false;
  // Delay after which an attempt that has not answered gets a hedge. Zero:
  // the `delay_percentile` of observed latency (at least `min_delay`), and
  // no hedging until AdaptiveTimeoutOptions::min_samples latencies were
  // seen. Default: zero.
  absl::Duration delay = absl::ZeroDuration();
  // Default: 0.95 (hedges about 5 % of requests when latency is steady;
  // Dean & Barroso, "The Tail at Scale").
  double delay_percentile = 0.95;
  // Default: 1 ms.
  absl::Duration min_delay = absl::Milliseconds(1);
  // Attempts of one request in flight at once, the first included; each
  // further one follows the previous after the hedge delay. 1..8.
  // Default: 2.
  int max_in_flight = 2;
  // Budget: every request earns `budget_ratio` hedges, saved up to
  // `budget_burst`; a hedge spends one. Bounds the extra requests hedging
  // sends to about budget_ratio of all (after a burst), also when the
  // server is slow for everyone. Default: 0.1 and 10.
  double budget_ratio = 0.1;
  double budget_burst = 10;
};

struct RetryOptions {
  // Time allowed for one attempt (connect, send, receive). A reply that has
  // not arrived by then counts as lost and the request is retried.
  // Default: 2 s.
  absl::Duration attempt_timeout = absl::Seconds(2);
  // Overall time for a request, all attempts and waits included; then the
  // call fails with kDeadlineExceeded. Must stay far below the server's
  // completion-record retention (default 24 h), so that every retry still
  // finds the record of an earlier attempt. Default: 30 s.
  absl::Duration deadline = absl::Seconds(30);
  // Delay before the first retry. Default: 20 ms.
  absl::Duration initial_backoff = absl::Milliseconds(20);
  // Upper bound of a delay between attempts. Default: 1 s.
  absl::Duration max_backoff = absl::Seconds(1);
  // Growth of the delay per failed attempt. Default: 2.0.
  double multiplier = 2.0;
  // Fraction of the delay that is random: the delay is uniform in
  // [d * (1 - jitter), d]. 0 = no jitter, 1 = "full jitter". Default: 0.5.
  double jitter = 0.5;
  // Most attempts per request (0: unlimited, bounded by `deadline`).
  // Default: 0.
  int max_attempts = 0;
  // Time allowed for a new connection's TCP handshake within an attempt
  // (HTTP transport); then the attempt fails as unavailable -- nothing was
  // sent, so it is retried without any doubt about its outcome. Right after
  // a service address moved, a SYN sent while the address is between hosts
  // is lost and the kernel would resend it only after 1 s; a short connect
  // timeout sends a fresh one that reaches the new holder. On a LAN a
  // handshake takes well under a millisecond: 10-50 ms is a safe value
  // there. Zero: no separate limit (the attempt timeout covers the
  // handshake). Default: zero.
  absl::Duration connect_timeout = absl::ZeroDuration();
  // Attempt timeouts from observed latency. Default: off.
  AdaptiveTimeoutOptions adaptive{};
  // Hedged attempts. Default: off.
  HedgeOptions hedge{};
  // Latencies kept (the most recent answers) for adaptive timeouts and hedge
  // delays, 1..65536. Default: 256.
  int latency_window = 256;
};

// Time, sleeping and randomness for the client; injected so that tests run
// the retry loop on simulated time. Time and sleeping are the one clock's
// (base/clock.h); the environment adds randomness and the hedge wait.
class Environment {
 public:
  virtual ~Environment() = default;
  // The clock the client measures and sleeps on.
  virtual Clock& clock() = 0;
  // A monotonic time (only differences matter): clock().MonotonicNow() as an
  // absl::Time.
  absl::Time Now() { return absl::UnixEpoch() + absl::FromChrono(clock().MonotonicNow()); }
  void SleepFor(absl::Duration d) { clock().SleepFor(d); }
  // Uniform random 64 bits.
  virtual uint64_t Random() = 0;
  // With `mu` held: waits until `cond` holds or `timeout` passed; returns
  // cond's value. Used for hedge delays. Default: mu.AwaitWithTimeout.
  virtual bool AwaitWithTimeout(absl::Mutex& mu, const absl::Condition& cond,
                                absl::Duration timeout) {
    return mu.AwaitWithTimeout(cond, timeout);
  }
};

// The platform layer: the real clock (RealClock()), a seeded (from the OS)
// generator. Never destroyed.
Environment& RealEnvironment();

// Simulated time: SleepFor advances the clock instantly; Random is a
// deterministic generator seeded with `seed`. For tests.
class SimulatedEnvironment : public Environment {
 public:
  explicit SimulatedEnvironment(uint64_t seed) : state_(seed | 1) {}
  Clock& clock() override { return clock_; }
  void Advance(absl::Duration d) { SleepFor(d); }
  // Does not wait: unless `cond` already holds, advances the clock by
  // `timeout`. (Attempts running concurrently on other threads are not
  // simulated; hedging is tested in real time.)
  bool AwaitWithTimeout(absl::Mutex& mu, const absl::Condition& cond,
                        absl::Duration timeout) override {
    if (mu.AwaitWithTimeout(cond, absl::ZeroDuration())) return true;
    SleepFor(timeout);
    return mu.AwaitWithTimeout(cond, absl::ZeroDuration());
  }
  uint64_t Random() override {
    absl::MutexLock lock(&mu_);
    // splitmix64.
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  // Monotonic time starts at 1 h (Now() = the epoch + 1 h).
  SimulatedClock clock_{absl::FromUnixSeconds(1'700'000'000), std::chrono::hours(1)};
  absl::Mutex mu_;
  uint64_t state_ ABSL_GUARDED_BY(mu_);
};

// The wait after `failed_attempts` (>= 1) failed attempts:
// min(max_backoff, initial_backoff * multiplier^(failed_attempts-1)),
// reduced by a random fraction up to `jitter` (from `random`).
absl::Duration BackoffDelay(const RetryOptions& options, int failed_attempts,
                            uint64_t random);

// What a retry loop does after an attempt.
struct RetryDecision {
  bool retry = false;
  absl::Duration delay;  // Wait before the next attempt (when retry).
};

// Decides about the next attempt: `retryable` says whether the attempt's
// failure may be retried at all; `now` - `started` is the time spent so far;
// `min_delay` is a server's Retry-After hint (capped at max_backoff). No retry
// when the wait plus a minimal attempt would pass the deadline, or when
// max_attempts were made.
RetryDecision DecideRetry(const RetryOptions& options, bool retryable,
                          int attempts_made, absl::Time started,
                          absl::Time now, absl::Duration min_delay,
                          uint64_t random);

// The most recent latencies of answered attempts (a sliding window of
// `capacity` samples), for adaptive timeouts and hedge delays.
class LatencyWindow {
 public:
  explicit LatencyWindow(int capacity = 256);
  void Record(absl::Duration latency);
  int size() const { return static_cast<int>(samples_.size()); }
  // The p-quantile (nearest rank, p in (0, 1]) of the samples; zero if none.
  absl::Duration Quantile(double p) const;

 private:
  size_t capacity_;
  size_t next_ = 0;
  std::vector<absl::Duration> samples_;
};

// The timeout of a request's next attempt, after `timeouts` of its attempts
// timed out: attempt_timeout, or with adaptive timeouts and enough samples
// clamp(quantile x factor, floor, attempt_timeout) x 2^timeouts, at most
// attempt_timeout.
absl::Duration AttemptTimeout(const RetryOptions& options,
                              const LatencyWindow& latencies, int timeouts);

// The delay after which an attempt that has not answered is hedged, below
// `timeout` (the attempt's own); InfiniteDuration: no hedge (hedging off, no
// estimate yet, or the delay would not come before the timeout).
absl::Duration HedgeDelay(const RetryOptions& options,
                          const LatencyWindow& latencies, absl::Duration timeout);

// The hedge budget: a token bucket counted in requests, not time.
class HedgeBudget {
 public:
  explicit HedgeBudget(const HedgeOptions& options)
      : ratio_(options.budget_ratio), burst_(options.budget_burst), tokens_(burst_) {}
  // A request was sent: earns `budget_ratio` hedges, up to the burst.
  void OnRequest() { tokens_ = std::min(burst_, tokens_ + ratio_); }
  // Spends one hedge if there is one.
  bool TrySpend() {
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
  }

 private:
  double ratio_;
  double burst_;
  double tokens_;
};

// What the client does with an attempt's outcome while `others_in_flight`
// attempts of the same request are still running.
enum class AttemptVerdict {
  kAnswer,        // A final answer: the request's result; others discarded.
  kWaitForOther,  // Retryable, but another attempt may still answer (a
                  // "request in progress" answer usually means it will).
  kRetry,         // Retryable and none left in flight: back off, retry.
};
AttemptVerdict JudgeAttempt(bool retryable, int others_in_flight);

// Checks the options (positive durations, multiplier >= 1, jitter in [0,1],
// the adaptive and hedge options in their ranges).
// Errors: kInvalidArgument naming the option.
[[nodiscard]] absl::Status ValidateRetryOptions(const RetryOptions& options);

}  // namespace baton::framework::client

#endif  // BATON_FRAMEWORK_CLIENT_RETRY_H_

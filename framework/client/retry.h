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
// Thread safety: RetryOptions and the functions are values/pure; an
// Environment implementation is thread-safe.
#ifndef BATON_FRAMEWORK_CLIENT_RETRY_H_
#define BATON_FRAMEWORK_CLIENT_RETRY_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace baton::framework::client {

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
};

// Time, sleeping and randomness for the client; injected so that tests run
// the retry loop on simulated time.
class Environment {
 public:
  virtual ~Environment() = default;
  // A monotonic time (only differences matter).
  virtual absl::Time Now() = 0;
  virtual void SleepFor(absl::Duration d) = 0;
  // Uniform random 64 bits.
  virtual uint64_t Random() = 0;
};

// The platform layer: steady clock, real sleep, a seeded (from the OS)
// generator. Never destroyed.
Environment& RealEnvironment();

// Simulated time: SleepFor advances the clock instantly; Random is a
// deterministic generator seeded with `seed`. For tests.
class SimulatedEnvironment : public Environment {
 public:
  explicit SimulatedEnvironment(uint64_t seed) : state_(seed | 1) {}
  absl::Time Now() override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void SleepFor(absl::Duration d) override {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }
  void Advance(absl::Duration d) { SleepFor(d); }
  uint64_t Random() override {
    absl::MutexLock lock(&mu_);
    // splitmix64.
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = absl::UnixEpoch() + absl::Hours(1);
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

// Checks the options (positive durations, multiplier >= 1, jitter in [0,1]).
// Errors: kInvalidArgument naming the option.
[[nodiscard]] absl::Status ValidateRetryOptions(const RetryOptions& options);

}  // namespace baton::framework::client

#endif  // BATON_FRAMEWORK_CLIENT_RETRY_H_

// The retrying client's policy on simulated time with a scripted transport:
// backoff growth, jitter bounds and the deadline; the same request id on every
// attempt; no retry after a non-retryable answer; the acknowledged watermark;
// adaptive attempt timeouts (a lost reply retried after the learned timeout,
// a slower server still answered) and the hedge policy (delay, budget).
// Seeded (BATON_SEED or fixed); the seed is printed on failure.
#include <cstdlib>
#include <deque>
#include <functional>
#include <future>
#include <utility>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "framework/client/client.h"
#include "framework/client/retry.h"
#include "gtest/gtest.h"

namespace baton::framework::client {
namespace {

uint64_t Seed() {
  const char* s = std::getenv("BATON_SEED");
  return s ? std::strtoull(s, nullptr, 10) : 20261126;
}

// Answers attempts from a script (then OK); records what it was sent. Each
// attempt "takes" `latency` of simulated time (a scripted timeout: the
// attempt's whole timeout).
class ScriptedTransport : public Transport {
 public:
  ScriptedTransport(SimulatedEnvironment& env,
                    std::deque<absl::StatusOr<Response>> script,
                    absl::Duration latency = absl::Milliseconds(1))
      : env_(env), script_(std::move(script)), latency_(latency) {}

  struct Sent {
    IdHeaders id;
    absl::Duration timeout;
    bool fresh;
    absl::Time at;
  };

  absl::StatusOr<Response> Attempt(const Call&, const IdHeaders& id,
                                   absl::Duration timeout, bool fresh) override {
    absl::StatusOr<Response> r = Response{};
    {
      absl::MutexLock lock(&mu_);
      sent_.push_back({id, timeout, fresh, env_.Now()});
      if (!script_.empty()) {
        r = script_.front();
        script_.pop_front();
      }
    }
    const bool timed_out =
        !r.ok() && r.status().code() == absl::StatusCode::kDeadlineExceeded;
    env_.Advance(timed_out ? timeout : latency_);
    return r;
  }
  std::vector<Sent> sent() {
    absl::MutexLock lock(&mu_);
    return sent_;
  }

 private:
  SimulatedEnvironment& env_;
  absl::Mutex mu_;
  std::deque<absl::StatusOr<Response>> script_ ABSL_GUARDED_BY(mu_);
  std::vector<Sent> sent_ ABSL_GUARDED_BY(mu_);
  absl::Duration latency_;
};

Response Http(int status, std::string error_code = "", bool replayed = false) {
  Response r;
  r.http_status = status;
  r.code = CodeForHttpStatus(status);
  r.error_code = std::move(error_code);
  r.replayed = replayed;
  return r;
}

Response Grpc(absl::StatusCode code, std::string error_code = "") {
  Response r;
  r.code = code;
  r.error_code = std::move(error_code);
  return r;
}

const Call kCall{"POST", "/kv/a/incr", "{}"};

TEST(BackoffTest, GrowsExponentiallyUpToTheCapWithJitterInBounds) {
  const uint64_t seed = Seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  SimulatedEnvironment env(seed);
  RetryOptions o;
  o.initial_backoff = absl::Milliseconds(20);
  o.max_backoff = absl::Seconds(1);
  o.multiplier = 2;
  o.jitter = 0.5;
  for (int n = 1; n <= 12; ++n) {
    const absl::Duration cap =
        std::min(absl::Milliseconds(20) * (1 << (n - 1)), absl::Seconds(1));
    for (int i = 0; i < 200; ++i) {
      const absl::Duration d = BackoffDelay(o, n, env.Random());
      EXPECT_LE(d, cap) << "attempt " << n;
      EXPECT_GE(d, cap / 2) << "attempt " << n;
    }
  }
  o.jitter = 0;
  EXPECT_EQ(BackoffDelay(o, 3, env.Random()), absl::Milliseconds(80));
}

TEST(BackoffTest, JitterSpreadsClientsApart) {
  SimulatedEnvironment env(Seed());
  RetryOptions o;  // jitter 0.5
  std::vector<absl::Duration> d;
  for (int i = 0; i < 100; ++i) d.push_back(BackoffDelay(o, 4, env.Random()));
  std::sort(d.begin(), d.end());
  // Not all the same: retries of many clients after one crash do not arrive
  // in lock step.
  EXPECT_GT(d.back() - d.front(), absl::Milliseconds(40));
}

TEST(DecideRetryTest, NeverWaitsPastTheDeadline) {
  SimulatedEnvironment env(Seed());
  RetryOptions o;
  o.deadline = absl::Seconds(1);
  const absl::Time start = env.Now();
  EXPECT_TRUE(DecideRetry(o, true, 1, start, start, {}, env.Random()).retry);
  EXPECT_FALSE(DecideRetry(o, false, 1, start, start, {}, env.Random()).retry);
  EXPECT_FALSE(DecideRetry(o, true, 1, start, start + absl::Milliseconds(995),
                           {}, 0)
                   .retry);
  o.max_attempts = 3;
  EXPECT_FALSE(DecideRetry(o, true, 3, start, start, {}, env.Random()).retry);
  // A server's Retry-After is honoured, up to max_backoff.
  o.max_attempts = 0;
  o.deadline = absl::Seconds(30);
  EXPECT_EQ(DecideRetry(o, true, 1, start, start, absl::Milliseconds(700), 0)
                .delay,
            absl::Milliseconds(700));
  EXPECT_EQ(DecideRetry(o, true, 1, start, start, absl::Seconds(30), 0).delay,
            o.max_backoff);
}

TEST(RetryingClientTest, SameRequestIdOnEveryAttemptAndFreshConnections) {
  const uint64_t seed = Seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  SimulatedEnvironment env(seed);
  std::deque<absl::StatusOr<Response>> script = {
      absl::UnavailableError("connection refused"),
      absl::DeadlineExceededError("no reply"), Http(503), absl::UnavailableError("reset"),
      Http(409, "request_in_progress"), Http(200, "", /*replayed=*/true)};
  auto t = std::make_unique<ScriptedTransport>(env, script);
  ScriptedTransport* tp = t.get();
  ClientOptions o;
  o.client_id = "c1";
  o.first_seq = 7;
  RetryingClient c(std::move(t), o, env);
  CallResult r = c.Send(kCall);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.attempts, 6);
  EXPECT_TRUE(r.response.replayed);
  const auto sent = tp->sent();
  ASSERT_EQ(sent.size(), 6u);
  for (size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(sent[i].id.client_id, "c1");
    EXPECT_EQ(sent[i].id.seq, 7u) << "attempt " << i + 1;
    EXPECT_EQ(sent[i].fresh, i > 0) << "a retry must reconnect";
  }
  // The outage runs from the first failure to the answer.
  EXPECT_EQ(r.outage, r.finished - r.first_failure);
  EXPECT_GT(r.outage, absl::ZeroDuration());
  // The next request gets the next seq and acknowledges this one.
  c.Send(kCall);
  EXPECT_EQ(tp->sent().back().id.seq, 8u);
  ASSERT_TRUE(tp->sent().back().id.acked.has_value());
  EXPECT_EQ(*tp->sent().back().id.acked, 7u);
}

TEST(RetryingClientTest, NoRetryAfterANonRetryableAnswer) {
  SimulatedEnvironment env(Seed());
  const std::vector<Response> finals = {
      Http(200),
      Http(404),
      Http(412),
      Http(422, "idempotency_key_reused"),
      Http(410, "request_already_acknowledged"),
      Http(400, "bad_request_id"),
      Http(500, "outcome_unknown"),
      Http(409),  // A handler's committed 409: its retry would replay it.
      Http(503, "unavailable", /*replayed=*/true),  // A saved answer.
      Grpc(absl::StatusCode::kAborted),  // Handler reply, not the framework.
      Grpc(absl::StatusCode::kFailedPrecondition, "idempotency_key_reused"),
      Grpc(absl::StatusCode::kUnimplemented, "unknown_method"),
      Grpc(absl::StatusCode::kInvalidArgument, "bad_request_id"),
      Grpc(absl::StatusCode::kNotFound)};
  for (const Response& f : finals) {
    auto t = std::make_unique<ScriptedTransport>(
        env, std::deque<absl::StatusOr<Response>>{f});
    ScriptedTransport* tp = t.get();
    RetryingClient c(std::move(t), {}, env);
    CallResult r = c.Send(kCall);
    EXPECT_TRUE(r.status.ok());
    EXPECT_EQ(r.attempts, 1) << "http " << f.http_status << " code "
                             << absl::StatusCodeToString(f.code) << " "
                             << f.error_code;
    EXPECT_EQ(tp->sent().size(), 1u);
  }
  // Transport errors that are not about reachability are not retried either.
  auto t = std::make_unique<ScriptedTransport>(
      env, std::deque<absl::StatusOr<Response>>{
               absl::InvalidArgumentError("bad target")});
  RetryingClient c(std::move(t), {}, env);
  EXPECT_EQ(c.Send(kCall).status.code(), absl::StatusCode::kInvalidArgument);
}

TEST(RetryingClientTest, RetryableGrpcAnswers) {
  SimulatedEnvironment env(Seed());
  auto t = std::make_unique<ScriptedTransport>(
      env, std::deque<absl::StatusOr<Response>>{
               Grpc(absl::StatusCode::kUnavailable, "unavailable"),
               Grpc(absl::StatusCode::kAborted, "aborted"),
               Grpc(absl::StatusCode::kAborted, "request_in_progress"),
               Grpc(absl::StatusCode::kOk)});
  RetryingClient c(std::move(t), {}, env);
  CallResult r = c.Send(kCall);
  EXPECT_TRUE(r.status.ok());
  EXPECT_EQ(r.attempts, 4);
}

TEST(RetryingClientTest, GivesUpAtTheDeadlineWithBackoffBetweenAttempts) {
  const uint64_t seed = Seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  SimulatedEnvironment env(seed);
  std::deque<absl::StatusOr<Response>> script(
      1000, absl::StatusOr<Response>(absl::UnavailableError("refused")));
  auto t = std::make_unique<ScriptedTransport>(env, script);
  ScriptedTransport* tp = t.get();
  ClientOptions o;
  o.retry.deadline = absl::Seconds(5);
  o.retry.attempt_timeout = absl::Seconds(2);
  RetryingClient c(std::move(t), o, env);
  CallResult r = c.Send(kCall);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDeadlineExceeded);
  const auto sent = tp->sent();
  ASSERT_GE(sent.size(), 5u);
  // 20 ms, 40, 80, ... capped at 1 s, each jittered down by up to half:
  // far fewer attempts than a tight loop, and none after the deadline.
  EXPECT_LE(sent.size(), 20u);
  for (size_t i = 1; i < sent.size(); ++i) {
    const absl::Duration gap = sent[i].at - sent[i - 1].at - absl::Milliseconds(1);
    const absl::Duration cap = std::min(
        absl::Milliseconds(20) * (1 << std::min<int>(i - 1, 20)), absl::Seconds(1));
    EXPECT_LE(gap, cap) << "attempt " << i + 1;
    EXPECT_GE(gap, cap / 2) << "attempt " << i + 1;
    EXPECT_LT(sent[i].at, r.started + o.retry.deadline);
    // An attempt's timeout never reaches past the deadline.
    EXPECT_LE(sent[i].at + sent[i].timeout, r.started + o.retry.deadline);
  }
  EXPECT_LE(r.finished - r.started, o.retry.deadline);
  // The failed request no longer holds the watermark back.
  EXPECT_EQ(c.acked(), 1u);
}

// A transport whose attempts block until released, to hold requests open.
class GatedTransport : public Transport {
 public:
  absl::StatusOr<Response> Attempt(const Call& call, const IdHeaders& id,
                                   absl::Duration, bool) override {
    absl::MutexLock lock(&mu_);
    seen_.push_back(id);
    if (call.target == "/hold") mu_.Await(absl::Condition(&open_));
    return Response{};
  }
  void Open() {
    absl::MutexLock lock(&mu_);
    open_ = true;
  }
  std::vector<IdHeaders> seen() {
    absl::MutexLock lock(&mu_);
    return seen_;
  }

 private:
  absl::Mutex mu_;
  bool open_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<IdHeaders> seen_ ABSL_GUARDED_BY(mu_);
};

TEST(RetryingClientTest, WatermarkStaysBelowARequestStillInFlight) {
  auto t = std::make_unique<GatedTransport>();
  GatedTransport* tp = t.get();
  ClientOptions o;
  o.async_threads = 4;
  RetryingClient c(std::move(t), o);
  c.Send(kCall);                                        // seq 1
  std::future<CallResult> held = c.SendAsync({"GET", "/hold", ""});  // seq 2
  for (int i = 0; i < 3; ++i) c.Send(kCall);            // seq 3..5
  // Seq 2 is still open: nothing above 1 may be acknowledged.
  EXPECT_EQ(c.acked(), 1u);
  for (const IdHeaders& id : tp->seen()) {
    if (id.acked) {
      EXPECT_LT(*id.acked, 2u);
    }
  }
  tp->Open();
  EXPECT_EQ(held.get().seq, 2u);
  EXPECT_EQ(c.acked(), 5u);
}

TEST(RetryingClientTest, ManyConcurrentAsyncCallsGetDistinctSeqs) {
  auto t = std::make_unique<GatedTransport>();
  GatedTransport* tp = t.get();
  tp->Open();
  ClientOptions o;
  o.async_threads = 8;
  RetryingClient c(std::move(t), o);
  std::vector<std::future<CallResult>> fs;
  for (int i = 0; i < 200; ++i) fs.push_back(c.SendAsync(kCall));
  std::set<uint64_t> seqs;
  for (auto& f : fs) {
    CallResult r = f.get();
    EXPECT_TRUE(r.status.ok());
    seqs.insert(r.seq);
  }
  EXPECT_EQ(seqs.size(), 200u);
  EXPECT_EQ(c.acked(), 200u);
}

// A server whose every answer takes `latency` (settable): an attempt whose
// timeout is shorter ends at its timeout with kDeadlineExceeded.
class SlowServerTransport : public Transport {
 public:
  explicit SlowServerTransport(SimulatedEnvironment& env) : env_(env) {}
  absl::StatusOr<Response> Attempt(const Call&, const IdHeaders&,
                                   absl::Duration timeout, bool) override {
    absl::MutexLock lock(&mu_);
    timeouts_.push_back(timeout);
    if (latency_ > timeout) {
      env_.Advance(timeout);
      return absl::DeadlineExceededError("no reply");
    }
    env_.Advance(latency_);
    return Http(200);
  }
  void set_latency(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    latency_ = d;
  }
  // The timeouts the attempts got, and forgets them.
  std::vector<absl::Duration> TakeTimeouts() {
    absl::MutexLock lock(&mu_);
    return std::exchange(timeouts_, {});
  }

 private:
  SimulatedEnvironment& env_;
  absl::Mutex mu_;
  absl::Duration latency_ ABSL_GUARDED_BY(mu_) = absl::Milliseconds(2);
  std::vector<absl::Duration> timeouts_ ABSL_GUARDED_BY(mu_);
};

TEST(LatencyWindowTest, NearestRankQuantileOverTheMostRecentSamples) {
  LatencyWindow w(100);
  EXPECT_EQ(w.Quantile(0.99), absl::ZeroDuration());
  for (int i = 1; i <= 100; ++i) w.Record(absl::Milliseconds(i));
  EXPECT_EQ(w.size(), 100);
  EXPECT_EQ(w.Quantile(0.5), absl::Milliseconds(50));
  EXPECT_EQ(w.Quantile(0.99), absl::Milliseconds(99));
  EXPECT_EQ(w.Quantile(1.0), absl::Milliseconds(100));
  // 100 newer, faster samples push all the old ones out.
  for (int i = 0; i < 100; ++i) w.Record(absl::Milliseconds(1));
  EXPECT_EQ(w.size(), 100);
  EXPECT_EQ(w.Quantile(1.0), absl::Milliseconds(1));
}

TEST(AdaptiveTimeoutTest, FixedUntilEnoughSamplesThenPercentileTimesFactorClamped) {
  RetryOptions o;
  o.attempt_timeout = absl::Milliseconds(500);
  LatencyWindow w(256);
  for (int i = 0; i < 100; ++i) w.Record(absl::Milliseconds(8));
  // Off: the fixed timeout, whatever was observed.
  EXPECT_EQ(AttemptTimeout(o, w, 0), absl::Milliseconds(500));
  o.adaptive.enabled = true;
  o.adaptive.factor = 3;
  o.adaptive.floor = absl::Milliseconds(10);
  EXPECT_EQ(AttemptTimeout(o, w, 0), absl::Milliseconds(24));
  // Doubled per timed-out attempt of the same request, up to the fixed one.
  EXPECT_EQ(AttemptTimeout(o, w, 1), absl::Milliseconds(48));
  EXPECT_EQ(AttemptTimeout(o, w, 3), absl::Milliseconds(192));
  EXPECT_EQ(AttemptTimeout(o, w, 5), absl::Milliseconds(500));
  EXPECT_EQ(AttemptTimeout(o, w, 60), absl::Milliseconds(500));
  // Clamped to the floor and to the fixed timeout (the ceiling).
  LatencyWindow fast(256);
  for (int i = 0; i < 100; ++i) fast.Record(absl::Microseconds(300));
  EXPECT_EQ(AttemptTimeout(o, fast, 0), absl::Milliseconds(10));
  LatencyWindow slow(256);
  for (int i = 0; i < 100; ++i) slow.Record(absl::Seconds(1));
  EXPECT_EQ(AttemptTimeout(o, slow, 0), absl::Milliseconds(500));
  // Too few samples: still the fixed timeout.
  LatencyWindow few(256);
  for (int i = 0; i < o.adaptive.min_samples - 1; ++i) few.Record(absl::Milliseconds(1));
  EXPECT_EQ(AttemptTimeout(o, few, 0), absl::Milliseconds(500));
}

TEST(AdaptiveTimeoutTest, ALostReplyIsRetriedAfterTheLearnedTimeoutNotTheFixedOne) {
  const uint64_t seed = Seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  for (bool adaptive : {false, true}) {
    SCOPED_TRACE(adaptive ? "adaptive" : "fixed");
    SimulatedEnvironment env(seed);
    std::deque<absl::StatusOr<Response>> script(50, Http(200));
    script.push_back(absl::DeadlineExceededError("reply lost"));
    auto t = std::make_unique<ScriptedTransport>(env, script, absl::Milliseconds(2));
    ScriptedTransport* tp = t.get();
    ClientOptions o;
    o.retry.attempt_timeout = absl::Seconds(2);
    o.retry.adaptive.enabled = adaptive;
    RetryingClient c(std::move(t), o, env);
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(c.Send(kCall).status.ok());
    CallResult r = c.Send(kCall);  // Its first reply is lost.
    ASSERT_TRUE(r.status.ok()) << r.status;
    EXPECT_EQ(r.attempts, 2);
    const absl::Duration lost_attempt_timeout = tp->sent()[50].timeout;
    if (adaptive) {
      // p99 2 ms x 3 = 6 ms, raised to the 10 ms floor.
      EXPECT_EQ(lost_attempt_timeout, absl::Milliseconds(10));
      EXPECT_LT(r.outage, absl::Milliseconds(40));
    } else {
      EXPECT_EQ(lost_attempt_timeout, absl::Seconds(2));
      EXPECT_GE(r.outage, absl::Seconds(2));
    }
  }
}

TEST(AdaptiveTimeoutTest, AServerThatBecameSlowerIsStillAnsweredAndTheEstimateFollows) {
  const uint64_t seed = Seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  SimulatedEnvironment env(seed);
  auto t = std::make_unique<SlowServerTransport>(env);
  SlowServerTransport* tp = t.get();
  ClientOptions o;
  o.retry.attempt_timeout = absl::Seconds(1);
  o.retry.adaptive.enabled = true;
  RetryingClient c(std::move(t), o, env);
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(c.Send(kCall).status.ok());
  tp->TakeTimeouts();
  // Every answer now takes 70 ms, 7x the learned 10 ms timeout.
  tp->set_latency(absl::Milliseconds(70));
  CallResult first = c.Send(kCall);
  ASSERT_TRUE(first.status.ok()) << first.status;
  // The timeout doubles per lost attempt, and each lost attempt's timeout
  // counts as a latency sample: a few short attempts, then one long enough,
  // far sooner than the 1 s ceiling would allow after a lost reply.
  EXPECT_LE(first.attempts, 4);
  EXPECT_GE(tp->TakeTimeouts().back(), absl::Milliseconds(70));
  EXPECT_LT(first.finished - first.started, absl::Milliseconds(500));
  // The timed-out attempts and the slow answers raise the estimate: after a
  // few requests every request is answered at its first attempt again.
  int extra_attempts = 0;
  for (int i = 0; i < 20; ++i) {
    CallResult r = c.Send(kCall);
    ASSERT_TRUE(r.status.ok());
    if (i >= 5) extra_attempts += r.attempts - 1;
  }
  EXPECT_EQ(extra_attempts, 0);
  for (absl::Duration d : tp->TakeTimeouts()) EXPECT_LE(d, absl::Seconds(1));
}

TEST(HedgePolicyTest, DelayFixedOrFromThePercentileAndOnlyBeforeTheTimeout) {
  RetryOptions o;
  LatencyWindow w(256);
  const absl::Duration timeout = absl::Milliseconds(100);
  EXPECT_EQ(HedgeDelay(o, w, timeout), absl::InfiniteDuration());  // Off.
  o.hedge.enabled = true;
  // No fixed delay and no estimate yet: no hedge.
  EXPECT_EQ(HedgeDelay(o, w, timeout), absl::InfiniteDuration());
  for (int i = 1; i <= 100; ++i) w.Record(absl::Microseconds(100 * i));
  EXPECT_EQ(HedgeDelay(o, w, timeout), absl::Microseconds(9500));  // p95.
  o.hedge.delay = absl::Milliseconds(30);
  EXPECT_EQ(HedgeDelay(o, w, timeout), absl::Milliseconds(30));
  // A hedge that could only start after the attempt's timeout is no hedge.
  EXPECT_EQ(HedgeDelay(o, w, absl::Milliseconds(30)), absl::InfiniteDuration());
  o.hedge.max_in_flight = 1;
  EXPECT_EQ(HedgeDelay(o, w, timeout), absl::InfiniteDuration());
}

TEST(HedgePolicyTest, BudgetBoundsHedgesToAFractionOfRequests) {
  HedgeOptions h;
  h.budget_ratio = 0.1;
  h.budget_burst = 5;
  HedgeBudget b(h);
  int hedges = 0;
  for (int i = 0; i < 1000; ++i) {
    b.OnRequest();
    if (b.TrySpend()) ++hedges;  // A server slow for everyone.
  }
  // The burst, then one in ten.
  EXPECT_GE(hedges, 100);
  EXPECT_LE(hedges, 106);
}

TEST(HedgePolicyTest, ARetryableAnswerWaitsForAnAttemptStillInFlight) {
  EXPECT_EQ(JudgeAttempt(false, 1), AttemptVerdict::kAnswer);
  EXPECT_EQ(JudgeAttempt(false, 0), AttemptVerdict::kAnswer);
  EXPECT_EQ(JudgeAttempt(true, 1), AttemptVerdict::kWaitForOther);
  EXPECT_EQ(JudgeAttempt(true, 0), AttemptVerdict::kRetry);
}

TEST(RetryingClientTest, RejectsBadOptions) {
  SimulatedEnvironment env(1);
  ClientOptions o;
  o.retry.jitter = 2;
  RetryingClient c(std::make_unique<GatedTransport>(), o, env);
  EXPECT_EQ(c.Send(kCall).status.code(), absl::StatusCode::kInvalidArgument);
  for (auto bad : std::vector<std::function<void(RetryOptions&)>>{
           [](RetryOptions& r) { r.adaptive.percentile = 0; },
           [](RetryOptions& r) { r.adaptive.factor = 0.5; },
           [](RetryOptions& r) { r.adaptive.floor = absl::ZeroDuration(); },
           [](RetryOptions& r) { r.hedge.max_in_flight = 9; },
           [](RetryOptions& r) { r.hedge.budget_ratio = -1; },
           [](RetryOptions& r) { r.latency_window = 0; }}) {
    RetryOptions r;
    bad(r);
    EXPECT_EQ(ValidateRetryOptions(r).code(), absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace baton::framework::client

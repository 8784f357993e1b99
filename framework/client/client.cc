#include "framework/client/client.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_format.h"
#include "spdlog/spdlog.h"

namespace baton::framework::client {
namespace {

bool RetryableErrorCode(const std::string& code) {
  return code == "request_in_progress" || code == "aborted";
}

}  // namespace

bool IsRetryable(const absl::StatusOr<Response>& outcome) {
  if (!outcome.ok()) {
    return outcome.status().code() == absl::StatusCode::kUnavailable ||
           outcome.status().code() == absl::StatusCode::kDeadlineExceeded;
  }
  const Response& r = *outcome;
  if (r.replayed) return false;  // A saved answer is the answer.
  if (r.http_status != 0) {
    if (r.http_status == 503) return true;
    return r.http_status == 409 && RetryableErrorCode(r.error_code);
  }
  switch (r.code) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return true;
    case absl::StatusCode::kAborted:
      return RetryableErrorCode(r.error_code);
    default:
      return false;
  }
}

// One round of attempts of a request, shared by the caller and the round's
// attempts (a discarded hedge finishes after the caller has returned).
struct RetryingClient::Round {
  // The call; owned by the round when attempts run on other threads.
  std::optional<Call> owned_call;
  const Call* call = nullptr;
  IdHeaders id;

  absl::Mutex mu;
  int in_flight ABSL_GUARDED_BY(mu) = 0;
  // The first final answer, if any.
  std::optional<absl::StatusOr<Response>> answer ABSL_GUARDED_BY(mu);
  // The latest retryable outcome.
  absl::StatusOr<Response> last_failure ABSL_GUARDED_BY(mu) =
      absl::UnavailableError("no attempt");
  // Some attempt ran out of time.
  bool timed_out ABSL_GUARDED_BY(mu) = false;

  bool Settled() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return answer.has_value() || in_flight == 0;
  }
};

RetryingClient::RetryingClient(std::unique_ptr<Transport> transport,
                               ClientOptions options, Environment& env)
    : transport_(std::move(transport)),
      options_(std::move(options)),
      env_(env),
      client_id_(options_.client_id),
      next_seq_(options_.first_seq),
      latencies_(options_.retry.latency_window),
      hedge_budget_(options_.retry.hedge) {
  if (client_id_.empty()) {
    client_id_ = absl::StrFormat("c-%016x", env_.Random());
  }
  for (int i = 0; i < std::max(options_.async_threads, 1); ++i) {
    workers_.emplace_back([this] { Worker(); });
  }
}

RetryingClient::~RetryingClient() {
  {
    absl::MutexLock lock(&queue_mu_);
    stopping_ = true;
  }
  for (std::thread& t : workers_) t.join();
  std::vector<std::thread> attempt_threads;
  {
    absl::MutexLock lock(&attempt_mu_);
    attempt_stopping_ = true;
    attempt_threads.swap(attempt_threads_);
  }
  for (std::thread& t : attempt_threads) t.join();
}

uint64_t RetryingClient::NextSeq() {
  absl::MutexLock lock(&mu_);
  const uint64_t seq = next_seq_++;
  outstanding_.insert(seq);
  return seq;
}

void RetryingClient::Finish(uint64_t seq) {
  absl::MutexLock lock(&mu_);
  outstanding_.erase(seq);
}

uint64_t RetryingClient::acked() const {
  absl::MutexLock lock(&mu_);
  const uint64_t below = outstanding_.empty() ? next_seq_ : *outstanding_.begin();
  return below - 1;
}

CallResult RetryingClient::Send(const client::Call& call) {
  IdHeaders id;
  id.client_id = client_id_;
  id.seq = NextSeq();
  return Run(call, std::move(id), /*track_seq=*/true);
}

CallResult RetryingClient::SendWithKey(const client::Call& call,
                                       const std::string& idempotency_key) {
  IdHeaders id;
  id.idempotency_key = idempotency_key;
  return Run(call, std::move(id), /*track_seq=*/false);
}

CallResult RetryingClient::Run(const client::Call& call, IdHeaders id,
                               bool track_seq) {
  CallResult result;
  result.seq = id.seq;
  result.started = env_.Now();
  if (absl::Status s = ValidateRetryOptions(options_.retry); !s.ok()) {
    if (track_seq) Finish(id.seq);
    result.status = s;
    result.finished = result.started;
    return result;
  }
  {
    absl::MutexLock lock(&latency_mu_);
    hedge_budget_.OnRequest();
  }
  absl::Status last_error;
  int timeouts = 0;  // Rounds of this request that ran out of time.
  for (;;) {
    if (track_seq && options_.send_ack) {
      const uint64_t a = acked();
      if (a >= options_.first_seq) id.acked = a;
    }
    const absl::Time now = env_.Now();
    const absl::Time deadline = result.started + options_.retry.deadline;
    absl::Duration timeout;
    absl::Duration hedge_delay;
    {
      absl::MutexLock lock(&latency_mu_);
      timeout = std::min(AttemptTimeout(options_.retry, latencies_, timeouts),
                         deadline - now);
      hedge_delay = HedgeDelay(options_.retry, latencies_, timeout);
    }
    const absl::Time round_started = now;
    std::shared_ptr<Round> round =
        RunRound(call, id, timeout, hedge_delay, deadline,
                 /*fresh=*/result.attempts > 0, result);
    absl::StatusOr<Response> outcome = absl::UnknownError("");
    bool timed_out = false;
    {
      absl::MutexLock lock(&round->mu);
      outcome = round->answer ? std::move(*round->answer) : round->last_failure;
      timed_out = round->timed_out;
    }
    const absl::Time after = env_.Now();
    if (outcome.ok()) result.response = *outcome;
    if (!IsRetryable(outcome)) {
      if (outcome.ok()) {
        result.status = absl::OkStatus();
      } else {
        result.status = outcome.status();
      }
      break;
    }
    if (timed_out) ++timeouts;
    if (result.first_failure == absl::InfiniteFuture()) {
      // The outage began when the failed attempt was sent (a reply that
      // never came was lost at some point after that).
      result.first_failure = round_started;
    }
    last_error = outcome.ok()
                     ? absl::Status(outcome->code, outcome->body)
                     : outcome.status();
    const RetryDecision d = DecideRetry(
        options_.retry, true, result.attempts, result.started, after,
        outcome.ok() ? outcome->retry_after : absl::ZeroDuration(),
        env_.Random());
    if (!d.retry) {
      result.status = absl::DeadlineExceededError(absl::StrFormat(
          "gave up after %d attempts in %s; last error: %s", result.attempts,
          absl::FormatDuration(after - result.started), last_error.ToString()));
      break;
    }
    SPDLOG_DEBUG("retrying seq {} after {}: {}", id.seq,
                 absl::FormatDuration(d.delay), last_error.ToString());
    env_.SleepFor(d.delay);
  }
  result.finished = env_.Now();
  if (result.first_failure != absl::InfiniteFuture()) {
    result.outage = result.finished - result.first_failure;
  }
  if (track_seq) Finish(id.seq);
  return result;
}

std::shared_ptr<RetryingClient::Round> RetryingClient::RunRound(
    const client::Call& call, const IdHeaders& id, absl::Duration timeout,
    absl::Duration hedge_delay, absl::Time deadline, bool fresh,
    CallResult& result) {
  auto round = std::make_shared<Round>();
  round->id = id;
  ++result.attempts;
  if (hedge_delay == absl::InfiniteDuration()) {
    // No hedge: the attempt runs on the caller's thread.
    round->call = &call;
    {
      absl::MutexLock lock(&round->mu);
      round->in_flight = 1;
    }
    Attempt(*round, timeout, fresh);
    return round;
  }
  round->owned_call = call;
  round->call = &*round->owned_call;
  absl::MutexLock lock(&round->mu);
  auto launch = [&](absl::Duration t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(round->mu) {
    ++round->in_flight;
    RunOnAttemptThread([this, round, t, fresh] { Attempt(*round, t, fresh); });
  };
  launch(timeout);
  int launched = 1;
  absl::Time next_hedge = env_.Now() + hedge_delay;
  const absl::Condition settled(round.get(), &Round::Settled);
  while (!round->Settled()) {
    if (launched >= options_.retry.hedge.max_in_flight) {
      round->mu.Await(settled);
      break;
    }
    if (env_.AwaitWithTimeout(round->mu, settled, next_hedge - env_.Now())) break;
    // The hedge delay passed and no attempt has answered: one more beside
    // them, with the same id, if the budget allows and time is left.
    const absl::Time now = env_.Now();
    bool allowed = now < deadline;
    if (allowed) {
      absl::MutexLock budget_lock(&latency_mu_);
      allowed = hedge_budget_.TrySpend();
    }
    if (!allowed) {
      launched = options_.retry.hedge.max_in_flight;  // Just wait.
      continue;
    }
    ++launched;
    ++result.attempts;
    ++result.hedges;
    launch(std::min(timeout, deadline - now));
    next_hedge = now + hedge_delay;
  }
  return round;
}

void RetryingClient::Attempt(Round& round, absl::Duration timeout, bool fresh) {
  const absl::Time start = env_.Now();
  absl::StatusOr<Response> outcome =
      transport_->Attempt(*round.call, round.id, timeout, fresh);
  const absl::Duration took = env_.Now() - start;
  const bool retryable = IsRetryable(outcome);
  const bool timed_out =
      !outcome.ok() && outcome.status().code() == absl::StatusCode::kDeadlineExceeded;
  // Latency samples: answers that end a request (a framework "in progress"
  // or 503 says little about the service's latency), and timeouts as the
  // lower bound they are, so that a server that became slower than the
  // timeout pulls the estimate up instead of never being sampled.
  if ((outcome.ok() && !retryable) || timed_out) {
    absl::MutexLock lock(&latency_mu_);
    latencies_.Record(timed_out ? std::max(took, timeout) : took);
  }
  absl::MutexLock lock(&round.mu);
  --round.in_flight;
  round.timed_out = round.timed_out || timed_out;
  switch (JudgeAttempt(retryable, round.in_flight)) {
    case AttemptVerdict::kAnswer:
      if (!round.answer) round.answer = std::move(outcome);  // First wins.
      break;
    case AttemptVerdict::kWaitForOther:
    case AttemptVerdict::kRetry:
      round.last_failure = std::move(outcome);
      break;
  }
}

void RetryingClient::RunOnAttemptThread(std::function<void()> job) {
  absl::MutexLock lock(&attempt_mu_);
  attempt_queue_.push_back(std::move(job));
  if (static_cast<int>(attempt_queue_.size()) > idle_attempt_threads_) {
    attempt_threads_.emplace_back([this] { AttemptWorker(); });
  }
}

void RetryingClient::AttemptWorker() {
  for (;;) {
    std::function<void()> job;
    {
      absl::MutexLock lock(&attempt_mu_);
      ++idle_attempt_threads_;
      attempt_mu_.Await(absl::Condition(
          +[](RetryingClient* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->attempt_mu_) {
            return c->attempt_stopping_ || !c->attempt_queue_.empty();
          },
          this));
      --idle_attempt_threads_;
      if (attempt_queue_.empty()) return;  // Stopping and drained.
      job = std::move(attempt_queue_.front());
      attempt_queue_.pop_front();
    }
    job();
  }
}

std::future<CallResult> RetryingClient::SendAsync(const client::Call& call) {
  auto promise = std::make_shared<std::promise<CallResult>>();
  std::future<CallResult> f = promise->get_future();
  SendAsync(call, [promise](CallResult r) { promise->set_value(std::move(r)); });
  return f;
}

void RetryingClient::SendAsync(const client::Call& call,
                               std::function<void(CallResult)> done) {
  // The seq is taken now, so the order of SendAsync calls is the seq order.
  IdHeaders id;
  id.client_id = client_id_;
  id.seq = NextSeq();
  absl::MutexLock lock(&queue_mu_);
  queue_.push_back([this, call, id = std::move(id), done = std::move(done)] {
    done(Run(call, id, /*track_seq=*/true));
  });
}

void RetryingClient::Worker() {
  for (;;) {
    std::function<void()> job;
    {
      absl::MutexLock lock(&queue_mu_);
      queue_mu_.Await(absl::Condition(
          +[](RetryingClient* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->queue_mu_) {
            return c->stopping_ || !c->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // Stopping and drained.
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job();
  }
}

}  // namespace baton::framework::client

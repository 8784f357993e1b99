#include "framework/client/client.h"

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

RetryingClient::RetryingClient(std::unique_ptr<Transport> transport,
                               ClientOptions options, Environment& env)
    : transport_(std::move(transport)),
      options_(std::move(options)),
      env_(env),
      client_id_(options_.client_id),
      next_seq_(options_.first_seq) {
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
  absl::Status last_error;
  for (;;) {
    if (track_seq && options_.send_ack) {
      const uint64_t a = acked();
      if (a >= options_.first_seq) id.acked = a;
    }
    const absl::Time now = env_.Now();
    const absl::Duration left = result.started + options_.retry.deadline - now;
    const absl::Duration timeout = std::min(options_.retry.attempt_timeout, left);
    ++result.attempts;
    const absl::Time attempt_started = now;
    absl::StatusOr<Response> outcome =
        transport_->Attempt(call, id, timeout, /*fresh=*/result.attempts > 1);
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
    if (result.first_failure == absl::InfiniteFuture()) {
      // The outage began when the failed attempt was sent (a reply that
      // never came was lost at some point after that).
      result.first_failure = attempt_started;
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

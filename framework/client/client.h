// baton's retrying client: sends requests so that a crash of the server (or a
// take-over of its address by another host) is invisible to the caller except
// as latency.
//
//   auto transport = client::MakeHttpTransport({.host = "kv.example", .port = 8080});
//   client::RetryingClient c(std::move(*transport), {});
//   client::CallResult r = c.Send({.method = "POST", .target = "/kv/n/incr",
//                                  .body = R"({"by":1})"});
//   if (r.status.ok()) use(r.response.body, r.response.replayed, r.attempts);
//
// Every request gets a request id (client id + sequence number) that every
// retry of it reuses, so the server executes it at most once and answers
// retries from the completion record. Each request also carries the client's
// acknowledged watermark (the highest seq such that this client will never
// send any seq <= it again), so the server can drop those records.
// Retry policy, adaptive attempt timeouts and hedging:
// framework/client/retry.h.
//
// A client id must not be shared by two live clients, and a client that is
// restarted with the same id must start above every seq it used before
// (ClientOptions::first_seq); the default, a random id per client object,
// needs neither.
//
// Thread safety: thread-safe; any number of calls may run at once.
#ifndef BATON_FRAMEWORK_CLIENT_CLIENT_H_
#define BATON_FRAMEWORK_CLIENT_CLIENT_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "framework/client/retry.h"
#include "framework/client/transport.h"

namespace baton::framework::client {

struct ClientOptions {
  // Client id sent with every request: 1..128 printable ASCII, no spaces.
  // Default: empty = "c-" + 16 random hex digits.
  std::string client_id;
  // Sequence number of the first request. Default: 1.
  uint64_t first_seq = 1;
  // Send the acknowledged watermark (Baton-Ack). Default: true.
  bool send_ack = true;
  RetryOptions retry;
  // Threads that run asynchronous calls (SendAsync); each runs one call's
  // retry loop at a time. Default: 8.
  int async_threads = 8;
};

// The outcome of a call, with what it took.
struct CallResult {
  // OK when the server gave a final answer (whatever its code: look at
  // response.code). kDeadlineExceeded: gave up after the deadline (the request
  // may or may not have been executed; retrying it with the same seq is not
  // possible, its id is acknowledged). kInvalidArgument: bad call.
  absl::Status status;
  Response response;  // The final answer (or the last one, if any).
  uint64_t seq = 0;   // The request's sequence number.
  int attempts = 0;   // Attempts made, hedges included (1: no retry).
  int hedges = 0;     // Of those, hedged attempts (sent beside another).
  // When the first attempt started, when the first attempt that failed was
  // sent (InfiniteFuture if none failed), and when the call ended
  // (Environment time).
  absl::Time started;
  absl::Time first_failure = absl::InfiniteFuture();
  absl::Time finished;
  // finished - first_failure when an attempt failed, else zero: the outage
  // this request saw.
  absl::Duration outage;
};

class RetryingClient {
 public:
  // `env`: time, sleep, randomness (RealEnvironment() outside tests); must
  // outlive the client.
  RetryingClient(std::unique_ptr<Transport> transport, ClientOptions options,
                 Environment& env = RealEnvironment());
  // Finishes queued asynchronous calls first, then waits for hedged attempts
  // whose answers were discarded (each at most its attempt timeout).
  ~RetryingClient();

  RetryingClient(const RetryingClient&) = delete;
  RetryingClient& operator=(const RetryingClient&) = delete;

  // Sends `call` with a new seq and retries it until a final answer or the
  // deadline. Blocks.
  CallResult Send(const Call& call);

  // Sends `call` with a caller-chosen idempotency key instead of a seq (for
  // keys that must survive a client restart). Same retries.
  CallResult SendWithKey(const Call& call, const std::string& idempotency_key);

  // Asynchronous forms: the retry loop runs on one of the client's threads.
  std::future<CallResult> SendAsync(const Call& call);
  void SendAsync(const Call& call, std::function<void(CallResult)> done);

  const std::string& client_id() const { return client_id_; }
  // The current acknowledged watermark.
  uint64_t acked() const;

 private:
  struct Round;
  CallResult Run(const Call& call, IdHeaders id, bool track_seq);
  // One round of attempts of a request: one attempt (on this thread when
  // there is no hedge), plus hedges every `hedge_delay` (infinite: none)
  // while none answered; each attempt gets `timeout`, none reaches past the
  // request's `deadline`. Counts the attempts in `result`; returns the
  // round, settled (an answer, or every attempt failed).
  std::shared_ptr<Round> RunRound(const Call& call, const IdHeaders& id,
                                  absl::Duration timeout, absl::Duration hedge_delay,
                                  absl::Time deadline, bool fresh, CallResult& result);
  // Sends one attempt of `round` and settles its outcome there.
  void Attempt(Round& round, absl::Duration timeout, bool fresh);
  // Runs `job` on a thread of the attempt pool (grown on demand).
  void RunOnAttemptThread(std::function<void()> job);
  void AttemptWorker();
  uint64_t NextSeq();
  void Finish(uint64_t seq);
  void Worker();

  std::unique_ptr<Transport> transport_;
  const ClientOptions options_;
  Environment& env_;
  std::string client_id_;

  mutable absl::Mutex mu_;
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_);
  // Seqs issued and not finished; the watermark is just below the smallest.
  std::set<uint64_t> outstanding_ ABSL_GUARDED_BY(mu_);

  // Observed latencies and the hedge budget (retry.h).
  absl::Mutex latency_mu_;
  LatencyWindow latencies_ ABSL_GUARDED_BY(latency_mu_);
  HedgeBudget hedge_budget_ ABSL_GUARDED_BY(latency_mu_);

  absl::Mutex queue_mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(queue_mu_);
  bool stopping_ ABSL_GUARDED_BY(queue_mu_) = false;
  std::vector<std::thread> workers_;

  // The attempt pool: threads running hedged rounds' attempts, so that the
  // caller can start a hedge while an attempt blocks and return with the
  // first answer while the others finish on their own.
  absl::Mutex attempt_mu_;
  std::deque<std::function<void()>> attempt_queue_ ABSL_GUARDED_BY(attempt_mu_);
  int idle_attempt_threads_ ABSL_GUARDED_BY(attempt_mu_) = 0;
  bool attempt_stopping_ ABSL_GUARDED_BY(attempt_mu_) = false;
  std::vector<std::thread> attempt_threads_ ABSL_GUARDED_BY(attempt_mu_);
};

// Whether an attempt's outcome may be retried with the same id (and, when
// hedging, whether to keep waiting for another attempt): transport
// errors kUnavailable/kDeadlineExceeded; HTTP 503, HTTP 409 with error code
// request_in_progress or aborted; gRPC UNAVAILABLE, DEADLINE_EXCEEDED,
// CANCELLED without baton's trailers (a call that raced with a listener's
// GOAWAY; the transport reports it as kUnavailable), and ABORTED with error
// code request_in_progress or aborted. Never a replay.
bool IsRetryable(const absl::StatusOr<Response>& outcome);

}  // namespace baton::framework::client

#endif  // BATON_FRAMEWORK_CLIENT_CLIENT_H_

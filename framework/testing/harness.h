// The test kit for handler authors: runs requests through the real request
// pipeline (framework/pipeline.h) on the in-memory store, without sockets,
// and tells for each scenario whether exactly-once held.
//
//   baton::testing::Harness h;
//   ASSERT_TRUE(h.Route("POST", "/accounts/{id}/deposit", Deposit).ok());
//   auto deposit = [](std::string id) {
//     return baton::testing::Post("/accounts/a/deposit", "10").Key(id);
//   };
//   EXPECT_TRUE(baton::testing::ExactlyOnce(h.LoseReplyThenRetry(deposit("d-1"))));
//   EXPECT_TRUE(baton::testing::ExactlyOnce(h.SendConcurrently(deposit("d-2"), 8)));
//
// (ExactlyOnce & co. are in framework/testing/assertions.h; docs/testing.md
// is the guide.) Give each scenario a request id of its own: an id executed
// before answers every attempt with a replay (committed_runs 0).
//
// A Call is one request as a client sends it: HTTP-shaped (method, target,
// headers, body; routed by the harness's Router and identified by its
// headers exactly as the HTTP front end does, framework/request_builder.h),
// or straight to a Handler with a Request and RequestId of your own. Every
// attempt of a scenario builds its Request afresh, as a server does for
// every arrival.
//
// Scenarios (each returns a Report):
//   Send                 one attempt.
//   Retry                an attempt and retries, one after another, with
//                        the same id; optionally the first reply is lost,
//                        the server restarts (new pipelines: the in-process
//                        state -- running attempts, remembered seqs -- is
//                        gone, the store's data stays), simulated time
//                        passes and garbage collection runs before each
//                        retry.
//   LoseReplyThenRetry   Retry with the first reply lost (the commit is
//                        durable, the client never saw the answer).
//   SendConcurrently     copies at once; by default each on a server of its
//                        own (several hosts on one store: dedup is left to
//                        the commit's conditions), each copy's first handler
//                        run held, once it returned, until every copy has
//                        run its handler: all read the same state and race
//                        to commit (Report::overlapped says whether they
//                        did); or all on one server (dedup in process).
//   SendWithConflicts    the call's first n commits conflict: the handler
//                        runs again each time.
//   SendWithFaults       the call's commits get the given store faults, in
//                        order (unknown outcome applied or not, refused,
//                        conflict, latency), then the client retries.
// Anything else: program faults() (framework/testing/fault_store.h) before
// Send; AdvanceTime(), CollectGarbage() and RestartServers() between sends.
//
// The Report of a scenario: every attempt's answer (reply or error, as the
// HTTP front end would answer it, and whether it was a replay), how often
// the handler ran, and how many of those runs were committed (their writes
// reached the store: must be <= 1 for a request with an id). A run counts as
// committed when its commit is durable, whatever the client was answered
// (an "unknown outcome" commit that was applied counts).
//
// Execution modes (HarnessOptions::execution): kInline runs requests with
// RequestPipeline::ExecuteAsync on a store that commits on its own thread,
// the HTTP front end's path on RocksDB (the default deployment); kBlocking
// runs them with Execute on a store that commits on the caller's thread, the
// path on etcd. HarnessOptions::etcd_like_reads makes the pipeline read as
// on etcd (stale-allowed reads, lookups skipped); the store's frozen replica
// (store().FreezeReplica()) then serves stale reads. Test both modes with a
// TEST_P when a handler matters.
//
// Time: the pipelines use clock() (a SimulatedClock); only AdvanceTime
// moves it. Real time is used for waiting on attempts (attempt_timeout),
// the concurrency hold (at most 2 s) and injected latency.
//
// Thread safety: a Harness is used from one test thread (its scenarios make
// their own threads). Handlers run on harness threads and on the store's
// commit thread, concurrently for SendConcurrently.
#ifndef BATON_FRAMEWORK_TESTING_HARNESS_H_
#define BATON_FRAMEWORK_TESTING_HARNESS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "framework/clock.h"
#include "framework/handler.h"
#include "framework/http_server.h"
#include "framework/pipeline.h"
#include "framework/testing/fault_store.h"
#include "storage/memory/memory_store.h"

namespace baton::testing {
namespace internal {
struct HarnessState;
}  // namespace internal

// One request as a client sends it (see the file comment).
class Call {
 public:
  // Routed by the harness's Router; the id comes from the headers.
  static Call Http(std::string method, std::string target,
                   std::string body = "");
  // To `handler` with `request` as given (operation, path, params, body,
  // metadata); the id from Key() / ClientSeq() (default: none).
  static Call Direct(std::shared_ptr<framework::Handler> handler,
                     framework::Request request);

  // A header (HTTP) or metadata entry (Direct: name lower-cased, repeated
  // names joined with ","). On a temporary, each setter returns the Call by
  // value: `auto call = Post("/x").Key("k");`.
  Call& Header(std::string name, std::string value) &;
  Call Header(std::string name, std::string value) && {
    return std::move(Header(std::move(name), std::move(value)));
  }
  // The idempotency key (HTTP: an `Idempotency-Key: "key"` header).
  Call& Key(std::string key) &;
  Call Key(std::string key) && { return std::move(Key(std::move(key))); }
  // The retrying client's id (HTTP: Baton-Client-Id, Baton-Seq, Baton-Ack).
  Call& ClientSeq(std::string client, uint64_t seq,
                  std::optional<uint64_t> acked = std::nullopt) &;
  Call ClientSeq(std::string client, uint64_t seq,
                   std::optional<uint64_t> acked = std::nullopt) && {
    return std::move(ClientSeq(std::move(client), seq, acked));
  }
  // Request::principal as a TLS client certificate would set it (HTTP
  // calls then pass HarnessOptions::authenticate, if any). Default: "".
  Call& Principal(std::string principal) &;
  Call Principal(std::string principal) && {
    return std::move(Principal(std::move(principal)));
  }
  // Request::local_address (selects a fenced take-over slot). Default: "".
  Call& LocalAddress(std::string address) &;
  Call LocalAddress(std::string address) && {
    return std::move(LocalAddress(std::move(address)));
  }

  // "POST /accounts/a/deposit" (for reports).
  std::string Describe() const;

 private:
  friend class Harness;
  Call() = default;

  bool http_ = true;
  std::string method_, target_, body_, local_address_, principal_;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::shared_ptr<framework::Handler> handler_;  // Direct.
  framework::Request request_;                   // Direct.
  framework::RequestId id_;                      // Direct.
};

Call Get(std::string target);
Call Post(std::string target, std::string body = "");
Call Put(std::string target, std::string body = "");
Call Delete(std::string target);

// One attempt's answer.
struct Attempt {
  // The pipeline's answer (a request refused before it: kNotFound (404),
  // kUnimplemented (405), kInvalidArgument (400), kUnauthenticated (401),
  // kPermissionDenied (403)).
  absl::StatusOr<framework::PipelineResult> result;
  // As the HTTP front end answers it: the status (200, 404, 422, 503, ...)
  // and, for errors, the error code ("unavailable", ...).
  int http_status = 0;
  std::string error_code;
  bool reply_lost = false;  // The harness dropped this reply.
  int server = 0;           // Which server (pipeline) answered.

  bool ok() const { return result.ok(); }
  bool replayed() const { return result.ok() && result->replayed; }
  // The reply; only when ok().
  const framework::Reply& reply() const { return result->reply; }
  // The reply body, or the error message.
  std::string_view body() const;
};

struct Report {
  std::string call;               // Call::Describe().
  std::vector<Attempt> attempts;  // In the order they were sent.
  int handler_runs = 0;           // Runs of the handler, all attempts.
  int committed_runs = 0;         // Of those, runs whose commit is durable.
  // SendConcurrently: every copy had run its handler before any of them
  // committed.
  bool overlapped = false;

  const Attempt& first() const { return attempts.front(); }
  const Attempt& last() const { return attempts.back(); }
  int replies() const;  // Attempts answered with a reply (ok()).
  int replays() const;  // ... flagged as a replay.
  // Every attempt answered with a reply got the same bytes (code, content
  // type, body).
  bool SameReplies() const;
  // No run committed twice: committed_runs <= 1.
  bool AtMostOnce() const { return committed_runs <= 1; }
  // Every attempt got a reply, all the same bytes, and exactly one handler
  // run was committed.
  bool ExactlyOnce() const;

  std::string ToString() const;
};
std::ostream& operator<<(std::ostream& os, const Report& report);

struct HarnessOptions {
  enum class Execution { kInline, kBlocking };
  // See the file comment. Default: kInline.
  Execution execution = Execution::kInline;
  // Stale-allowed reads and skipped lookups, as on etcd. Default: false.
  bool etcd_like_reads = false;
  // The pipelines' options (max_attempts, in_flight_wait, retention, ...).
  // Default: the pipeline's defaults.
  framework::PipelineOptions pipeline;
  // The service's authentication hook (HttpServerOptions::authenticate),
  // run on HTTP calls as the front end runs it. Default: none.
  std::function<absl::StatusOr<std::string>(const framework::Request&)>
      authenticate;
  // An attempt not answered within this real time is reported as
  // kDeadlineExceeded (a wedged pipeline). Default: 30 s.
  absl::Duration attempt_timeout = absl::Seconds(30);
};

// How Harness::Retry retries: RetryOptions().Times(2).Restart().
struct RetryOptions {
  // How many retries follow the first attempt. Default: 1.
  int retries = 1;
  // The first attempt's reply never reaches the client. Default: false.
  bool lose_first_reply = false;
  // The servers restart (new pipelines) before each retry. Default: false.
  bool restart = false;
  // Simulated time that passes before each retry. Default: none.
  absl::Duration wait = absl::ZeroDuration();
  // One garbage-collection pass before each retry (after the wait).
  // Default: false.
  bool collect_garbage = false;

  RetryOptions& Times(int n) { retries = n; return *this; }
  RetryOptions& LoseFirstReply() { lose_first_reply = true; return *this; }
  RetryOptions& Restart() { restart = true; return *this; }
  RetryOptions& Wait(absl::Duration d) { wait = d; return *this; }
  RetryOptions& CollectGarbage() { collect_garbage = true; return *this; }
};

class Harness {
 public:
  explicit Harness(HarnessOptions options = {});
  ~Harness();

  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  // --- Set-up -------------------------------------------------------------
  // Adds a route (Router::Add); errors as Router::Add.
  [[nodiscard]] absl::Status Route(std::string_view method,
                                   std::string_view pattern,
                                   std::shared_ptr<framework::Handler> handler);
  [[nodiscard]] absl::Status Route(std::string_view method,
                                   std::string_view pattern,
                                   framework::HandlerFunction handler);
  // Adds every route of `router`, e.g. a service's whole HTTP side:
  //   ServiceDefinition service("shop"); DefineShop(service);
  //   ASSERT_TRUE(harness.Routes(service.http()).ok());
  // Errors as Router::Add (the first one).
  [[nodiscard]] absl::Status Routes(const framework::Router& router);
  // Writes `key` directly in the store (no pipeline, no faults), e.g. the
  // state a test starts from. Errors: the store's.
  [[nodiscard]] absl::Status Put(std::string_view key, std::string_view value);
  // Reads `key` directly from the store (no faults).
  [[nodiscard]] absl::StatusOr<storage::Versioned> Get(std::string_view key);
  // The value of `key`; nullopt when absent or unreadable.
  std::optional<std::string> Value(std::string_view key);

  // --- Scenarios ------------------------------------------------------------
  Report Send(const Call& call);
  Report Retry(const Call& call, RetryOptions options = {});
  Report LoseReplyThenRetry(const Call& call, RetryOptions options = {});
  // `copies` >= 1 at once; `same_server`: all on server 0.
  Report SendConcurrently(const Call& call, int copies,
                          bool same_server = false);
  // The first `conflicts` commits of the call fail with a conflict.
  Report SendWithConflicts(const Call& call, int conflicts);
  // The call's commits get `faults` in order; then up to `retries`
  // retries while the answer is a retryable error (kUnavailable, kAborted,
  // kUnknown, kDeadlineExceeded).
  Report SendWithFaults(const Call& call, std::vector<Fault> faults,
                        int retries = 3);

  // --- Time, GC, restarts -----------------------------------------------------
  void AdvanceTime(absl::Duration d) { clock_.Advance(d); }
  // One garbage-collection pass on every server; the records deleted.
  [[nodiscard]] absl::StatusOr<size_t> CollectGarbage();
  // Replaces every server's pipeline by a new one (a process restart).
  void RestartServers();

  // --- Parts ----------------------------------------------------------------
  storage::MemoryStore& store() { return *store_; }  // Without faults.
  FaultStore& faults() { return *faults_; }          // What servers use.
  framework::SimulatedClock& clock() { return clock_; }
  // Server `i`'s pipeline (created on first use).
  framework::RequestPipeline& pipeline(int server = 0);

 private:
  struct Resolved;

  // Builds the call's Request and id, or fills *refused with the answer to
  // a request that does not route or identify.
  std::optional<Resolved> Resolve(const Call& call, Attempt* refused);
  // One attempt of `call` on `server`; `hold`: its first handler run waits
  // for the other copies (SendConcurrently).
  Attempt RunAttempt(const Call& call, int server, bool hold = false);
  // Runs `body` as the current scenario; fills in the counts.
  Report RunScenario(const Call& call,
                     const std::function<void(Report&)>& body);

  const HarnessOptions options_;
  framework::SimulatedClock clock_;
  std::unique_ptr<storage::MemoryStore> store_;
  std::unique_ptr<FaultStore> faults_;
  framework::Router router_;
  // What handlers and store hooks share with the harness.
  std::unique_ptr<internal::HarnessState> state_;
  std::vector<std::unique_ptr<framework::RequestPipeline>> servers_;
};

}  // namespace baton::testing

#endif  // BATON_FRAMEWORK_TESTING_HARNESS_H_

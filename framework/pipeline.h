// The request pipeline: makes a handler's execution exactly-once and durable.
//
//   0. Scope     every key the pipeline keeps for a request is scoped by the
//                request's authenticated principal (Request::principal): two
//                principals never share a completion record, a watermark, an
//                in-flight mark or a pending acknowledgement, even with the
//                same client id or idempotency key. Unauthenticated requests
//                (empty principal) share one global scope, today's layout.
//   1. Identify  the request by its RequestId: (client id, sequence number)
//                from the retrying client, or an opaque idempotency key.
//   2. Dedup     a completion record exists -> its reply, byte for byte,
//                flagged as a replay; the same id with a different request
//                (SHA-256 fingerprint over operation, path and body) ->
//                PipelineError::kKeyReused, never the old reply; a retry that
//                arrives while the first attempt runs in this process waits
//                for it (at most PipelineOptions::in_flight_wait, on the
//                injected Clock; no thread is parked for it), then gets
//                PipelineError::kInProgress. Never a second execution.
//   3. Execute   the handler on a fresh Transaction. A handler that throws is
//                answered kInternal "handler failed" (logged, counted);
//                nothing is committed.
//   4. Commit    one atomic commit: read versions unchanged + completion
//                record absent -> the writes + the completion record (reply,
//                fingerprint, time) + its GC index entry. A conflict on the
//                read set re-runs the handler (at most max_attempts runs, then
//                kAborted); a conflict on the record returns the record; an
//                unknown outcome (kUnknown) is resolved by reading the record,
//                and if it is absent the handler runs again under the same
//                "record absent" condition, so at most one run ever commits.
//   5. Reply     the result is delivered only after the commit is durable.
//   6. GC        CollectGarbage() (or the background thread started by
//                StartBackgroundGc) deletes completion records at or below a
//                client's acknowledged watermark, records older than the
//                retention, and watermarks untouched for longer than the
//                retention, through ordered indexes (no full scan).
//
// One algorithm. ExecuteAsync() runs the steps above as a chain of
// continuations; Execute() runs the very same chain with the calling thread
// as its executor (every continuation -- a commit's callback, the end of a
// wait for a running attempt -- is handed back to that thread) and waits for
// its result.
//
// Acknowledgements. A (client, seq) request may carry `acked`: the client
// has the replies of every seq <= acked, so GC may delete their records and
// persist the watermark. An ack is accepted only when acked < seq (else it is
// ignored and counted), and noted for GC only when the request is answered
// with a reply (executed, read-only, or replayed from its own record) --
// never when it failed validation, was refused (410, 422, 409, fence) or
// conflicted. At most kMaxPendingAcks clients' acks wait for GC; beyond that
// new clients' acks are dropped (counted), never memory growth.
//
// Limits. A reply that would be stored in a completion record is at most
// PipelineOptions::max_reply_bytes, every value a handler writes at most
// max_value_bytes (Transaction::Put refuses it); either refusal is answered
// kResourceExhausted naming the limit and nothing is committed.
//
// Reads (one round trip each on a replicated store; docs/framework.md,
// "Pipeline reads"). On a store whose StaleReadsAreCheaper() is false
// (RocksDB) every read below is kLatest, no lookup is skipped and the commit
// carries no watermark condition. Otherwise (etcd):
//   The dedup lookup reads the record and the client's watermark in one
//   StableStore::GetMany, and the first handler run reads through
//   ReadConsistency::kMayBeStale: both may miss recent commits. That is safe
//   because the commit re-checks every one of them: the handler's read
//   versions unchanged, the record absent, the watermark at the version the
//   lookup saw (so a watermark that grew past the request's seq fails the
//   commit; watermarks only grow while they exist, so a stale one can only
//   under-report and a 410 it gives is right). Any failed condition of a
//   stale attempt re-reads the record and watermark with kLatest (a record
//   found answers, as a replay: never a second execution) and runs the
//   handler again on latest reads, bounded by max_attempts. A read-only reply
//   built on stale reads is confirmed by one empty conditional commit (read
//   versions, record absent, watermark) before it is returned, so replies
//   stay linearizable.
//   A (client, seq) request whose seq arrives here for the first time (the
//   pipeline remembers the last 4096 seqs of each client it served) and
//   whose client's watermark it has read before skips the lookup: it is
//   almost surely new, and if it is not (a retry first sent to another
//   host), its commit fails on the record, which is then read and replayed.
//   A PUT-like request thus costs its handler's stale reads and one commit;
//   a blind write one commit.
//
// Store faults on reads are never final: a lookup, a read-only confirmation
// or a conditions-only commit whose outcome is unknown (kUnknown) is answered
// kUnavailable (retry). Only a writing request without an id can end with
// PipelineError::kOutcomeUnknown.
//
// Requests without an id (RequestId::None()) are executed once per arrival:
// no dedup and no completion record. Requests whose handler writes nothing
// (read-only) store no completion record either: a retry runs them again.
//
// Framework keys live under storage::kReservedPrefix + "fw/". <scope> is
// empty for unauthenticated requests and "a/" + <principal, escaped> + "\0"
// otherwise (the escape maps \0 to \1\1 and \1 to \1\2, so the first \0
// ends the principal and no two (principal, id) pairs share a key):
//   \xff fw/c/<scope>s/<client>\0<seq, 16 hex>   completion record (client, seq)
//   \xff fw/c/<scope>k/<idempotency key>         completion record (key)
//   \xff fw/t/<micros, 16 hex>/<scope><s/... | k/...>  age index of a record
//   \xff fw/w/<scope><client>                    client's collected watermark
//   \xff fw/u/<micros, 16 hex>/<scope><client>   age index of a watermark
//
// Thread safety: thread-safe. Execute() blocks on store calls and is meant to
// be called from worker threads, any number concurrently. ExecuteAsync() is
// meant for event-loop threads when the store commits asynchronously
// (ExecutesInline()).
#ifndef BATON_FRAMEWORK_PIPELINE_H_
#define BATON_FRAMEWORK_PIPELINE_H_

#include <array>
#include <atomic>
#include <bitset>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "framework/clock.h"
#include "framework/fence.h"
#include "framework/handler.h"
#include "framework/store_wait.h"
#include "storage/stable_store.h"

namespace baton::framework {

// Who a request is, for dedup.
struct RequestId {
  enum class Kind { kNone, kClientSeq, kIdempotencyKey };
  Kind kind = Kind::kNone;
  // kClientSeq: 1..128 printable ASCII characters, no spaces.
  std::string client_id;
  uint64_t seq = 0;
  // kIdempotencyKey: 1..255 printable ASCII characters.
  std::string idempotency_key;
  // kClientSeq only, optional: the client has received the replies of all
  // its requests with seq <= acked; their records may be collected. Only
  // acked < seq is accepted (else ignored and counted), and only once the
  // request is answered with a reply (see "Acknowledgements" above).
  std::optional<uint64_t> acked;

  static RequestId None() { return {}; }
  static RequestId ClientSeq(std::string client, uint64_t seq,
                             std::optional<uint64_t> acked = std::nullopt) {
    RequestId id;
    id.kind = Kind::kClientSeq;
    id.client_id = std::move(client);
    id.seq = seq;
    id.acked = acked;
    return id;
  }
  static RequestId Key(std::string key) {
    RequestId id;
    id.kind = Kind::kIdempotencyKey;
    id.idempotency_key = std::move(key);
    return id;
  }
};

struct PipelineOptions {
  // Runs of the handler for one request when its reads conflict with
  // concurrent commits; then the request fails with kAborted. Default: 16.
  int max_attempts = 16;
  // How long a retry waits for a first attempt of the same id that is still
  // running in this process, before PipelineError::kInProgress. Measured on
  // the pipeline's Clock (checked at least every 50 ms of real time, so a
  // clock that jumps is noticed); the same on Execute() and ExecuteAsync().
  // Default: 5 s.
  absl::Duration in_flight_wait = absl::Seconds(5);
  // Completion records older than this are collected, and so are client
  // watermarks not written for this long (a request older than this may
  // then run again). Default: 24 h.
  absl::Duration retention = absl::Hours(24);
  // Period of the background GC thread (StartBackgroundGc). Default: 60 s.
  absl::Duration gc_interval = absl::Seconds(60);
  // GC deletes at most this many records per commit, fewer when the store
  // accepts fewer operations per commit (StableStore::MaxCommitOps; etcd:
  // half its max_txn_ops). Default: 256.
  size_t gc_batch = 256;
  // Largest reply stored in a completion record (body plus content type), in
  // bytes; a writing request with an id and a bigger reply is answered
  // kResourceExhausted and nothing is committed. Default: 1 MiB.
  size_t max_reply_bytes = size_t{1} << 20;
  // Largest value a handler may write, in bytes: Transaction::Put of a bigger
  // one returns kResourceExhausted and the request commits nothing.
  // Default: 1 MiB.
  size_t max_value_bytes = size_t{1} << 20;
};

// What the pipeline answers: the reply and whether it is a replay of a saved
// one (HTTP: `Idempotent-Replayed: true`).
struct PipelineResult {
  Reply reply;
  bool replayed = false;
};

// Pipeline-level failures, told apart from handler and store errors.
enum class PipelineError {
  kNone,
  // The id was used before for a different request (HTTP 422).
  kKeyReused,
  // The first attempt of this id is still running here (HTTP 409, retry).
  kInProgress,
  // (client, seq) at or below the client's collected watermark: the client
  // acknowledged it and its record is gone, so it cannot be answered again
  // and must not be executed again (HTTP 410).
  kAlreadyAcknowledged,
  // A request without id whose commit outcome is unknown (HTTP 500).
  kOutcomeUnknown,
  // Fencing (framework/fence.h; status kUnavailable, HTTP 503): the request
  // arrived on a take-over slot's address whose fence is not ready here
  // (just taken, released, deposed) -- retry, Retry-After: 0 ...
  kFenceNotReady,
  // ... or its commit found a newer holder's fence: this host is deposed,
  // nothing was written -- retry (the address now leads to the new holder).
  kDeposed,
};

// The PipelineError carried by `status` (kNone for other errors).
PipelineError GetPipelineError(const absl::Status& status);

// Upper bounds (inclusive) of the commit-latency histogram's buckets, in
// microseconds: 100 us .. 10 s, exponential (1-2-5 per decade). The
// histogram has one more bucket for everything above 10 s.
inline constexpr std::array<uint64_t, 16> kCommitLatencyBoundsMicros = {
    100,    200,    500,     1000,    2000,    5000,    10000,   20000,
    50000,  100000, 200000,  500000,  1000000, 2000000, 5000000, 10000000};

// Counters since the pipeline was made; each only grows.
struct PipelineStats {
  uint64_t executed = 0;        // Requests whose handler run was committed.
  uint64_t replayed = 0;        // Requests answered from a completion record.
  uint64_t read_only = 0;       // Requests without writes (no record).
  uint64_t reruns = 0;          // Handler re-runs after a conflict.
  uint64_t unknown_outcomes = 0;// Commits that returned kUnknown.
  uint64_t waited = 0;          // Retries that waited for a running attempt.
  uint64_t collected = 0;       // Completion records deleted by GC.
  // Latest re-reads of a keyed request's record and watermark after a
  // commit (or read-only confirmation) failed a condition (see "Reads").
  uint64_t revalidations = 0;
  // (client, seq) requests that skipped the dedup lookup: first arrival of
  // the seq here, client's watermark known (see "Reads").
  uint64_t lookups_skipped = 0;
  // Acks ignored because acked >= the request's own seq.
  uint64_t acks_refused = 0;
  // Acks dropped because kMaxPendingAcks clients already had one pending.
  uint64_t pending_acks_dropped = 0;
  // CollectGarbage() passes, and those that ended with an error.
  uint64_t gc_passes = 0;
  uint64_t gc_errors = 0;
  // Client watermarks deleted by GC after options.retention untouched.
  uint64_t watermarks_expired = 0;
  // Replies refused for max_reply_bytes; Transaction::Put calls refused for
  // max_value_bytes.
  uint64_t replies_refused = 0;
  uint64_t values_refused = 0;
  // Handler runs that threw (answered kInternal, nothing committed).
  uint64_t handler_exceptions = 0;
  // Latency of the store commits a request makes (writing commits and
  // read-only confirmations), measured on the pipeline's Clock from the
  // call to its result: commit_latency_buckets[i] counts commits that took
  // at most kCommitLatencyBoundsMicros[i] (and more than the bound before);
  // the last bucket counts the rest. Not cumulative. Sum in microseconds.
  std::array<uint64_t, kCommitLatencyBoundsMicros.size() + 1>
      commit_latency_buckets{};
  uint64_t commit_latency_sum_micros = 0;
};

class RequestPipeline {
 public:
  // How many recent seqs per client the pipeline remembers: a (client, seq)
  // request within that window of the highest seq seen here, and not seen
  // here before, skips the dedup lookup (see the file comment).
  static constexpr uint64_t kSeqWindow = 4096;
  // At most this many clients' acknowledgements wait for the next GC pass.
  static constexpr size_t kMaxPendingAcks = 65536;
  // Longest Request::principal, in bytes (any bytes).
  static constexpr size_t kMaxPrincipalBytes = 1024;

  // `store` and `clock` must outlive the pipeline.
  RequestPipeline(storage::StableStore& store, Clock& clock,
                  PipelineOptions options = {});
  ~RequestPipeline();  // Stops background GC and the in-flight timer.

  RequestPipeline(const RequestPipeline&) = delete;
  RequestPipeline& operator=(const RequestPipeline&) = delete;

  // Runs `request` through the pipeline (see the file comment) and waits for
  // the result: ExecuteAsync() with the calling thread as the executor of
  // every step (handler runs, re-runs, commit results), so it blocks on the
  // store and never runs a handler on a store thread.
  // Errors: kInvalidArgument (malformed id or principal), the
  // PipelineErrors above (see GetPipelineError), kAborted (conflicts after
  // max_attempts), kResourceExhausted (max_reply_bytes, max_value_bytes),
  // kInternal "handler failed" (the handler threw), kUnavailable and other
  // store errors (nothing was committed), and any non-OK status the handler
  // returned.
  [[nodiscard]] absl::StatusOr<PipelineResult> Execute(const RequestId& id,
                                                       const Request& request,
                                                       Handler& handler);

  // Called once with what Execute() would have returned.
  using ExecuteCallback =
      absl::AnyInvocable<void(absl::StatusOr<PipelineResult>)>;

  // The pipeline's one algorithm, without waiting: the dedup lookup and the
  // first handler run happen on the calling thread; the commit is handed to
  // StableStore::CommitAsync and `done` runs when it is durable, usually on
  // the store's commit thread, or on the calling thread before ExecuteAsync
  // returns (errors, read-only requests, a store without asynchronous
  // commits). A retry of an id whose first attempt is running here is parked
  // without a thread and resumed (on the thread that ends that attempt) or
  // answered kInProgress by the pipeline's timer thread after
  // in_flight_wait; handler re-runs after a conflict may run on the store's
  // commit thread. `done` must be short and must not block. Same errors as
  // Execute(). `request` and `handler` must stay valid until `done` has been
  // called, and the pipeline until every callback has run.
  void ExecuteAsync(const RequestId& id, const Request& request,
                    Handler& handler, ExecuteCallback done);

  // True when the store commits asynchronously (see
  // StableStore::CommitsAsynchronously), so ExecuteAsync() never blocks on
  // the disk and may run on event-loop threads.
  bool ExecutesInline() const { return store_.CommitsAsynchronously(); }

  // How long requests have been waiting on store reads (the dedup lookup,
  // a handler's Get/GetMany/Scan): since at least one has been in flight
  // without a pause; zero when none is. The reads are synchronous, also
  // under ExecuteAsync(), so a slow store holds the threads that execute
  // requests; the take-over agent's liveness probe uses this to tell a
  // server waiting on its store from a hung one (framework/store_wait.h).
  absl::Duration StoreWaitTime() const { return store_wait_.Current(); }

  // One garbage-collection pass; returns how many completion records it
  // deleted (expired watermarks are counted in Stats()). Safe to call
  // concurrently with Execute().
  [[nodiscard]] absl::StatusOr<size_t> CollectGarbage();

  // A thread that calls CollectGarbage() every options.gc_interval until
  // StopBackgroundGc() or destruction. Idempotent. Call Start/Stop from one
  // owning thread (they are not meant to race with each other).
  void StartBackgroundGc();
  void StopBackgroundGc();

  // Cheap (relaxed atomic loads).
  PipelineStats Stats() const;

  // Fences commits by take-over slot (framework/fence.h): every writing
  // commit of a request whose Request::local_address is a slot's address
  // carries that slot's fence condition; a slot whose fence is not ready
  // refuses writing requests (kFenceNotReady) and a commit that fails on the
  // fence key is refused (kDeposed), its effects discarded. Read-only
  // requests are not fenced (they commit nothing). nullptr: no fencing (the
  // default). `fences` must outlive the pipeline; call before serving.
  void SetFenceTable(FenceTable* fences) {
    fences_.store(fences, std::memory_order_release);
  }

  // SHA-256 over operation, path and body (length-prefixed); what a
  // completion record is matched against.
  static std::string Fingerprint(const Request& request);

 private:
  struct Record;
  struct DedupView;
  class Execution;
  class CallerExecutor;

  // What this process knows of a (client, seq) client.
  struct ClientState {
    uint64_t max_seq = 0;
    // Which seqs in (max_seq - kSeqWindow, max_seq] arrived here: bit
    // seq % kSeqWindow. A fixed 512 bytes per client, so the table's memory
    // is bounded by its client limit whatever the clients send.
    std::bitset<kSeqWindow> recent;
    // The watermark as last read.
    uint64_t watermark_version = 0;
    uint64_t acked = 0;
    bool watermark_known = false;
  };
  // A retry waiting for the running attempt of its id (in_flight_).
  struct Parked {
    std::string key;  // the record key it waits for
    absl::Time deadline;
    // Called once, outside mu_: false when the attempt ended, true when the
    // deadline passed first.
    absl::AnyInvocable<void(bool expired)> resume;
  };

  // Notes that (client, seq) arrived; `client` is the scoped client key.
  // True when this is the first arrival of its seq seen here and the
  // client's watermark is known: *view is then the lookup's result to assume
  // (stale: no record, the known watermark), and the lookup may be skipped.
  bool FirstArrival(const std::string& client, uint64_t seq, DedupView* view);
  // Reads `record_key` and (client, seq ids: `client` non-empty) the
  // client's watermark in one GetMany, stale-allowed or latest.
  absl::StatusOr<DedupView> ReadDedup(const std::string& client,
                                      const std::string& record_key,
                                      bool stale);
  // The conditions that make a commit check `view`: record absent, and the
  // watermark (client, seq ids) still at the version the view saw.
  static void AddDedupConditions(const DedupView& view,
                                 const std::string& record_key,
                                 std::vector<storage::Condition>* conditions);

  // Validates `id` and `request.principal`. *ack: the acknowledgement to
  // note once the request is answered (nullopt: none, or refused).
  absl::Status CheckRequest(const RequestId& id, const Request& request,
                            std::optional<uint64_t>* ack);
  // Remembers `acked` for `client` (scoped) until the next GC pass, unless
  // kMaxPendingAcks other clients are already waiting.
  void NoteAck(const std::string& client, uint64_t acked)
      ABSL_LOCKS_EXCLUDED(mu_);
  void NoteAckLocked(const std::string& client, uint64_t acked)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Parks a retry of `key` until its attempt ends or `deadline`.
  void ParkLocked(std::string key, absl::Time deadline,
                  absl::AnyInvocable<void(bool expired)> resume)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the in-flight mark of `record_key` and resumes its parked retries.
  void ReleaseInFlight(const std::string& record_key) ABSL_LOCKS_EXCLUDED(mu_);
  // The in-flight timer thread: answers parked retries whose deadline passed.
  void TimerLoop();

  // Adds the fence condition of `request`'s slot to `conditions` (noting it
  // in *used), or returns kFenceNotReady.
  absl::Status AddFence(const Request& request,
                        std::vector<storage::Condition>* conditions,
                        FenceDecision* used);
  // A commit failure that is a conflict on the fence key `used` carried:
  // the kDeposed error to return (the slot is marked deposed). Else OK.
  absl::Status DeposedError(const absl::Status& commit_status,
                            const FenceDecision& used);
  void CountCommitLatency(absl::Duration d);

  // options_.gc_batch, capped to what one commit of the store accepts.
  size_t GcBatch() const;
  absl::StatusOr<size_t> CollectByWatermark();
  absl::StatusOr<size_t> CollectByAge();
  absl::StatusOr<size_t> ExpireWatermarks();
  void GcLoop();

  storage::StableStore& store_;
  Clock& clock_;
  StoreWait store_wait_;  // request-path reads in flight
  const PipelineOptions options_;

  absl::Mutex mu_;
  // Record keys whose first attempt is running in this process.
  absl::flat_hash_set<std::string> in_flight_ ABSL_GUARDED_BY(mu_);
  // Retries waiting for an id in in_flight_: by id, by record key, by
  // deadline (the timer's queue).
  absl::flat_hash_map<uint64_t, Parked> parked_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::vector<uint64_t>> parked_by_key_
      ABSL_GUARDED_BY(mu_);
  std::set<std::pair<absl::Time, uint64_t>> parked_deadlines_
      ABSL_GUARDED_BY(mu_);
  uint64_t next_parked_ ABSL_GUARDED_BY(mu_) = 0;
  bool timer_stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::CondVar timer_wake_;
  std::thread timer_thread_;  // started by the first parked retry
  // Acknowledged watermarks (by scoped client) not yet applied by GC.
  absl::flat_hash_map<std::string, uint64_t> pending_acks_ ABSL_GUARDED_BY(mu_);
  bool gc_stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::CondVar gc_wake_;
  std::thread gc_thread_;

  absl::Mutex gc_mu_;  // One GC pass at a time.

  absl::Mutex clients_mu_;
  // By scoped client key.
  absl::flat_hash_map<std::string, ClientState> clients_
      ABSL_GUARDED_BY(clients_mu_);

  std::atomic<FenceTable*> fences_{nullptr};
  std::atomic<uint64_t> attempt_counter_{0};
  const uint64_t instance_nonce_;

  std::atomic<uint64_t> executed_{0}, replayed_{0}, read_only_{0}, reruns_{0},
      unknown_outcomes_{0}, waited_{0}, collected_{0}, revalidations_{0},
      lookups_skipped_{0}, acks_refused_{0}, pending_acks_dropped_{0},
      gc_passes_{0}, gc_errors_{0}, watermarks_expired_{0},
      replies_refused_{0}, values_refused_{0}, handler_exceptions_{0},
      commit_latency_sum_micros_{0};
  std::array<std::atomic<uint64_t>, kCommitLatencyBoundsMicros.size() + 1>
      commit_latency_buckets_{};
};

}  // namespace baton::framework

#endif  // BATON_FRAMEWORK_PIPELINE_H_

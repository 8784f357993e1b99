// The replicated stable store: StableStore (storage/stable_store.h) on an
// etcd v3 cluster (tested with etcd 3.4), for services whose hosts must all
// reach the same state and must not depend on one disk or one host. A commit
// is acknowledged after a quorum of etcd members has it in its raft log.
//
//   baton::storage::EtcdOptions options;
//   options.endpoints = {"10.0.0.1:2379", "10.0.0.2:2379", "10.0.0.3:2379"};
//   options.key_prefix = "kvservice/";
//   absl::StatusOr<std::unique_ptr<StableStore>> store =
//       baton::storage::OpenEtcdStore(options);
//
// Mapping (details in docs/etcd.md)
//   key K            etcd key  key_prefix + K
//   version          the key's mod_revision (store-wide, so it only grows)
//   Commit           one etcd Txn: compare mod_revision == expected version
//                    per condition (0 = absent), then puts/deletes; the
//                    txn's header revision is the returned revision.
//                    Concurrent commits share one Txn as nested Txns
//                    (group_commits), each with its own compares and outcome
//   Scan             one Range over [key_prefix+prefix, its prefix end)
//   GetMany          one Txn of Ranges (serializable for kMayBeStale, and
//                    then only for the keys the read cache does not hold)
//   Ping             Maintenance.Status: OK when the member has a leader
//                    and no alarm
//
// Error codes, beyond the contract's
//   kUnavailable        no endpoint could be reached within dial_timeout, no
//                       leader, or etcd refused before applying (nothing was
//                       written). The message names every endpoint tried.
//   kUnknown            Commit only: the request was sent but no answer came
//                       (deadline, lost connection, etcd's own "request timed
//                       out"). Resolve by reading, never by re-executing.
//   kResourceExhausted  a commit over max_request_bytes or with more than
//                       max_txn_ops conditions or writes; refused before
//                       sending.
//   kUnauthenticated / kPermissionDenied  wrong credentials / etcd's RBAC.
//   kInvalidArgument    bad options at open.
//
// Thread safety: the store is thread-safe; share one per process (it keeps
// one HTTP/2 connection per endpoint, multiplexing concurrent calls).
#ifndef BATON_STORAGE_ETCD_ETCD_STORE_H_
#define BATON_STORAGE_ETCD_ETCD_STORE_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "storage/stable_store.h"

namespace baton::storage {

struct EtcdOptions {
  // Client URLs of the cluster's members, "host:port", optionally with an
  // "http://" or "https://" scheme. Calls go to the last endpoint that
  // answered and move on to another one when it cannot be reached (the
  // health probe's ranking below decides which); the first endpoint is the
  // preferred one (list the host's own member first): calls go back to it
  // once it is healthy again.
  // Default: {"127.0.0.1:2379"} (etcd's default client port).
  std::vector<std::string> endpoints = {"127.0.0.1:2379"};

  // Every key is stored in etcd as key_prefix + key, so several services (or
  // tests) share a cluster without seeing each other's keys. Must not be
  // empty: etcd refuses the empty key, which the contract allows.
  // Default: "baton/".
  std::string key_prefix = "baton/";

  // How long a call waits for a connection to one endpoint before it tries
  // the next. Default: 2000 ms.
  std::chrono::milliseconds dial_timeout{2000};

  // Deadline of one request to one endpoint. A commit that misses it returns
  // kUnknown (the request pipeline resolves it by reading the completion
  // record); a read moves on to the next endpoint. The health probe below
  // usually ends a call stuck on a dead or leaderless member much sooner;
  // this is the bound when it cannot tell (probe off, or a member that
  // answers its status but not this call). Default: 5000 ms.
  std::chrono::milliseconds request_timeout{5000};

  // Health probe (one thread per store): every health_probe_interval the
  // store asks the member it uses for its status (Maintenance.Status, a
  // cheap local call on the member). When the member does not answer within
  // health_probe_timeout, or has no leader, the store moves to the next
  // member that has one and cancels the calls still waiting on the old one
  // (a commit among them returns kUnknown, never "not applied": it was
  // sent). When the member reports a new raft term (its leader changed),
  // calls sent to it before that and still unanswered one interval later are
  // cancelled the same way: etcd 3.4 drops a proposal forwarded to a leader
  // that died, and would otherwise hold it until request_timeout. The probe
  // also brings the store back to the first endpoint once that member has a
  // leader and has caught up. Shorter intervals leave a failed member sooner
  // and cost the member one Status call each. Default: 100 ms; 0: no probe
  // (then a call on a dead member waits for request_timeout, and the store
  // goes back to the first endpoint as soon as its connection is up).
  std::chrono::milliseconds health_probe_interval{100};
  // A probe not answered within this marks the member as failed. Keep it
  // above the member's worst status latency under load (a false alarm costs
  // kUnknown outcomes of the calls in flight and a move to another member).
  // Default: 500 ms.
  std::chrono::milliseconds health_probe_timeout{500};
  // The probe also asks every other member for its status each interval,
  // without waiting. A call that must leave its member (refused, no leader,
  // not answered) goes next to the members whose last probe answered and
  // saw a leader, then to those without a leader (they refuse at once), and
  // never to one whose probe has gone unanswered for longer than this (a
  // crashed host keeps its connections "up" and would hold the call until
  // request_timeout), while another member answers; a probe answer brings
  // it back. Lower skips a crashed member sooner after its crash; a member
  // slower than this under load is only skipped (calls in flight on it are
  // not cancelled). Default: 150 ms.
  std::chrono::milliseconds health_probe_silent_after{150};

  // Open waits up to this long for the first endpoint (list the host's own
  // member first) to serve a linearizable read: the member is up, has a
  // leader and has applied the log up to the leader's commit. A server
  // opens its store before it listens and before its take-over agent
  // campaigns, so a restored host takes no service address while its own
  // member is still catching up. After the wait, the store opens anyway
  // (with a warning) and uses the other members. Default: 0 (no wait).
  std::chrono::milliseconds wait_for_first_endpoint{0};

  // TLS: used when tls_ca_file is set or an endpoint says "https://". PEM
  // files; tls_cert_file and tls_key_file (client certificate) only when the
  // server asks for one. Default: empty (plain TCP).
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;

  // etcd user and password (etcd's auth enabled). The store authenticates on
  // first use and again whenever etcd says the token is invalid or expired.
  // Default: empty (no auth).
  std::string username;
  std::string password;

  // etcd's --max-request-bytes. A commit whose encoded request (plus 1 KiB
  // for etcd's raft envelope) exceeds it is refused with kResourceExhausted
  // before sending. Set it to the server's value. Default: 1.5 MiB (1572864,
  // etcd's default).
  size_t max_request_bytes = 1572864;

  // etcd's --max-txn-ops. A commit with more conditions, or more distinct
  // written keys, is refused with kResourceExhausted before sending.
  // Default: 128 (etcd's default).
  size_t max_txn_ops = 128;

  // Largest response accepted (a Scan of large values). Default: 64 MiB.
  size_t max_response_bytes = 64u << 20;
  // Group commit: commits that arrive while another is in flight are sent
  // together, as one etcd Txn whose operations are their own Txns (nested
  // Txns, etcd >= 3.3). Each keeps its own compares and its own outcome, so
  // one failed condition fails only its commit; they share one raft entry,
  // one fsync and one revision. Commits that write a key another one in the
  // batch reads or writes wait for the next batch, so a batch is the same as
  // running its commits one after another. At most max_txn_ops commits and
  // max_request_bytes per batch. Default: true.
  bool group_commits = true;
  // Group commit: how many batches may be in flight at once. A batch forms
  // from the commits waiting when the previous one is sent; with more in
  // flight, batches are smaller and etcd does more Txns. Batches in flight
  // together are separate Txns, each atomic on its own. On one loopback
  // member, 2 and 4 were no faster than 1 at 16 and 64 clients; a cluster
  // with a longer network round trip may gain from 2. Default: 1.
  size_t max_commit_txns_in_flight = 1;
  // Group commit: a batch still unanswered after this no longer counts
  // against max_commit_txns_in_flight, so the commits behind it go out in
  // a batch of their own instead of waiting for its deadline (a Txn stuck on
  // a member whose leader died would otherwise hold every commit of the
  // process for up to request_timeout). Each batch already stuck doubles
  // the time the next one needs to count as stuck (100, 200, 400 ms ...),
  // and at most 8 are in flight besides: a member without a leader gets a
  // few probing batches, not a flood, and the first one sent after its new
  // leader arrived gets through. A stuck batch is never resent: its
  // commits get etcd's answer, or kUnknown. 0: a batch holds the next until
  // it is answered. Default: 100 ms.
  std::chrono::milliseconds stuck_batch_after{100};
  // Memory for the cache that answers GetMany(kMayBeStale) without a round
  // trip: the last state this process saw of each key, from its reads and
  // its own commits (storage/etcd/read_cache.h). Bytes of keys and values,
  // least recently used evicted first; 0 turns the cache off (every stale
  // read is a serializable Range). Default: 32 MiB.
  size_t read_cache_bytes = 32u << 20;

  // What CommitsAsynchronously() answers. CommitAsync() never waits for
  // etcd either way (the Txn is sent from the calling thread and answered
  // on the gRPC thread that reads etcd's answer). true tells a server that it may run
  // handlers on its event-loop threads (HttpServerOptions::handler_threads
  // kAuto, and the gRPC front end alike): a request then costs no thread
  // hand-off, but a read the read cache cannot answer (a key this server
  // has not read or written before, a dedup lookup, a re-read after a
  // conflict) holds that event loop for one etcd round trip. false: handlers
  // run on worker threads, which cost about ten context switches per
  // request and never hold an event loop. Default: true.
  bool commits_asynchronously = true;

  // History compaction, as the Kubernetes API server does it: every
  // compaction_interval the store compacts etcd's history up to the
  // revision it saw one interval earlier, so old revisions of overwritten
  // and deleted keys (every request's completion record and index entry,
  // once collected) do not fill the database. Compaction is cluster-wide:
  // every baton store on the cluster takes turns through the etcd key
  // "\xff" "baton/compact" (outside every key prefix), one compaction per
  // interval among them. baton reads only current values; turn it off only
  // when something else on the cluster needs history (watchers resuming
  // from old revisions) and compacts itself.
  // Default: 5 min; 0: off (then run etcd with --auto-compaction-*).
  std::chrono::seconds compaction_interval{300};
  // etcd's --quota-backend-bytes, for the capacity check and the quota
  // statistic (etcd does not report it). Default: 2 GiB (etcd's default).
  uint64_t quota_backend_bytes = 2ull << 30;
  // How long completion records live (set it to the pipeline's retention;
  // server config key store.record_retention). With the commit rate, what the
  // capacity check needs to know: records written at rate r for this long,
  // plus the history of one compaction interval, must fit in half the quota
  // (etcd's database file never shrinks without a defragmentation, so half
  // is kept free for its page reuse). Default: 24 h.
  std::chrono::seconds record_retention{86400};
  // The commit rate the capacity check assumes at open (commits/s of this
  // server); 0: none at open, only the rate observed over the first
  // statistics_interval. Either way, a rate the quota cannot hold is logged
  // as a warning. Default: 0.
  double expected_commits_per_second = 0;
  // How often the size statistics (keys under key_prefix: one count-only
  // Range, which etcd answers by walking its key index) are refreshed; the
  // database sizes come with every health probe. Default: 60 s; 0: never.
  std::chrono::seconds statistics_interval{60};
};

// What the store has done so far; for tests, metrics and logs.
struct EtcdStoreStats {
  // Times a call moved to another endpoint than the last good one.
  uint64_t failovers = 0;
  // Commits answered kUnknown.
  uint64_t unknown_outcomes = 0;
  // Successful Authenticate calls (first one included).
  uint64_t authentications = 0;
  // Commit() calls, and the Txn requests that carried them (fewer when group
  // commit put several in one).
  uint64_t commits = 0;
  uint64_t commit_txns = 0;
  // GetMany(kMayBeStale) keys answered from the read cache / read from etcd.
  uint64_t cache_hits = 0;
  uint64_t cache_misses = 0;
  // Health probes that found the member in use dead or without a leader.
  uint64_t probe_failures = 0;
  // Calls cancelled because their member failed or changed leader (commits
  // among them were answered kUnknown).
  uint64_t cancelled_calls = 0;
  // Group-commit batches that stayed in flight past stuck_batch_after.
  uint64_t stuck_batches = 0;
  // Compactions this store made, and the revision of the last one.
  uint64_t compactions = 0;
  uint64_t compacted_revision = 0;
  // Keys and values (bytes) of this store's acknowledged commits.
  uint64_t written_bytes = 0;
  // Last seen: keys under key_prefix; the member's database file size and
  // the part of it in use; the store revision.
  uint64_t keys = 0;
  uint64_t db_size_bytes = 0;
  uint64_t db_size_in_use_bytes = 0;
  uint64_t revision = 0;
};

namespace etcd_internal {
class Client;
class CommitQueue;
struct CommitBatch;
class ReadCache;
}  // namespace etcd_internal

// The etcd-backed store, for callers that want more than the contract.
class EtcdStore : public StableStore {
 public:
  ~EtcdStore() override;

  [[nodiscard]] absl::StatusOr<Versioned> Get(std::string_view key) override;
  // One Range (one key) or one read-only Txn of Ranges (several keys, up to
  // max_txn_ops per Txn: one snapshot each). kMayBeStale answers from the
  // read cache (EtcdOptions::read_cache_bytes) and sends the keys it misses
  // serializable: the member answers from its own applied state without the
  // leader's read index (no raft round), so a lagging member may answer
  // with an older state; kLatest: linearizable, like Get().
  [[nodiscard]] absl::StatusOr<std::vector<Versioned>> GetMany(
      const std::vector<std::string>& keys, const ReadOptions& options) override;
  [[nodiscard]] absl::StatusOr<std::vector<KeyValue>> Scan(const ScanOptions& options) override;
  // True: a serializable read skips the leader's read index.
  bool StaleReadsAreCheaper() const override { return true; }
  // One Txn; with EtcdOptions::group_commits, concurrent commits share one
  // (nested Txns, each with its own outcome). A wait on CommitAsync().
  [[nodiscard]] absl::StatusOr<uint64_t> Commit(const std::vector<Condition>& conditions,
                                                const std::vector<Write>& writes) override;
  // Sends the commit (in a batch) from the calling thread without waiting;
  // `done` runs on a gRPC callback thread when etcd answers (or on the
  // calling thread when the commit is refused before sending).
  void CommitAsync(std::vector<Condition> conditions, std::vector<Write> writes,
                   CommitCallback done) override;
  // EtcdOptions::commits_asynchronously.
  bool CommitsAsynchronously() const override { return options_.commits_asynchronously; }
  [[nodiscard]] absl::Status Ping() override;

  std::string Kind() const override { return "etcd"; }
  size_t MaxCommitOps() const override;
  // The counters and gauges of EtcdStoreStats, the quota and the commit
  // rate it holds (sustainable_commit_rate).
  std::vector<StoreStatistic> Statistics() const override;

  EtcdStoreStats Stats() const;
  // The endpoint calls currently go to.
  std::string CurrentEndpoint() const;

  // The gRPC connection underneath (storage/etcd/etcd_client.h, which
  // includes gRPC); for benchmarks that send raw etcd requests through the
  // very same stubs. Owned by the store.
  etcd_internal::Client& client() { return *client_; }

 private:
  friend absl::StatusOr<std::unique_ptr<EtcdStore>> OpenEtcd(const EtcdOptions&);
  EtcdStore(EtcdOptions options, std::unique_ptr<etcd_internal::Client> client);

  struct QueuedCommit;
  struct SentBatch;
  // The commit's Txn and keys, or why it is refused before sending.
  absl::StatusOr<std::unique_ptr<QueuedCommit>> BuildCommit(std::vector<Condition> conditions,
                                                            std::vector<Write> writes) const;
  // Sends a batch (its members' Txns nested in one, or the lone member's
  // own); OnBatchAnswered() gives each member its outcome.
  void SendBatch(etcd_internal::CommitBatch batch, bool queued);
  void OnBatchAnswered(SentBatch* sent, absl::Status status);
  // An alarm for the queue's next tick (a batch turning stuck), if needed.
  void ArmTick() ABSL_EXCLUSIVE_LOCKS_REQUIRED(commit_mu_);
  void OnTick();
  // Keeps the read cache in step with a commit's outcome.
  void NoteCommit(const std::vector<Condition>& conditions, const std::vector<Write>& writes,
                  const absl::StatusOr<uint64_t>& result);

  // Maintenance (OpenEtcd starts it): the health probe thread, and a
  // thread for compaction and the key count.
  void StartMaintenance();
  void MaintenanceLoop();
  void CompactOnce();
  void CountKeys();
  // Warns when `commits_per_second` exceeds what the quota holds.
  void CheckCapacity(double commits_per_second, const char* which);
  double SustainableCommitRate(const EtcdStoreStats& stats) const;
  void WaitForFirstEndpoint();

  const EtcdOptions options_;
  std::unique_ptr<etcd_internal::Client> client_;
  std::unique_ptr<etcd_internal::ReadCache> cache_;

  // Group commit (storage/etcd/commit_queue.h).
  mutable absl::Mutex commit_mu_;
  std::unique_ptr<etcd_internal::CommitQueue> queue_ ABSL_GUARDED_BY(commit_mu_);
  // When the earliest pending tick alarm fires.
  std::optional<int64_t> tick_at_ ABSL_GUARDED_BY(commit_mu_);

  absl::Mutex maintenance_mu_;
  bool stop_maintenance_ ABSL_GUARDED_BY(maintenance_mu_) = false;
  std::thread probe_thread_;
  std::thread maintenance_thread_;
  // The compaction turns' state (maintenance thread only).
  int64_t compact_key_version_ = 0;
  int64_t compact_target_ = 0;
  // The last rate warned about (maintenance thread, or OpenEtcd before it).
  double warned_rate_ = 0;

  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> commit_txns_{0};
  std::atomic<uint64_t> cache_hits_{0};
  std::atomic<uint64_t> cache_misses_{0};
  std::atomic<uint64_t> written_bytes_{0};
  std::atomic<uint64_t> compactions_{0};
  std::atomic<uint64_t> compacted_revision_{0};
  std::atomic<uint64_t> keys_{0};
};

// Opens a store on the cluster and starts its maintenance threads (health
// probe, compaction, statistics). Does not contact etcd unless
// wait_for_first_endpoint is set (an unreachable cluster shows up as
// kUnavailable on the first call, and the store keeps trying); fails with
// kInvalidArgument for bad options (no endpoints, empty prefix, unreadable
// TLS files). With expected_commits_per_second, logs a warning when the
// quota cannot hold that rate for record_retention.
[[nodiscard]] absl::StatusOr<std::unique_ptr<EtcdStore>> OpenEtcd(
    const EtcdOptions& options);
[[nodiscard]] absl::StatusOr<std::unique_ptr<StableStore>> OpenEtcdStore(
    const EtcdOptions& options);

}  // namespace baton::storage

#endif  // BATON_STORAGE_ETCD_ETCD_STORE_H_

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
#include <deque>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "storage/stable_store.h"

namespace baton::storage {

struct EtcdOptions {
  // Client URLs of the cluster's members, "host:port", optionally with an
  // "http://" or "https://" scheme. Calls go to the last endpoint that
  // answered and move on to the next one when it cannot be reached; the
  // first endpoint is the preferred one (list the host's own member first):
  // calls go back to it once its connection is up again (checked at most
  // once a second).
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
  // record); a read moves on to the next endpoint. It bounds how long a
  // request waits on a member whose leader just died: etcd 3.4 holds such
  // requests until this deadline, however soon the next leader is elected.
  // Shorter (e.g. 500 ms with etcd's 1 s election) shortens the outage of an
  // etcd leader crash; the price is more kUnknown outcomes when etcd is
  // slow. Default: 5000 ms.
  std::chrono::milliseconds request_timeout{5000};

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
  // Memory for the cache that answers GetMany(kMayBeStale) without a round
  // trip: the last state this process saw of each key, from its reads and
  // its own commits (storage/etcd/read_cache.h). Bytes of keys and values,
  // least recently used evicted first; 0 turns the cache off (every stale
  // read is a serializable Range). Default: 32 MiB.
  size_t read_cache_bytes = 32u << 20;
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
};

namespace etcd_internal {
class Client;
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
  // (nested Txns, each with its own outcome).
  [[nodiscard]] absl::StatusOr<uint64_t> Commit(const std::vector<Condition>& conditions,
                                                const std::vector<Write>& writes) override;
  [[nodiscard]] absl::Status Ping() override;

  std::string Kind() const override { return "etcd"; }
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

  struct PendingCommit;
  // Sends `batch` (its first member is the caller) as one Txn, or the lone
  // member's own Txn, and sets every member's result.
  void SendBatch(const std::vector<PendingCommit*>& batch);
  // The queued commits that can go together with the front one.
  std::vector<PendingCommit*> PickBatch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(commit_mu_);
  // Keeps the read cache in step with a commit's outcome.
  void NoteCommit(const std::vector<Condition>& conditions, const std::vector<Write>& writes,
                  const absl::StatusOr<uint64_t>& result);

  const EtcdOptions options_;
  std::unique_ptr<etcd_internal::Client> client_;
  std::unique_ptr<etcd_internal::ReadCache> cache_;

  // Group commit, as in LevelDB's write queue: callers queue; the one at the
  // front sends a batch for itself and others and wakes them.
  absl::Mutex commit_mu_;
  // Commits not yet taken into a batch, in arrival order.
  std::deque<PendingCommit*> commit_queue_ ABSL_GUARDED_BY(commit_mu_);
  size_t commit_txns_in_flight_ ABSL_GUARDED_BY(commit_mu_) = 0;
  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> commit_txns_{0};
  std::atomic<uint64_t> cache_hits_{0};
  std::atomic<uint64_t> cache_misses_{0};
};

// Opens a store on the cluster. Does not contact etcd (an unreachable cluster
// shows up as kUnavailable on the first call, and the store keeps trying);
// fails with kInvalidArgument for bad options (no endpoints, empty prefix,
// unreadable TLS files).
[[nodiscard]] absl::StatusOr<std::unique_ptr<EtcdStore>> OpenEtcd(
    const EtcdOptions& options);
[[nodiscard]] absl::StatusOr<std::unique_ptr<StableStore>> OpenEtcdStore(
    const EtcdOptions& options);

}  // namespace baton::storage

#endif  // BATON_STORAGE_ETCD_ETCD_STORE_H_

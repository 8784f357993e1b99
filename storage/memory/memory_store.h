// An in-memory StableStore: the whole contract of storage/stable_store.h
// (store-wide revisions as versions, conditional all-or-nothing commits,
// conflicts that name the key, GetMany, Scan, Ping, the reserved key space,
// CommitAsync) without a disk. For tests of handlers and of the framework
// (the test kit, framework/testing/harness.h, runs on it); not for serving:
// nothing survives the process.
//
// Durability, restarts: the data lives in a MemoryStoreData that outlives the
// store handles opened on it, as a disk outlives a process. Opening a store
// again on the same data (MemoryStoreOptions::data) is a restart: every
// commit that was acknowledged is there, versions keep growing. Several
// handles may be open on one data at once (as several hosts on one etcd
// cluster); each sees every commit of the others at once.
//
// Asynchronous commits (MemoryStoreOptions::async_commits, default on): as
// the RocksDB store, CommitAsync() queues the commit and returns; the
// store's committer thread (started by the first CommitAsync) applies queued
// commits in order and runs their callbacks, so CommitsAsynchronously() is
// true and the request pipeline takes its inline path (ExecuteAsync on the
// front end's event loop), which is what the HTTP front end does on RocksDB.
// With async_commits = false, CommitAsync() commits on the calling thread
// and the pipeline takes its blocking path, as on etcd.
//
// Stale reads (MemoryStoreOptions::stale_reads_are_cheaper, default off):
// StaleReadsAreCheaper() then says true, so the pipeline reads
// ReadConsistency::kMayBeStale and skips lookups as it does on etcd.
// kMayBeStale reads return the latest state, or, between FreezeReplica() and
// ThawReplica(), the state as it was at FreezeReplica() (a replica that
// stopped applying): every version such a read returns is one the key had.
//
// Faults (kUnknown outcomes, refused commits, conflicts, latency, a hook
// after each durable commit): wrap the store in baton::testing::FaultStore
// (framework/testing/fault_store.h), which works on any backend.
//
// Errors: kAborted (ConflictError naming the key), kInvalidArgument (a key
// longer than max_key_bytes), kResourceExhausted (a commit larger than
// max_commit_bytes), kUnavailable (the store was closed; queued asynchronous
// commits are answered with it, unapplied).
//
// Thread safety: thread-safe; any number of threads may call any method
// concurrently, Close() included. Callbacks of asynchronous commits run on
// the committer thread, one at a time.
#ifndef BATON_STORAGE_MEMORY_MEMORY_STORE_H_
#define BATON_STORAGE_MEMORY_MEMORY_STORE_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "storage/stable_store.h"

namespace baton::storage {

// The contents of in-memory stores: keys, values, versions and the revision
// counter. Opaque; shared by the stores opened on it. Thread-safe.
class MemoryStoreData;

// A fresh, empty data set.
std::shared_ptr<MemoryStoreData> NewMemoryStoreData();

struct MemoryStoreOptions {
  // The data to open. nullptr: a fresh, empty data set owned by this store
  // alone. Default: nullptr.
  std::shared_ptr<MemoryStoreData> data;

  // CommitAsync() returns at once and its callback runs on the committer
  // thread; CommitsAsynchronously() is true. false: CommitAsync() commits on
  // the calling thread. Default: true (what RocksDB does).
  bool async_commits = true;

  // What StaleReadsAreCheaper() says (see the file comment). Default: false
  // (what RocksDB says; etcd says true).
  bool stale_reads_are_cheaper = false;

  // A key longer than this is refused with kInvalidArgument (Get, GetMany,
  // Scan, Commit). Default: 64 KiB (as RocksDbOptions).
  size_t max_key_bytes = size_t{64} << 10;

  // A commit whose keys and values add up to more than this is refused with
  // kResourceExhausted. Default: 64 MiB (as RocksDbOptions).
  size_t max_commit_bytes = size_t{64} << 20;
};

// Counters of one store handle.
struct MemoryStoreStats {
  uint64_t commits_ok = 0;        // Commits (either way) that succeeded.
  uint64_t commits_conflict = 0;  // ... that failed a condition.
  uint64_t commits_failed = 0;    // ... refused otherwise.
  uint64_t async_commits = 0;     // Commits that came through CommitAsync.
  uint64_t stale_reads = 0;       // Keys read with kMayBeStale.
};

class MemoryStore : public StableStore {
 public:
  // Stops the committer thread. Queued asynchronous commits are answered
  // kUnavailable, unapplied (on the calling thread, or on the committer
  // thread when Close is called from a commit callback); every later call
  // returns kUnavailable. The data stays (open it again to restart).
  // Idempotent; the destructor calls it.
  virtual void Close() = 0;

  // Stale-allowed reads (kMayBeStale) return the state as it is now until
  // ThawReplica(), whatever is committed meanwhile. Only when
  // stale_reads_are_cheaper is set (otherwise kMayBeStale reads are latest,
  // as on RocksDB). Calling it again takes a newer copy.
  virtual void FreezeReplica() = 0;
  virtual void ThawReplica() = 0;

  virtual MemoryStoreStats Stats() const = 0;

  // The revision of the last commit with writes (0 for fresh data).
  virtual uint64_t CurrentRevision() const = 0;
};

// Opens a store on options.data (or on fresh data).
// Errors: kInvalidArgument (a limit of 0).
[[nodiscard]] absl::StatusOr<std::unique_ptr<MemoryStore>> OpenMemoryStore(
    const MemoryStoreOptions& options = {});

}  // namespace baton::storage

#endif  // BATON_STORAGE_MEMORY_MEMORY_STORE_H_

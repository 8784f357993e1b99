// The embedded StableStore backend: one RocksDB database on the local disk.
//
// This is baton's default store for a service that runs on one host: state
// survives process crashes (every acknowledged commit is fsync'd to RocksDB's
// write-ahead log before Commit() returns) but not the loss of the disk.
//
// Concurrent commits share fsyncs (group commit): a commit joins a queue; the
// first commit in the queue (the leader) takes the queued commits, checks each
// one's conditions in order against the committed state plus the commits
// accepted before it in the same group, writes the accepted ones as one
// rocksdb::WriteBatch with one WAL fsync and hands every waiter its own result.
// CommitAsync() joins the same queue without a thread of its own: when such a
// commit is at the front, the store's committer thread (started by the first
// CommitAsync) leads the group and runs the callbacks once the group is
// durable, so no thread waits per request (CommitsAsynchronously() is true).
// See docs/storage.md for the encoding and the error mapping.
//
// Thread safety: a store is thread-safe; any number of threads may call any
// method concurrently, including Close().
#ifndef BATON_STORAGE_ROCKSDB_ROCKSDB_STORE_H_
#define BATON_STORAGE_ROCKSDB_ROCKSDB_STORE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/stable_store.h"

namespace baton::storage {

struct RocksDbOptions {
  // Directory of the database. Required (an empty path is kInvalidArgument).
  // One process at a time may open a directory (RocksDB's LOCK file); a second
  // open fails with kUnavailable.
  std::string path;

  // Create the database (and the directory, one level) when it does not
  // exist. When false, opening a missing database is kInvalidArgument.
  // Default: true.
  bool create_if_missing = true;

  // fsync the write-ahead log before a commit is acknowledged. Default: true.
  // false only for tests that do not test durability: with false a process
  // crash is survived, a machine crash loses the last commits.
  bool sync = true;

  // Group commit: at most this many commits share one WriteBatch and one
  // fsync. Default: 256 commits. 1 disables grouping (one fsync per commit).
  size_t max_group_commits = 256;

  // Group commit: a group stops growing once its commits' keys and values
  // add up to this many bytes (a single larger commit still forms a group of
  // its own). Default: 4 MiB.
  size_t max_group_bytes = size_t{4} << 20;

  // A commit whose keys and values add up to more than this is refused with
  // kResourceExhausted. Default: 64 MiB.
  size_t max_commit_bytes = size_t{64} << 20;

  // A key longer than this is refused with kInvalidArgument (in Get, Scan and
  // Commit). Default: 64 KiB.
  size_t max_key_bytes = size_t{64} << 10;

  // Size of one RocksDB memtable before it is flushed to an SST file.
  // Default: 64 MiB.
  size_t write_buffer_bytes = size_t{64} << 20;
};

// Counters of one open store, for tests, metrics and benchmarks.
struct RocksDbStoreStats {
  uint64_t commits_ok = 0;          // Commit() calls that returned OK.
  uint64_t commits_conflict = 0;    // ... that returned kAborted.
  uint64_t commits_failed = 0;      // ... that returned another error.
  uint64_t groups = 0;              // Groups of commits processed.
  uint64_t batches_written = 0;     // WriteBatches written; with sync = true,
                                    // each one is one WAL fsync.
  uint64_t recoveries = 0;          // Successful recoveries after a write
                                    // error (DB::Resume() or a reopen).
};

// The RocksDB store with the operations beyond the StableStore contract.
class RocksDbStore : public StableStore {
 public:
  // Closes the database. Afterwards every call returns kUnavailable; commits
  // queued behind a running group fail with kUnavailable (asynchronous ones
  // get their callback with it before Close returns, unless Close is called
  // from a commit callback). Waits for a running group to finish.
  // Idempotent; the destructor calls it.
  [[nodiscard]] virtual absl::Status Close() = 0;

  virtual RocksDbStoreStats Stats() const = 0;

  // The revision of the last successful commit with writes (0 for a new store).
  virtual uint64_t CurrentRevision() const = 0;
};

// Opens (or creates) the store at options.path.
// Errors: kInvalidArgument (bad options, missing database with
// create_if_missing = false), kUnavailable (I/O error, disk full, directory
// locked by another process), kDataLoss (corruption detected).
[[nodiscard]] absl::StatusOr<std::unique_ptr<RocksDbStore>> OpenRocksDb(
    const RocksDbOptions& options);

// Same, typed as the contract; what the framework uses.
[[nodiscard]] absl::StatusOr<std::unique_ptr<StableStore>> OpenRocksDbStore(
    const RocksDbOptions& options);

}  // namespace baton::storage

#endif  // BATON_STORAGE_ROCKSDB_ROCKSDB_STORE_H_

// The embedded StableStore backend: one RocksDB database on the local disk.
//
// This is baton's default store for a service that runs on one host: state
// survives process crashes (every acknowledged commit is fsync'd to RocksDB's
// write-ahead log before Commit() returns) but not the loss of the disk.
//
// Concurrent commits share fsyncs (group commit), and the check and write of
// one group overlap the fsync of the previous one:
//   1. A commit joins a queue. The first commit in the queue (the leader: its
//      own thread for Commit(), one of the store's two committer threads for
//      CommitAsync()) takes the queued commits as a group and checks each
//      one's conditions in order against the latest state, including groups
//      written before it whose fsync is still running, plus the commits
//      accepted before it in the same group; it writes the accepted ones as
//      one rocksdb::WriteBatch to the WAL and the memtable, without an fsync.
//   2. One thread at a time (usually the one that just wrote a group) makes
//      the written groups durable with one WAL fsync (DB::SyncWAL, covering
//      every group written before it), while another may check and write
//      the next group. The next fsync starts once the commits queued
//      meanwhile are written, so it covers all of them.
//   3. Only then are the groups' commits answered, in commit order: Commit()
//      returns, CommitAsync() callbacks run (on the thread that did the
//      fsync), also for commits that only checked conditions or conflicted
//      (so a commit never returns before an earlier one it may depend on is
//      durable).
// Reads (Get, Scan) see a RocksDB snapshot of the state after the last
// durable group, never a commit whose fsync has not finished. If an fsync
// fails, every commit of that group and of every group written after it
// fails, and the next leader recovers the database first.
// With sync = false there is no fsync: a group is answered once written.
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

  // Group commit: at most this many commits are checked and written as one
  // group (one WriteBatch). Default: 256 commits. 1: one batch per commit
  // (an fsync still covers every batch written before it).
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
  uint64_t batches_written = 0;     // WriteBatches written to the WAL (one
                                    // per group with writes).
  uint64_t wal_syncs = 0;           // WAL fsyncs (sync = true); each makes
                                    // every batch written before it durable.
  uint64_t recoveries = 0;          // Successful recoveries after a write
                                    // error (DB::Resume() or a reopen).
};

// The RocksDB store with the operations beyond the StableStore contract.
class RocksDbStore : public StableStore {
 public:
  // Closes the database. Afterwards every call returns kUnavailable. Groups
  // already being written finish (and are answered once durable); commits
  // queued behind them fail with kUnavailable (asynchronous ones get their
  // callback with it before Close returns, unless Close is called from a
  // commit callback, which does not wait and fails the groups in flight).
  // Idempotent; the destructor calls it.
  [[nodiscard]] virtual absl::Status Close() = 0;

  virtual RocksDbStoreStats Stats() const = 0;

  // The revision of the last acknowledged commit with writes (0 for a new
  // store).
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

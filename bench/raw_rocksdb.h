// Baseline for benchmarks that write durably: raw RocksDB synced Puts.
//
// Benchmarks of baton's durable paths (the StableStore, the HTTP front end)
// report their throughput as a ratio against this baseline, measured in the
// same run on the same disk, so that the figure says what baton costs over
// the storage engine rather than how fast this machine's disk is.
//
// Thread safety: each function is self-contained; call from one thread.
#ifndef BATON_BENCH_RAW_ROCKSDB_H_
#define BATON_BENCH_RAW_ROCKSDB_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace baton::bench {

// Throughput and latency of one timed run.
struct ThroughputResult {
  uint64_t ops = 0;          // Operations completed.
  double seconds = 0;        // Wall time of the run.
  double ops_per_sec = 0;    // ops / seconds.
  double p50_us = 0;         // Median latency of one operation, microseconds.
  double p99_us = 0;         // 99th percentile latency, microseconds.
};

// Summarizes per-operation latencies (microseconds, any order) of a run that
// took `seconds`.
ThroughputResult Summarize(std::vector<double> latencies_us, double seconds);

struct RawRocksDbOptions {
  // A directory on the disk under test; the database is created in a fresh
  // subdirectory and removed afterwards. Required.
  std::string dir;
  // Writer threads. Default: 1.
  int threads = 1;
  // How long the writers run. Default: 3 s.
  std::chrono::milliseconds duration{3000};
  // When > 0, each writer makes exactly this many Puts instead of running for
  // `duration` (fixed work, e.g. to count instructions). Default: 0.
  uint64_t ops_per_thread = 0;
  // Bytes of each value (keys are ~20 bytes). Default: 100 bytes.
  size_t value_bytes = 100;
  // WriteOptions::sync (fsync the WAL before Put returns). Default: true.
  bool sync = true;
  // When set, operation `i` of writer `thread` writes the (key, value) pairs
  // this fills in as one WriteBatch instead of one Put of `value_bytes`
  // (e.g. the same keys as a StableStore commit it is compared with).
  // Default: unset.
  std::function<void(int thread, uint64_t i,
                     std::vector<std::pair<std::string, std::string>>* puts)>
      make_puts;
};

// Runs `threads` threads that each Put distinct keys (or write the batches of
// `make_puts`), with sync, into one RocksDB database for `duration`. RocksDB groups concurrent writers itself
// (one WAL fsync per write group), so this is the engine's best case.
// Errors: kInvalidArgument (empty dir, threads < 1), kUnavailable (RocksDB
// open or write failed).
[[nodiscard]] absl::StatusOr<ThroughputResult> MeasureRawRocksDbSyncedPuts(
    const RawRocksDbOptions& options);

}  // namespace baton::bench

#endif  // BATON_BENCH_RAW_ROCKSDB_H_

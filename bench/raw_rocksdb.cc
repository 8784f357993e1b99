#include "bench/raw_rocksdb.h"

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "bench/lib/stats.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"

namespace baton::bench {
namespace {

// Benchmarks are the measuring layer: they read the monotonic clock directly.
using Clock = std::chrono::steady_clock;

}  // namespace

ThroughputResult Summarize(std::vector<double> latencies_us, double seconds) {
  const LatencySummary latency = SummarizeLatencies(std::move(latencies_us));
  ThroughputResult r;
  r.ops = latency.count;
  r.seconds = seconds;
  r.ops_per_sec = seconds > 0 ? static_cast<double>(r.ops) / seconds : 0;
  r.p50_us = latency.p50;
  r.p99_us = latency.p99;
  return r;
}

absl::StatusOr<ThroughputResult> MeasureRawRocksDbSyncedPuts(
    const RawRocksDbOptions& options) {
  if (options.dir.empty() || options.threads < 1) {
    return absl::InvalidArgumentError("RawRocksDbOptions: dir empty or threads < 1");
  }
  std::string tmpl = options.dir + "/raw-rocksdb-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return absl::UnavailableError(absl::StrCat("mkdtemp in ", options.dir));
  }
  const std::string path = tmpl;

  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, path, &raw);
  if (!s.ok()) {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
    return absl::UnavailableError(absl::StrCat("open ", path, ": ", s.ToString()));
  }
  std::unique_ptr<rocksdb::DB> db(raw);

  rocksdb::WriteOptions write_options;
  write_options.sync = options.sync;
  const std::string value(options.value_bytes, 'v');
  std::vector<std::vector<double>> latencies(static_cast<size_t>(options.threads));
  std::atomic<bool> failed{false};
  const Clock::time_point start = Clock::now();
  const Clock::time_point end = start + options.duration;
  std::vector<std::thread> threads;
  for (int t = 0; t < options.threads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<double>& mine = latencies[static_cast<size_t>(t)];
      std::vector<std::pair<std::string, std::string>> puts;
      for (uint64_t i = 0;; ++i) {
        const Clock::time_point before = Clock::now();
        if (options.ops_per_thread > 0 ? i >= options.ops_per_thread
                                       : before >= end) {
          break;
        }
        rocksdb::Status put;
        if (options.make_puts) {
          puts.clear();
          options.make_puts(t, i, &puts);
          rocksdb::WriteBatch batch;
          for (const auto& [k, v] : puts) put = batch.Put(k, v);
          if (put.ok()) put = db->Write(write_options, &batch);
        } else {
          put = db->Put(write_options, absl::StrCat("raw/", t, "/", i), value);
        }
        if (!put.ok()) {
          failed = true;
          break;
        }
        mine.push_back(std::chrono::duration<double, std::micro>(Clock::now() - before)
                           .count());
      }
    });
  }
  for (std::thread& th : threads) th.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();

  rocksdb::Status closed = db->Close();
  db.reset();
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (failed) return absl::UnavailableError("a raw RocksDB Put failed");
  if (!closed.ok()) return absl::UnavailableError(closed.ToString());

  std::vector<double> all;
  for (std::vector<double>& l : latencies) all.insert(all.end(), l.begin(), l.end());
  return Summarize(std::move(all), seconds);
}

}  // namespace baton::bench

// Durable commits/s of the RocksDB StableStore against raw RocksDB synced
// Puts, measured in the same run on the same disk.
//
// For each writer count (default 1, 16, 64) it alternates runs of the raw
// baseline and of the store (each `--seconds` long, `--reps` times, which one
// goes first alternating too) and prints the medians and the ratio store/raw
// of the median throughputs. Each store commit is what the request
// pipeline does at its smallest: one condition (key absent) and one put.
//
//   baton-storage-bench [--threads 1,16,64] [--seconds 3] [--reps 3]
//                       [--dir /var/tmp] [--value-bytes 100] [--json FILE]
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "bench/raw_rocksdb.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"
#include "storage/rocksdb/rocksdb_store.h"

namespace baton::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct StoreRun {
  ThroughputResult result;
  double commits_per_fsync = 0;
};

absl::StatusOr<StoreRun> MeasureStoreCommits(const std::string& dir, int threads,
                                             std::chrono::milliseconds duration,
                                             size_t value_bytes) {
  std::string tmpl = dir + "/storage-bench-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return absl::UnavailableError(absl::StrCat("mkdtemp in ", dir));
  }
  const std::string path = tmpl;
  storage::RocksDbOptions options;
  options.path = path + "/db";
  options.sync = true;
  absl::StatusOr<std::unique_ptr<storage::RocksDbStore>> opened =
      storage::OpenRocksDb(options);
  if (!opened.ok()) return opened.status();
  std::unique_ptr<storage::RocksDbStore> store = std::move(*opened);

  const std::string value(value_bytes, 'v');
  std::vector<std::vector<double>> latencies(static_cast<size_t>(threads));
  std::atomic<bool> failed{false};
  const Clock::time_point start = Clock::now();
  const Clock::time_point end = start + duration;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::vector<double>& mine = latencies[static_cast<size_t>(t)];
      for (uint64_t i = 0;; ++i) {
        const Clock::time_point before = Clock::now();
        if (before >= end) break;
        std::string key = absl::StrCat("bench/", t, "/", i);
        absl::StatusOr<uint64_t> r =
            store->Commit({{key, 0}}, {storage::Write::Put(key, value)});
        if (!r.ok()) {
          spdlog::error("commit: {}", r.status().ToString());
          failed = true;
          break;
        }
        mine.push_back(
            std::chrono::duration<double, std::micro>(Clock::now() - before).count());
      }
    });
  }
  for (std::thread& w : workers) w.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  storage::RocksDbStoreStats stats = store->Stats();
  store.reset();
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (failed) return absl::UnavailableError("a store commit failed");

  std::vector<double> all;
  for (std::vector<double>& l : latencies) all.insert(all.end(), l.begin(), l.end());
  StoreRun run;
  run.result = Summarize(std::move(all), seconds);
  run.commits_per_fsync =
      stats.batches_written == 0
          ? 0
          : static_cast<double>(stats.commits_ok) / static_cast<double>(stats.batches_written);
  return run;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Main(int argc, char** argv) {
  CLI::App app{"StableStore (RocksDB) durable commits vs raw RocksDB synced Puts"};
  std::vector<int> thread_counts = {1, 16, 64};
  double seconds = 3;
  int reps = 3;
  std::string dir = "/var/tmp";
  size_t value_bytes = 100;
  app.add_option("--threads", thread_counts, "concurrent writers per point")
      ->delimiter(',');
  app.add_option("--seconds", seconds, "length of one run");
  app.add_option("--reps", reps, "runs per point and system (median reported)");
  app.add_option("--dir", dir, "directory on the disk under test");
  app.add_option("--value-bytes", value_bytes, "bytes per value");
  std::string json_path;
  app.add_option("--json", json_path, "also write the rows to this file");
  CLI11_PARSE(app, argc, argv);
  nlohmann::json rows = nlohmann::json::array();
  spdlog::set_level(spdlog::level::warn);
  const auto duration =
      std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));

  std::printf("dir=%s, %.1f s per run, %d runs per point, values of %zu bytes; "
              "medians\n\n",
              dir.c_str(), seconds, reps, value_bytes);
  std::printf("%8s | %14s %9s %9s %8s | %14s %9s %9s | %9s\n", "writers",
              "store commit/s", "p50 ms", "p99 ms", "per fsync", "raw put/s",
              "p50 ms", "p99 ms", "store/raw");
  std::printf("%s\n", std::string(108, '-').c_str());
  for (int threads : thread_counts) {
    std::vector<double> s_ops, s_p50, s_p99, s_group, r_ops, r_p50, r_p99;
    for (int rep = 0; rep < reps; ++rep) {
      RawRocksDbOptions raw_options;
      raw_options.dir = dir;
      raw_options.threads = threads;
      raw_options.duration = duration;
      raw_options.value_bytes = value_bytes;
      // Alternate which system runs first, so that a drift of the disk or
      // of the machine's load does not favour one of them.
      absl::StatusOr<ThroughputResult> raw = absl::UnavailableError("not run");
      absl::StatusOr<StoreRun> store = absl::UnavailableError("not run");
      if (rep % 2 == 0) {
        raw = MeasureRawRocksDbSyncedPuts(raw_options);
        if (raw.ok()) store = MeasureStoreCommits(dir, threads, duration, value_bytes);
      } else {
        store = MeasureStoreCommits(dir, threads, duration, value_bytes);
        if (store.ok()) raw = MeasureRawRocksDbSyncedPuts(raw_options);
      }
      if (!raw.ok()) {
        std::fprintf(stderr, "raw rocksdb: %s\n", raw.status().ToString().c_str());
        return 1;
      }
      if (!store.ok()) {
        std::fprintf(stderr, "store: %s\n", store.status().ToString().c_str());
        return 1;
      }
      r_ops.push_back(raw->ops_per_sec);
      r_p50.push_back(raw->p50_us);
      r_p99.push_back(raw->p99_us);
      s_ops.push_back(store->result.ops_per_sec);
      s_p50.push_back(store->result.p50_us);
      s_p99.push_back(store->result.p99_us);
      s_group.push_back(store->commits_per_fsync);
    }
    const double store_ops = Median(s_ops), raw_ops = Median(r_ops);
    std::printf("%8d | %14.0f %9.2f %9.2f %8.1f | %14.0f %9.2f %9.2f | %9.2f\n",
                threads, store_ops, Median(s_p50) / 1000, Median(s_p99) / 1000,
                Median(s_group), raw_ops, Median(r_p50) / 1000,
                Median(r_p99) / 1000, raw_ops > 0 ? store_ops / raw_ops : 0);
    std::fflush(stdout);
    rows.push_back({{"writers", threads},
                    {"store_ops_per_s", store_ops},
                    {"store_p50_us", Median(s_p50)},
                    {"store_p99_us", Median(s_p99)},
                    {"commits_per_fsync", Median(s_group)},
                    {"raw_ops_per_s", raw_ops},
                    {"raw_p50_us", Median(r_p50)},
                    {"raw_p99_us", Median(r_p99)},
                    {"store_over_raw", raw_ops > 0 ? store_ops / raw_ops : 0}});
  }
  if (!json_path.empty()) {
    nlohmann::json j = {{"benchmark", "storage"}, {"seconds", seconds},
                        {"reps", reps}, {"value_bytes", value_bytes},
                        {"rows", rows}};
    std::ofstream f(json_path);
    f << j.dump(1) << "\n";
    if (!f) {
      std::fprintf(stderr, "cannot write %s\n", json_path.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace baton::bench

int main(int argc, char** argv) { return baton::bench::Main(argc, argv); }

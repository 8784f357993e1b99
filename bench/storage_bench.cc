// Durable commits of the RocksDB StableStore against raw RocksDB synced Puts,
// measured in the same run on the same disk: commits/s, latency, CPU per
// commit and commits per fsync.
//
// Systems (--systems, any of):
//   raw    RocksDB synced Puts from W threads (bench/raw_rocksdb.h): the
//          engine's best case, RocksDB grouping the writers itself. With
//          --shape request each one is a WriteBatch of the same keys and
//          values as the store's commit.
//   store  StableStore::Commit() from W threads, each waiting for its commit.
//   async  StableStore::CommitAsync() with W commits outstanding, the next one
//          issued from the previous one's callback: how the request pipeline
//          drives the store (no thread per request).
// For each writer count the systems run --reps times each, alternating (the
// system that goes first rotates), so that a drift of the disk or of the
// machine's load does not favour one of them; medians are printed with the
// ratios to raw. The load average is printed before and after, with a
// warning when the machine is busy: then rates mean little, CPU per commit
// (this process's CPU time: writers, RocksDB's threads and the store's
// threads, divided by the commits) and the ratios mean more.
//
// Shapes (--shape): "put" is one condition (key absent) and one put; "request"
// is what the pipeline commits for a keyed PUT: the completion record absent,
// the state put, the completion record (value + 40 bytes) and its GC index
// entry.
//
// --ops-per-writer N makes every writer do exactly N commits (fixed work, for
// instruction counts under callgrind; see bench/storage_instructions.sh).
//
//   baton-storage-bench [--writers 1,16,64] [--seconds 3] [--reps 3]
//                       [--systems raw,store,async] [--shape put|request]
//                       [--dir /var/tmp] [--value-bytes 100] [--sync=true]
//                       [--ops-per-writer 0] [--json FILE]
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/blocking_counter.h"
#include "bench/lib/alternating.h"
#include "bench/lib/json_output.h"
#include "bench/lib/machine_load.h"
#include "bench/lib/stats.h"
#include "bench/raw_rocksdb.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"
#include "storage/rocksdb/rocksdb_store.h"

namespace baton::bench {
namespace {

// Benchmarks are the measuring layer: they read the monotonic clock directly.
using Clock = std::chrono::steady_clock;

struct Config {
  std::string dir = "/var/tmp";
  std::chrono::milliseconds duration{3000};
  uint64_t ops_per_writer = 0;  // > 0: fixed work instead of duration.
  size_t value_bytes = 100;
  bool sync = true;
  bool request_shape = false;
};

struct Run {
  ThroughputResult result;
  double cpu_us_per_commit = 0;
  double commits_per_fsync = 0;  // Store systems only.
  double commits_per_batch = 0;  // Store systems only.
};

// One commit of writer `w`, number `i`, in the configured shape.
struct CommitOf {
  std::vector<storage::Condition> conditions;
  std::vector<storage::Write> writes;
};
CommitOf MakeCommit(const Config& config, const std::string& value, int w,
                    uint64_t i) {
  std::string key = absl::StrCat("bench/", w, "/", i);
  if (!config.request_shape) {
    return {{{key, 0}}, {storage::Write::Put(key, value)}};
  }
  // The pipeline's layout: "\xff" "fw/c/k/<id>" for the record, and its
  // age index entry under the time in microseconds (16 hex digits). Ids are
  // what clients send as Idempotency-Key: random (a UUID's worth of hex).
  uint64_t h = (static_cast<uint64_t>(w) << 40) ^ i;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;  // splitmix64's finalizer
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
  h ^= h >> 31;
  const std::string id =
      absl::StrCat("k/", absl::StrFormat("%016x%016x", h, h * 0x9e3779b97f4a7c15ULL));
  std::string record = absl::StrCat("\xff" "fw/c/", id);
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::system_clock::now().time_since_epoch());
  std::string index = absl::StrCat(
      "\xff" "fw/t/", absl::StrFormat("%016x", micros.count()), "/", id);
  CommitOf c;
  c.conditions.push_back({record, 0});
  c.writes.push_back(storage::Write::Put(std::move(key), value));
  c.writes.push_back(storage::Write::Put(
      std::move(record), absl::StrCat(value, std::string(40, 'r'))));
  c.writes.push_back(storage::Write::Put(std::move(index), ""));
  return c;
}

bool Stop(const Config& config, uint64_t i, Clock::time_point now,
          Clock::time_point end) {
  return config.ops_per_writer > 0 ? i >= config.ops_per_writer : now >= end;
}

double Micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

absl::StatusOr<Run> MeasureRaw(const Config& config, int writers) {
  RawRocksDbOptions options;
  options.dir = config.dir;
  options.threads = writers;
  options.duration = config.duration;
  options.ops_per_thread = config.ops_per_writer;
  options.value_bytes = config.value_bytes;
  options.sync = config.sync;
  const std::string value(config.value_bytes, 'v');
  if (config.request_shape) {
    // The same keys and values as the store's commits (a version prefix
    // more in the store), in one batch, but no conditions and no order.
    options.make_puts = [&config, &value](
                            int w, uint64_t i,
                            std::vector<std::pair<std::string, std::string>>* puts) {
      CommitOf c = MakeCommit(config, value, w, i);
      for (storage::Write& write : c.writes) {
        puts->emplace_back(std::move(write.key), std::move(write.value));
      }
    };
  }
  const double cpu0 = ProcessCpuSeconds();
  absl::StatusOr<ThroughputResult> r = MeasureRawRocksDbSyncedPuts(options);
  if (!r.ok()) return r.status();
  Run run;
  run.result = *r;
  if (r->ops > 0) {
    run.cpu_us_per_commit =
        (ProcessCpuSeconds() - cpu0) * 1e6 / static_cast<double>(r->ops);
  }
  return run;
}

// Issues `writers` chains of asynchronous commits, each chain one commit at a
// time (the next from the previous one's callback); returns once all ended.
class AsyncChains {
 public:
  AsyncChains(storage::StableStore& store, const Config& config,
              const std::string& value, int writers, Clock::time_point end)
      : store_(store),
        config_(config),
        value_(value),
        end_(end),
        latencies_(static_cast<size_t>(writers)),
        next_(static_cast<size_t>(writers), 0),
        started_(static_cast<size_t>(writers)),
        running_(writers) {}

  void Run() {
    for (int w = 0; w < static_cast<int>(latencies_.size()); ++w) Issue(w);
    running_.Wait();
  }

  bool failed() const { return failed_.load(); }
  std::vector<std::vector<double>>& latencies() { return latencies_; }

 private:
  // Callbacks of one chain never overlap (one commit outstanding), so its
  // slots need no lock.
  void Issue(int w) {
    const size_t s = static_cast<size_t>(w);
    const Clock::time_point now = Clock::now();
    if (failed_.load() || Stop(config_, next_[s], now, end_)) {
      running_.DecrementCount();
      return;
    }
    started_[s] = now;
    CommitOf c = MakeCommit(config_, value_, w, next_[s]++);
    store_.CommitAsync(std::move(c.conditions), std::move(c.writes),
                       [this, w, s](absl::StatusOr<uint64_t> r) {
                         if (!r.ok()) {
                           spdlog::error("commit: {}", r.status().ToString());
                           failed_ = true;
                         } else {
                           latencies_[s].push_back(
                               Micros(Clock::now() - started_[s]));
                         }
                         Issue(w);
                       });
  }

  storage::StableStore& store_;
  const Config& config_;
  const std::string& value_;
  const Clock::time_point end_;
  std::vector<std::vector<double>> latencies_;
  std::vector<uint64_t> next_;
  std::vector<Clock::time_point> started_;
  absl::BlockingCounter running_;
  std::atomic<bool> failed_{false};
};

absl::StatusOr<Run> MeasureStore(const Config& config, int writers,
                                 bool async) {
  std::string tmpl = config.dir + "/storage-bench-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return absl::UnavailableError(absl::StrCat("mkdtemp in ", config.dir));
  }
  const std::string path = tmpl;
  const double cpu0 = ProcessCpuSeconds();
  storage::RocksDbOptions options;
  options.path = path + "/db";
  options.sync = config.sync;
  absl::StatusOr<std::unique_ptr<storage::RocksDbStore>> opened =
      storage::OpenRocksDb(options);
  if (!opened.ok()) return opened.status();
  std::unique_ptr<storage::RocksDbStore> store = std::move(*opened);

  const std::string value(config.value_bytes, 'v');
  std::vector<std::vector<double>> latencies;
  bool failed = false;
  const Clock::time_point start = Clock::now();
  const Clock::time_point end = start + config.duration;
  if (async) {
    AsyncChains chains(*store, config, value, writers, end);
    chains.Run();
    failed = chains.failed();
    latencies = std::move(chains.latencies());
  } else {
    latencies.resize(static_cast<size_t>(writers));
    std::atomic<bool> any_failed{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < writers; ++t) {
      threads.emplace_back([&, t] {
        std::vector<double>& mine = latencies[static_cast<size_t>(t)];
        for (uint64_t i = 0;; ++i) {
          const Clock::time_point before = Clock::now();
          if (any_failed.load() || Stop(config, i, before, end)) break;
          CommitOf c = MakeCommit(config, value, t, i);
          absl::StatusOr<uint64_t> r = store->Commit(c.conditions, c.writes);
          if (!r.ok()) {
            spdlog::error("commit: {}", r.status().ToString());
            any_failed = true;
            break;
          }
          mine.push_back(Micros(Clock::now() - before));
        }
      });
    }
    for (std::thread& th : threads) th.join();
    failed = any_failed.load();
  }
  const double seconds =
      std::chrono::duration<double>(Clock::now() - start).count();
  const storage::RocksDbStoreStats stats = store->Stats();
  store.reset();
  const double cpu = ProcessCpuSeconds() - cpu0;
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (failed) return absl::UnavailableError("a store commit failed");

  std::vector<double> all;
  for (std::vector<double>& l : latencies) {
    all.insert(all.end(), l.begin(), l.end());
  }
  Run run;
  run.result = Summarize(std::move(all), seconds);
  if (run.result.ops > 0) {
    run.cpu_us_per_commit = cpu * 1e6 / static_cast<double>(run.result.ops);
  }
  if (stats.batches_written > 0) {
    run.commits_per_batch = static_cast<double>(stats.commits_ok) /
                            static_cast<double>(stats.batches_written);
  }
  const uint64_t fsyncs = config.sync ? stats.wal_syncs : 0;
  if (fsyncs > 0) {
    run.commits_per_fsync =
        static_cast<double>(stats.commits_ok) / static_cast<double>(fsyncs);
  }
  return run;
}

absl::StatusOr<Run> Measure(const Config& config, const std::string& system,
                            int writers) {
  if (system == "raw") return MeasureRaw(config, writers);
  return MeasureStore(config, writers, /*async=*/system == "async");
}

// Medians over the reps of one system at one writer count.
struct Medians {
  double ops_per_s = 0, p50_us = 0, p99_us = 0, cpu_us = 0, per_fsync = 0,
         per_batch = 0;
};
Medians MediansOf(const std::vector<Run>& runs) {
  return {MedianOf(runs, [](const Run& r) { return r.result.ops_per_sec; }),
          MedianOf(runs, [](const Run& r) { return r.result.p50_us; }),
          MedianOf(runs, [](const Run& r) { return r.result.p99_us; }),
          MedianOf(runs, [](const Run& r) { return r.cpu_us_per_commit; }),
          MedianOf(runs, [](const Run& r) { return r.commits_per_fsync; }),
          MedianOf(runs, [](const Run& r) { return r.commits_per_batch; })};
}

int Main(int argc, char** argv) {
  CLI::App app{
      "StableStore (RocksDB) durable commits vs raw RocksDB synced Puts: "
      "commits/s, CPU per commit, commits per fsync"};
  Config config;
  std::vector<int> writer_counts = {1, 16, 64};
  std::vector<std::string> systems = {"raw", "store", "async"};
  double seconds = 3;
  int reps = 3;
  std::string shape = "put";
  std::string json_path;
  double busy_fraction = 0.5;
  app.add_option("--writers,--threads", writer_counts,
                 "concurrent writers (threads, or outstanding async commits)")
      ->delimiter(',');
  app.add_option("--systems", systems, "raw,store,async")->delimiter(',');
  app.add_option("--seconds", seconds, "length of one run");
  app.add_option("--reps", reps, "runs per point and system (median reported)");
  app.add_option("--shape", shape, "put | request")
      ->check(CLI::IsMember({"put", "request"}));
  app.add_option("--dir", config.dir, "directory on the disk under test");
  app.add_option("--value-bytes", config.value_bytes, "bytes per value");
  app.add_option("--sync", config.sync, "fsync before acknowledging");
  app.add_option("--ops-per-writer", config.ops_per_writer,
                 "fixed commits per writer instead of --seconds (0: timed)");
  app.add_option("--busy-fraction", busy_fraction,
                 "warn when the 1-min load average exceeds this x CPUs");
  app.add_option("--json", json_path, "also write the rows to this file");
  CLI11_PARSE(app, argc, argv);
  for (const std::string& s : systems) {
    if (s != "raw" && s != "store" && s != "async") {
      std::fprintf(stderr, "unknown system %s (raw, store, async)\n", s.c_str());
      return 2;
    }
  }
  if (reps < 1) reps = 1;
  for (int w : writer_counts) {
    if (w < 1) {
      std::fprintf(stderr, "--writers: every count must be >= 1\n");
      return 2;
    }
  }
  config.request_shape = shape == "request";
  config.duration = std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  spdlog::set_level(spdlog::level::warn);

  MachineLoadCheck load(busy_fraction);
  std::printf("%s\n", load.DescribeBefore().c_str());
  std::printf(
      "dir=%s, %s, shape %s, values of %zu bytes, sync %s, %d runs per point "
      "and system (alternating); medians\n\n",
      config.dir.c_str(),
      config.ops_per_writer > 0
          ? absl::StrCat(config.ops_per_writer, " commits per writer").c_str()
          : absl::StrCat(seconds, " s per run").c_str(),
      shape.c_str(), config.value_bytes, config.sync ? "on" : "off", reps);
  std::printf("%7s %-6s | %11s %8s %8s %10s %9s %9s | %8s %8s\n",
              "writers", "system", "commits/s", "p50 ms", "p99 ms", "CPU us/c",
              "per fsync", "per batch", "rate/raw", "CPU/raw");
  std::printf("%s\n", std::string(104, '-').c_str());

  nlohmann::json rows = nlohmann::json::array();
  for (int writers : writer_counts) {
    std::map<std::string, std::vector<Run>> runs;
    absl::StatusOr<std::vector<std::vector<double>>> measured = RunAlternating(
        static_cast<int>(systems.size()), reps,
        [&](int k, int) -> absl::StatusOr<double> {
          const std::string& system = systems[static_cast<size_t>(k)];
          absl::StatusOr<Run> r = Measure(config, system, writers);
          if (!r.ok()) {
            return absl::Status(r.status().code(),
                                absl::StrCat(system, ": ", r.status().message()));
          }
          runs[system].push_back(*r);
          return r->result.ops_per_sec;
        });
    if (!measured.ok()) {
      std::fprintf(stderr, "%s\n", measured.status().ToString().c_str());
      return 1;
    }
    std::map<std::string, Medians> m;
    for (const std::string& s : systems) m[s] = MediansOf(runs[s]);
    const Medians* raw = m.count("raw") ? &m["raw"] : nullptr;
    nlohmann::json row = {{"writers", writers}};
    for (const std::string& s : systems) {
      const Medians& x = m[s];
      const double rate_ratio =
          raw && raw->ops_per_s > 0 ? x.ops_per_s / raw->ops_per_s : 0;
      const double cpu_ratio = raw && raw->cpu_us > 0 ? x.cpu_us / raw->cpu_us : 0;
      const auto per = [&](double v) {
        return s == "raw" ? std::string("-") : absl::StrFormat("%.1f", v);
      };
      std::printf("%7d %-6s | %11.0f %8.2f %8.2f %10.1f %9s %9s | %8.2f %8.2f\n",
                  writers, s.c_str(), x.ops_per_s, x.p50_us / 1000,
                  x.p99_us / 1000, x.cpu_us, per(x.per_fsync).c_str(),
                  per(x.per_batch).c_str(), rate_ratio, cpu_ratio);
      row[s + "_ops_per_s"] = x.ops_per_s;
      row[s + "_p50_us"] = x.p50_us;
      row[s + "_p99_us"] = x.p99_us;
      row[s + "_cpu_us_per_commit"] = x.cpu_us;
      if (s != "raw") {
        row[s + "_commits_per_fsync"] = x.per_fsync;
        row[s + "_commits_per_batch"] = x.per_batch;
        row[s + "_over_raw"] = rate_ratio;
        row[s + "_cpu_over_raw"] = cpu_ratio;
      }
    }
    // The names the suite's summary reads (bench/suite/analyze.py).
    if (m.count("store")) row["commits_per_fsync"] = m["store"].per_fsync;
    std::fflush(stdout);
    rows.push_back(row);
  }
  load.Finish();
  std::printf("\n%s\n", load.DescribeAfter().c_str());
  std::printf(
      "CPU us/c = this process's CPU time (writers, RocksDB and store threads) "
      "per commit; rate/raw and CPU/raw against raw RocksDB synced Puts of the "
      "same run\n");

  if (!json_path.empty()) {
    nlohmann::json j = {{"benchmark", "storage"},
                        {"seconds", seconds},
                        {"ops_per_writer", config.ops_per_writer},
                        {"reps", reps},
                        {"shape", shape},
                        {"value_bytes", config.value_bytes},
                        {"sync", config.sync},
                        {"systems", systems},
                        {"rows", rows}};
    j.update(load.ToJson());
    if (!WriteJsonFileOrReport(json_path, j)) return 1;
  }
  return 0;
}

}  // namespace
}  // namespace baton::bench

int main(int argc, char** argv) { return baton::bench::Main(argc, argv); }

// Commits/s and latency of the StableStore on etcd against raw etcd Txns of
// the same shape, sent through the very same gRPC stubs in the same run.
//
// Each store commit is what the request pipeline does for a PUT: one
// condition (the completion record is absent), one state put and one
// completion-record-sized put. The raw baseline sends the minimal etcd Txn a
// hand-written client would: compare mod_revision(record) == 0, then the same
// two puts of the same sizes, through store.client()'s stub, with the same
// deadline and metadata. The store's extra cost (building the request, the
// failure-branch ranges that name a conflicting key, status mapping,
// fail-over bookkeeping) shows in the ratio.
//
// For each caller count (default 1, 16, 64) it runs `--reps` rounds of each
// system, `--seconds` long, alternating which goes first, and prints median
// throughput, p50/p99 latency over all rounds, and store/raw of the medians.
// Starts its own loopback etcd (one member unless --members; data in --dir)
// unless --endpoints is given.
//
//   baton-etcd-bench [--callers 1,16,64] [--seconds 3] [--reps 3] [--members 1]
//                    [--value-bytes 128] [--record-bytes 512]
//                    [--dir /var/tmp] [--endpoints host:port,...] [--json FILE]
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "bench/lib/alternating.h"
#include "bench/lib/closed_loop.h"
#include "bench/lib/json_output.h"
#include "bench/lib/stats.h"
#include "bench/raw_etcd.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"
#include "storage/etcd/etcd_client.h"
#include "storage/etcd/etcd_store.h"
#include "storage/etcd/testing/etcd_launcher.h"

namespace baton::bench {
namespace {

struct Summary {
  double median_ops = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  uint64_t errors = 0;
};

// Median rate of the rounds; latency percentiles over all their requests.
Summary Summarize(const std::vector<ClosedLoopResult>& rounds) {
  std::vector<double> lat;
  Summary s;
  for (const ClosedLoopResult& r : rounds) {
    lat.insert(lat.end(), r.latencies_us.begin(), r.latencies_us.end());
    s.errors += r.errors;
  }
  s.median_ops = MedianOf(rounds, [](const ClosedLoopResult& r) { return r.ops_per_s; });
  const LatencySummary latency = SummarizeLatencies(std::move(lat));
  s.p50_ms = latency.p50 / 1000;
  s.p99_ms = latency.p99 / 1000;
  return s;
}

int Main(int argc, char** argv) {
  CLI::App app{"StableStore-on-etcd commits/s beside raw etcd Txns (same stubs, same run)"};
  std::vector<int> callers = {1, 16, 64};
  int seconds = 3;
  int reps = 3;
  size_t value_bytes = 128;
  size_t record_bytes = 512;
  std::string dir = "/var/tmp";
  std::vector<std::string> endpoints;
  int members = 1;
  app.add_option("--callers", callers, "concurrent callers per run")->delimiter(',');
  app.add_option("--members", members, "members of the loopback etcd it starts");
  app.add_option("--seconds", seconds, "length of one run");
  app.add_option("--reps", reps, "rounds per system and caller count");
  app.add_option("--value-bytes", value_bytes, "state value size");
  app.add_option("--record-bytes", record_bytes, "completion record size");
  app.add_option("--dir", dir, "parent of the etcd data dir");
  app.add_option("--endpoints", endpoints, "use this etcd instead of starting one")
      ->delimiter(',');
  std::string json_path;
  app.add_option("--json", json_path, "also write the rows to this file");
  CLI11_PARSE(app, argc, argv);
  nlohmann::json rows = nlohmann::json::array();
  spdlog::set_level(spdlog::level::warn);

  std::unique_ptr<storage::testing::EtcdCluster> cluster;
  if (endpoints.empty()) {
    storage::testing::EtcdLaunchOptions launch;
    launch.members = members;
    launch.temp_root = dir;
    // etcd's default raft timing.
    launch.heartbeat_ms = 100;
    launch.election_ms = 1000;
    absl::StatusOr<std::unique_ptr<storage::testing::EtcdCluster>> c =
        storage::testing::EtcdCluster::Start(launch);
    if (!c.ok()) {
      std::fprintf(stderr, "cannot start etcd: %s\n", c.status().ToString().c_str());
      return 1;
    }
    cluster = std::move(*c);
    endpoints = cluster->ClientEndpoints();
  }

  storage::EtcdOptions options;
  options.endpoints = endpoints;
  options.key_prefix = "bench-store/";
  absl::StatusOr<std::unique_ptr<storage::EtcdStore>> opened = storage::OpenEtcd(options);
  if (!opened.ok()) {
    std::fprintf(stderr, "%s\n", opened.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<storage::EtcdStore> store = std::move(*opened);
  if (absl::Status p = store->Ping(); !p.ok()) {
    std::fprintf(stderr, "etcd not ready: %s\n", p.ToString().c_str());
    return 1;
  }
  storage::etcd_internal::Client& client = store->client();

  const std::string value(value_bytes, 'v');
  const std::string record(record_bytes, 'r');
  int round_id = 0;

  auto store_op = [&](int caller, uint64_t seq) {
    const std::string rec = absl::StrCat(storage::ToAbsl(storage::kReservedPrefix), "done/", round_id, "/",
                                         caller, "/", seq);
    absl::StatusOr<uint64_t> r = store->Commit(
        {{rec, 0}}, {storage::Write::Put(absl::StrCat("state/", caller), value),
                     storage::Write::Put(rec, record)});
    return r.ok();
  };
  auto raw_op = [&](int caller, uint64_t seq) {
    const std::string rec = absl::StrCat("bench-raw/", storage::ToAbsl(storage::kReservedPrefix), "done/",
                                         round_id, "/", caller, "/", seq);
    return bench::RawEtcdPut(client, absl::StrCat("bench-raw/state/", caller), value, rec, record);
  };

  std::printf("etcd %s (%zu endpoints), commit = 1 condition + put %zu B + put %zu B, %d x %d s per system\n",
              endpoints.front().c_str(), endpoints.size(), value_bytes, record_bytes, reps,
              seconds);
  std::printf("%8s | %12s %8s %8s | %12s %8s %8s | %6s\n", "callers", "store ops/s",
              "p50 ms", "p99 ms", "raw ops/s", "p50 ms", "p99 ms", "ratio");
  for (int n : callers) {
    // System 0 the store, 1 raw etcd, alternating which goes first.
    std::vector<ClosedLoopResult> rounds[2];
    (void)RunAlternating(2, reps, [&](int system, int) -> absl::StatusOr<double> {
      ++round_id;
      rounds[system].push_back(RunClosedLoop(n, std::chrono::seconds(seconds),
                                             system == 0 ? ClosedLoopOp(store_op)
                                                         : ClosedLoopOp(raw_op)));
      return rounds[system].back().ops_per_s;
    });
    const std::vector<ClosedLoopResult>& store_rounds = rounds[0];
    const std::vector<ClosedLoopResult>& raw_rounds = rounds[1];
    const Summary s = Summarize(store_rounds);
    const Summary r = Summarize(raw_rounds);
    std::printf("%8d | %12.0f %8.2f %8.2f | %12.0f %8.2f %8.2f | %6.2f\n", n, s.median_ops,
                s.p50_ms, s.p99_ms, r.median_ops, r.p50_ms, r.p99_ms,
                r.median_ops > 0 ? s.median_ops / r.median_ops : 0.0);
    rows.push_back({{"callers", n},
                    {"store_ops_per_s", s.median_ops},
                    {"store_p50_us", s.p50_ms * 1000},
                    {"store_p99_us", s.p99_ms * 1000},
                    {"raw_ops_per_s", r.median_ops},
                    {"raw_p50_us", r.p50_ms * 1000},
                    {"raw_p99_us", r.p99_ms * 1000},
                    {"store_over_raw", r.median_ops > 0 ? s.median_ops / r.median_ops : 0.0},
                    {"store_errors", s.errors},
                    {"raw_errors", r.errors}});
    if (s.errors + r.errors > 0) {
      std::printf("         errors: store %llu, raw %llu\n",
                  static_cast<unsigned long long>(s.errors),
                  static_cast<unsigned long long>(r.errors));
    }
    std::fflush(stdout);
  }
  if (!json_path.empty()) {
    nlohmann::json j = {{"benchmark", "etcd"}, {"seconds", seconds}, {"reps", reps},
                        {"members", static_cast<int>(endpoints.size())},
                        {"value_bytes", value_bytes}, {"record_bytes", record_bytes},
                        {"rows", rows}};
    if (!WriteJsonFileOrReport(json_path, j)) return 1;
  }
  return 0;
}

}  // namespace
}  // namespace baton::bench

int main(int argc, char** argv) { return baton::bench::Main(argc, argv); }

// baton-client-bench: the retrying client and the gRPC front end, measured.
//
//   --mode throughput  durable PUTs/s and p50/p99 through the client library
//                      over HTTP and over gRPC at 1, 16 and 64 concurrent
//                      callers, against one in-process server (both front
//                      ends on one pipeline, RocksDB with fsync). Baseline:
//                      HTTP in the same run; ratio gRPC/HTTP.
//   --mode crash       clients drive INCRs through the library while the
//                      real baton-kvserver is kill -9ed and restarted N
//                      times; per crash: client-observed outage (last
//                      success before the kill -> first success after it),
//                      restart time, attempts per request; at the end lost
//                      acknowledged writes and duplicate executions (both
//                      must be 0).
//   --mode gc          many clients for a while against an in-process server
//                      with a short retention and GC interval; samples the
//                      number of completion records each second (bounded?)
//                      and the request latency while GC runs.
//   --mode hedgecpu    what adaptive timeouts + hedging cost the server
//                      (issue 14: at most +10 % CPU per acknowledged request
//                      in steady state): the real baton-kvserver, --n callers
//                      of one client over HTTP doing PUTs for --seconds, in
//                      --reps pairs alternating a fixed-timeout client and an
//                      adaptive + hedged one (same load); per run the
//                      server's CPU (utime + stime of /proc/PID/stat) per
//                      acknowledged request; the median of the paired ratios.
// Figures are medians of --reps runs where a run is repeated.
// --json FILE writes the figures of the throughput and crash modes as JSON;
// --timeline FILE (crash mode) writes the client's requests around the first
// crash as JSON lines {"t_ms": ms since the kill, "ok": bool, "node": "http"
// | "grpc", "attempts": n}: a successful reply when it arrived, a failed
// attempt when it was seen failing.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "bench/lib/alternating.h"
#include "bench/lib/closed_loop.h"
#include "bench/lib/json_output.h"
#include "bench/lib/machine_load.h"
#include "bench/lib/stats.h"
#include "framework/clock.h"
#include "framework/grpc/grpc_server.h"
#include "framework/http_server.h"
#include "framework/pipeline.h"
#include "nlohmann/json.hpp"
#include "samples/kvservice/kv_client.h"
#include "samples/kvservice/kv_grpc.h"
#include "samples/kvservice/kv_service.h"
#include "spdlog/spdlog.h"
#include "storage/rocksdb/rocksdb_store.h"
#include "tests/integration/client_server_process.h"

namespace {

using baton::framework::client::CallResult;
using baton::framework::client::ClientOptions;
using baton::framework::client::RealEnvironment;
using baton::kvservice::KvClient;
using baton::kvservice::KvProtocol;
using baton::kvservice::KvResult;

absl::Time Now() { return RealEnvironment().Now(); }

using baton::bench::Median;
using baton::bench::Percentile;

// One pipeline over RocksDB, HTTP and gRPC front ends on it.
struct InProcessServer {
  std::unique_ptr<baton::storage::StableStore> store;
  std::unique_ptr<baton::framework::RequestPipeline> pipeline;
  std::unique_ptr<baton::framework::HttpServer> http;
  std::unique_ptr<baton::framework::GrpcServer> grpc;

  bool Start(const std::string& dir, baton::framework::PipelineOptions po) {
    std::filesystem::remove_all(dir);
    baton::storage::RocksDbOptions so;
    so.path = dir;
    so.sync = true;
    auto s = baton::storage::OpenRocksDbStore(so);
    if (!s.ok()) return false;
    store = *std::move(s);
    pipeline = std::make_unique<baton::framework::RequestPipeline>(
        *store, baton::framework::RealClock(), po);
    baton::framework::Router router;
    if (!baton::kvservice::RegisterKvRoutes(router).ok()) return false;
    baton::framework::HttpServerOptions ho;
    ho.port = 0;
    auto h = baton::framework::StartHttpServer(ho, std::move(router), *pipeline);
    if (!h.ok()) return false;
    http = *std::move(h);
    baton::framework::GrpcRouter gr;
    if (!baton::kvservice::RegisterKvGrpcMethods(gr).ok()) return false;
    baton::framework::GrpcServerOptions go;
    go.port = 0;
    go.worker_threads = 64;
    auto g = baton::framework::StartGrpcServer(go, std::move(gr), *pipeline);
    if (!g.ok()) return false;
    grpc = *std::move(g);
    return true;
  }
  std::string Endpoint(KvProtocol p) const {
    return "127.0.0.1:" +
           std::to_string(p == KvProtocol::kHttp ? http->port() : grpc->port());
  }
  ~InProcessServer() {
    if (grpc) grpc->Stop();
    if (http) http->Stop();
    if (pipeline) pipeline->StopBackgroundGc();
  }
};


struct RunFigures {
  double rate = 0, p50_us = 0, p99_us = 0, attempts = 0;
};

RunFigures LoadRun(KvClient& c, int callers, double seconds, int run) {
  std::atomic<long> attempts{0};
  baton::bench::ClosedLoopResult load = baton::bench::RunClosedLoop(
      callers, std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)),
      [&](int i, uint64_t j) {
        KvResult r = c.Put(absl::StrFormat("r%d-c%d-%d", run, i, j % 64), "1");
        if (!r.ok()) {
          std::fprintf(stderr, "PUT failed: %s\n", r.error.c_str());
          return false;
        }
        attempts += r.call.attempts;
        return true;
      });
  const baton::bench::LatencySummary latency =
      baton::bench::SummarizeLatencies(load.latencies_us);
  RunFigures f;
  f.rate = load.ops_per_s;
  f.p50_us = latency.p50;
  f.p99_us = latency.p99;
  f.attempts = latency.count == 0
                   ? 0
                   : static_cast<double>(attempts) / static_cast<double>(latency.count);
  return f;
}

int Throughput(const std::string& dir, const std::vector<int>& clients,
               double seconds, int reps, const std::string& json_path) {
  nlohmann::json rows = nlohmann::json::array();
  InProcessServer server;
  if (!server.Start(dir + "/client_bench_tp", {})) {
    std::fprintf(stderr, "cannot start the server in %s\n", dir.c_str());
    return 1;
  }
  std::printf("durable PUTs through the retrying client; one server, both front "
              "ends on one pipeline; median of %d runs of %.1f s\n", reps, seconds);
  std::printf("| callers | HTTP PUTs/s | gRPC PUTs/s | gRPC/HTTP | HTTP p50 µs | "
              "HTTP p99 µs | gRPC p50 µs | gRPC p99 µs |\n|---|---|---|---|---|---|---|---|\n");
  int run = 0;
  for (int n : clients) {
    std::map<KvProtocol, std::vector<RunFigures>> figs;
    // Alternate so that neither protocol always runs on a warmer store.
    const absl::StatusOr<std::vector<std::vector<double>>> measured =
        baton::bench::RunAlternating(
            2, reps, [&](int system, int) -> absl::StatusOr<double> {
              const KvProtocol p = system == 0 ? KvProtocol::kHttp : KvProtocol::kGrpc;
              ClientOptions o;
              o.async_threads = 1;
              auto c = KvClient::Connect(p, server.Endpoint(p), o);
              if (!c.ok()) return c.status();
              figs[p].push_back(LoadRun(**c, n, seconds, run++));
              return figs[p].back().rate;
            });
    if (!measured.ok()) return 1;
    auto med = [&](KvProtocol p, double RunFigures::*m) {
      return baton::bench::MedianOf(figs[p], [m](const RunFigures& f) { return f.*m; });
    };
    const double h = med(KvProtocol::kHttp, &RunFigures::rate);
    const double g = med(KvProtocol::kGrpc, &RunFigures::rate);
    std::printf("| %d | %.0f | %.0f | %.2f | %.0f | %.0f | %.0f | %.0f |\n", n, h, g,
                h > 0 ? g / h : 0, med(KvProtocol::kHttp, &RunFigures::p50_us),
                med(KvProtocol::kHttp, &RunFigures::p99_us),
                med(KvProtocol::kGrpc, &RunFigures::p50_us),
                med(KvProtocol::kGrpc, &RunFigures::p99_us));
    std::fflush(stdout);
    rows.push_back({{"callers", n},
                    {"http_ops_per_s", h},
                    {"grpc_ops_per_s", g},
                    {"grpc_over_http", h > 0 ? g / h : 0},
                    {"http_p50_us", med(KvProtocol::kHttp, &RunFigures::p50_us)},
                    {"http_p99_us", med(KvProtocol::kHttp, &RunFigures::p99_us)},
                    {"grpc_p50_us", med(KvProtocol::kGrpc, &RunFigures::p50_us)},
                    {"grpc_p99_us", med(KvProtocol::kGrpc, &RunFigures::p99_us)}});
  }
  return baton::bench::WriteJsonFileOrReport(
             json_path, {{"benchmark", "client"}, {"mode", "throughput"},
                         {"seconds", seconds}, {"reps", reps}, {"rows", rows}})
             ? 0
             : 1;
}

struct Done {
  absl::Time finished;
  absl::Time started;
  int attempts;
  KvProtocol protocol;
  absl::Time first_failure;  // InfiniteFuture: no attempt failed.
};

// The real baton-kvserver (16 worker threads) on a fresh store in DIR/SUB;
// nullptr (reported) if it does not start.
std::unique_ptr<baton::testing::KvServerProcess> StartKvServer(
    const std::string& dir, const std::string& sub, const std::string& binary) {
  const std::filesystem::path d = std::filesystem::path(dir) / sub;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  auto server = std::make_unique<baton::testing::KvServerProcess>(
      binary, d, std::vector<std::string>{"--worker-threads", "16"});
  std::string error;
  if (!server->Start(&error)) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return nullptr;
  }
  return server;
}

int Crash(const std::string& dir, const std::string& binary, int clients,
          int crashes, double interval_s, uint64_t seed,
          const std::string& json_path, const std::string& timeline_path) {
  std::unique_ptr<baton::testing::KvServerProcess> started =
      StartKvServer(dir, "client_bench_crash", binary);
  if (!started) return 1;
  baton::testing::KvServerProcess& server = *started;
  std::mt19937_64 rng(seed);
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<Done> done;
  std::map<std::string, std::vector<int64_t>> replies;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    const KvProtocol p = i % 2 ? KvProtocol::kGrpc : KvProtocol::kHttp;
    const std::string ep = p == KvProtocol::kHttp ? server.http_endpoint()
                                                  : server.grpc_endpoint();
    threads.emplace_back([&, p, ep, i] {
      ClientOptions o;
      o.async_threads = 1;
      o.retry.attempt_timeout = absl::Seconds(1);
      o.retry.deadline = absl::Seconds(60);
      o.retry.max_backoff = absl::Milliseconds(100);
      auto c = KvClient::Connect(p, ep, o);
      if (!c.ok()) return;
      const std::string key = "ctr" + std::to_string(i);
      while (!stop.load()) {
        KvResult r = (*c)->Incr(key);
        if (!r.ok()) {
          ++failures;
          std::fprintf(stderr, "INCR gave up: %s\n", r.error.c_str());
          continue;
        }
        int64_t v = 0;
        (void)absl::SimpleAtoi(r.value_json, &v);
        std::lock_guard<std::mutex> lock(mu);
        done.push_back({r.call.finished, r.call.started, r.call.attempts, p,
                        r.call.first_failure});
        replies[key].push_back(v);
      }
    });
  }
  struct CrashTimes {
    absl::Time kill, killed, ready;  // SIGKILL sent, process reaped, listening
  };
  std::vector<CrashTimes> kills;
  for (int k = 0; k < crashes; ++k) {
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(
        absl::Seconds(interval_s) * (0.75 + 0.5 * (rng() % 1000) / 1000.0)));
    CrashTimes t;
    t.kill = Now();
    server.Kill9();
    t.killed = Now();
    std::string error;
    if (!server.Start(&error)) {
      std::fprintf(stderr, "%s\n", error.c_str());
      stop = true;
      for (auto& th : threads) th.join();
      return 1;
    }
    t.ready = Now();
    kills.push_back(t);
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  stop = true;
  for (auto& th : threads) th.join();

  std::printf("retry after crash: %d clients (half HTTP, half gRPC) INCR through "
              "the retrying client; baton-kvserver kill -9ed %d times (seed %llu)\n",
              clients, crashes, static_cast<unsigned long long>(seed));
  std::printf("| crash | restart (kill -> listening) ms | outage HTTP ms | "
              "outage gRPC ms | requests caught | attempts of caught (mean/max) |\n"
              "|---|---|---|---|---|---|\n");
  std::vector<double> outages, restarts;
  nlohmann::json crash_rows = nlohmann::json::array();
  for (size_t k = 0; k < kills.size(); ++k) {
    std::map<KvProtocol, absl::Time> last_before, first_after;
    int caught = 0, max_att = 0;
    double sum_att = 0;
    for (const Done& x : done) {
      if (x.finished < kills[k].kill) {
        auto& lb = last_before[x.protocol];
        if (lb == absl::Time() || x.finished > lb) lb = x.finished;
      } else if (x.finished > kills[k].killed) {
        // Replies that arrive between the SIGKILL and the reaping were sent
        // before the death; they end no outage.
        auto it = first_after.find(x.protocol);
        if (it == first_after.end() || x.finished < it->second) {
          first_after[x.protocol] = x.finished;
        }
      }
      if (x.started < kills[k].kill && x.finished > kills[k].kill) {
        ++caught;
        sum_att += x.attempts;
        max_att = std::max(max_att, x.attempts);
      }
    }
    auto outage = [&](KvProtocol p) {
      return absl::ToDoubleMilliseconds(first_after[p] - last_before[p]);
    };
    const double rs = absl::ToDoubleMilliseconds(kills[k].ready - kills[k].kill);
    restarts.push_back(rs);
    outages.push_back(outage(KvProtocol::kHttp));
    outages.push_back(outage(KvProtocol::kGrpc));
    std::printf("| %zu | %.0f | %.0f | %.0f | %d | %.1f / %d |\n", k + 1, rs,
                outage(KvProtocol::kHttp), outage(KvProtocol::kGrpc), caught,
                caught ? sum_att / caught : 0.0, max_att);
    crash_rows.push_back({{"restart_ms", rs},
                          {"outage_http_ms", outage(KvProtocol::kHttp)},
                          {"outage_grpc_ms", outage(KvProtocol::kGrpc)},
                          {"caught", caught},
                          {"attempts_of_caught_mean", caught ? sum_att / caught : 0.0},
                          {"attempts_of_caught_max", max_att}});
  }
  if (!timeline_path.empty() && !kills.empty()) {
    // Around the first crash: 300 ms before the kill to 700 ms after restart.
    const absl::Time kill = kills[0].kill;
    const absl::Time from = kill - absl::Milliseconds(300);
    const absl::Time to = kills[0].ready + absl::Milliseconds(700);
    std::ofstream tl(timeline_path);
    for (const Done& x : done) {
      const char* node = x.protocol == KvProtocol::kHttp ? "http" : "grpc";
      if (x.first_failure >= from && x.first_failure <= to) {
        tl << nlohmann::json{{"t_ms", absl::ToDoubleMilliseconds(x.first_failure - kill)},
                             {"ok", false}, {"node", node}, {"attempts", x.attempts}}
                  .dump()
           << "\n";
      }
      if (x.finished >= from && x.finished <= to) {
        tl << nlohmann::json{{"t_ms", absl::ToDoubleMilliseconds(x.finished - kill)},
                             {"ok", true}, {"node", node}, {"attempts", x.attempts}}
                  .dump()
           << "\n";
      }
    }
    if (!tl) std::fprintf(stderr, "cannot write %s\n", timeline_path.c_str());
  }
  // Verify: counters equal acknowledged INCRs, replies are 1..N.
  auto reader = KvClient::Connect(KvProtocol::kHttp, server.http_endpoint());
  long acked = 0, lost = 0, duplicates = 0;
  for (auto& [key, vals] : replies) {
    KvResult r = (*reader)->Get(key);
    int64_t stored = 0;
    if (!r.ok() || !absl::SimpleAtoi(r.value_json, &stored)) {
      std::fprintf(stderr, "cannot read %s\n", key.c_str());
      return 1;
    }
    std::set<int64_t> distinct(vals.begin(), vals.end());
    acked += vals.size();
    // An acknowledged INCR whose effect is missing, or one applied twice
    // (the counter ran ahead of the acknowledged ones, or a reply repeats).
    lost += std::max<int64_t>(0, static_cast<int64_t>(vals.size()) - stored);
    duplicates += std::max<int64_t>(0, stored - static_cast<int64_t>(vals.size())) +
                  static_cast<int64_t>(vals.size() - distinct.size());
  }
  std::vector<double> att;
  for (const Done& x : done) att.push_back(x.attempts);
  double mean_att = 0;
  for (double a : att) mean_att += a;
  mean_att /= std::max<size_t>(att.size(), 1);
  std::printf("median restart %.0f ms, median client-observed outage %.0f ms "
              "(ratio outage/restart %.2f)\n", Median(restarts), Median(outages),
              Median(restarts) > 0 ? Median(outages) / Median(restarts) : 0);
  std::printf("%ld acknowledged INCRs, attempts per request mean %.3f max %.0f, "
              "gave up %d, lost acknowledged writes %ld, duplicate executions %ld\n",
              acked, mean_att, att.empty() ? 0 : *std::max_element(att.begin(), att.end()),
              failures.load(), lost, duplicates);
  server.Terminate();
  const bool written = baton::bench::WriteJsonFileOrReport(
      json_path, {{"benchmark", "client"}, {"mode", "crash"}, {"clients", clients},
                  {"seed", seed}, {"crashes", crash_rows},
                  {"median_restart_ms", Median(restarts)},
                  {"median_outage_ms", Median(outages)},
                  {"acknowledged", acked}, {"attempts_mean", mean_att},
                  {"gave_up", failures.load()}, {"lost", lost},
                  {"duplicates", duplicates}});
  return lost == 0 && duplicates == 0 && failures == 0 && written ? 0 : 1;
}

size_t CountRecords(baton::storage::StableStore& store) {
  baton::storage::ScanOptions o;
  o.prefix = std::string(baton::storage::kReservedPrefix) + "fw/c/";
  o.limit = 10000;
  size_t n = 0;
  for (;;) {
    auto r = store.Scan(o);
    if (!r.ok() || r->empty()) break;
    n += r->size();
    if (r->size() < o.limit) break;
    o.start_after = r->back().key;
  }
  return n;
}

int Gc(const std::string& dir, int clients, double seconds, double retention_s,
       double gc_interval_s, bool acks) {
  baton::framework::PipelineOptions po;
  po.retention = absl::Seconds(retention_s);
  po.gc_interval = absl::Seconds(gc_interval_s);
  InProcessServer server;
  if (!server.Start(dir + "/client_bench_gc", po)) return 1;
  server.pipeline->StartBackgroundGc();
  std::atomic<bool> stop{false};
  std::atomic<long> requests{0};
  std::mutex mu;
  std::vector<std::pair<absl::Time, double>> lat;  // (finished, µs)
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      ClientOptions o;
      o.async_threads = 1;
      o.send_ack = acks;
      auto c = KvClient::Connect(i % 2 ? KvProtocol::kGrpc : KvProtocol::kHttp,
                                 server.Endpoint(i % 2 ? KvProtocol::kGrpc
                                                       : KvProtocol::kHttp), o);
      if (!c.ok()) return;
      std::vector<std::pair<absl::Time, double>> mine;
      while (!stop.load()) {
        KvResult r = (*c)->Incr("k" + std::to_string(i % 16));
        if (r.ok()) {
          ++requests;
          mine.emplace_back(r.call.finished, absl::ToDoubleMicroseconds(
                                                 r.call.finished - r.call.started));
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      lat.insert(lat.end(), mine.begin(), mine.end());
    });
  }
  std::printf("completion-record GC under load: %d clients (half HTTP, half gRPC, "
              "each its own client id), acks %s, retention %.1f s, GC every %.1f s\n",
              clients, acks ? "on" : "off", retention_s, gc_interval_s);
  std::printf("| t s | requests so far | completion records in store | "
              "collected so far |\n|---|---|---|---|\n");
  const absl::Time start = Now();
  size_t max_records = 0, last = 0;
  for (int s = 1; s <= static_cast<int>(seconds); ++s) {
    std::this_thread::sleep_until(
        std::chrono::steady_clock::now() + std::chrono::seconds(1));
    last = CountRecords(*server.store);
    max_records = std::max(max_records, last);
    std::printf("| %d | %ld | %zu | %llu |\n", s, requests.load(), last,
                static_cast<unsigned long long>(server.pipeline->Stats().collected));
    std::fflush(stdout);
  }
  stop = true;
  for (auto& t : threads) t.join();
  std::vector<double> all, late;
  for (auto& [t, us] : lat) {
    all.push_back(us);
    if (t - start > absl::Seconds(retention_s + gc_interval_s)) late.push_back(us);
  }
  std::printf("requests %ld, max records %zu (%.1f%% of requests), final %zu; "
              "latency p50 %.0f µs p99 %.0f µs max %.0f µs (after GC started: p99 %.0f µs)\n",
              requests.load(), max_records,
              100.0 * max_records / std::max<long>(requests.load(), 1), last,
              Percentile(all, 0.5), Percentile(all, 0.99), Percentile(all, 1.0),
              Percentile(late, 0.99));
  return 0;
}

// CPU seconds (user + system) process `pid` has used: /proc/PID/stat fields
// 14 and 15; -1 if unreadable.
double ProcessCpuSecondsOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::vector<std::string> f = absl::StrSplit(stat.substr(close + 2), ' ');
  // f[0] is field 3 (state): utime is field 14, stime 15.
  long utime = 0, stime = 0;
  if (f.size() < 13 || !absl::SimpleAtoi(f[11], &utime) || !absl::SimpleAtoi(f[12], &stime)) {
    return -1;
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

struct CpuRun {
  double cpu_us_per_ack = 0, rate = 0, attempts = 0, hedges = 0, p99_us = 0;
};

int HedgeCpu(const std::string& dir, const std::string& binary, int callers,
             double seconds, int reps, const std::string& json_path) {
  std::unique_ptr<baton::testing::KvServerProcess> started =
      StartKvServer(dir, "client_bench_hedgecpu", binary);
  if (!started) return 1;
  baton::testing::KvServerProcess& server = *started;
  baton::bench::MachineLoadCheck load;
  std::printf("server CPU per acknowledged PUT: fixed-timeout client vs adaptive + hedged "
              "client (p95 hedge delay, budget 10 %%), %d callers over HTTP, %.1f s per run, "
              "%d pairs alternating\n%s\n", callers, seconds, reps, load.DescribeBefore().c_str());
  std::vector<CpuRun> runs[2];
  int run_no = 0;
  const absl::StatusOr<baton::bench::PairedRuns> paired = baton::bench::RunPaired(
      reps, [&](int system, int) -> absl::StatusOr<double> {
        ClientOptions o;
        o.async_threads = 1;
        o.retry.attempt_timeout = absl::Seconds(1);
        if (system == 0) {  // a: adaptive + hedged
          o.retry.adaptive.enabled = true;
          o.retry.hedge.enabled = true;
        }
        auto c = KvClient::Connect(KvProtocol::kHttp, server.http_endpoint(), o);
        if (!c.ok()) return c.status();
        const int run = run_no++;
        // Warm-up (the adaptive client needs its latency samples): not counted.
        (void)baton::bench::RunClosedLoop(callers, std::chrono::milliseconds(300), [&](int i, uint64_t j) {
          return (*c)->Put(absl::StrFormat("w%d-c%d-%d", run, i, j % 64), "1").ok();
        });
        std::atomic<long> attempts{0}, hedges{0};
        const double cpu0 = ProcessCpuSecondsOf(server.pid());
        const baton::bench::ClosedLoopResult r = baton::bench::RunClosedLoop(
            callers, std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)),
            [&](int i, uint64_t j) {
              KvResult k = (*c)->Put(absl::StrFormat("h%d-c%d-%d", run, i, j % 64), "1");
              attempts += k.call.attempts;
              hedges += k.call.hedges;
              return k.ok();
            });
        const double cpu1 = ProcessCpuSecondsOf(server.pid());
        const double acked = static_cast<double>(r.latencies_us.size());
        if (cpu0 < 0 || cpu1 < 0 || acked == 0) {
          return absl::InternalError("no server CPU figure or no acknowledged request");
        }
        CpuRun f;
        f.cpu_us_per_ack = (cpu1 - cpu0) * 1e6 / acked;
        f.rate = r.ops_per_s;
        f.attempts = static_cast<double>(attempts) / acked;
        f.hedges = static_cast<double>(hedges) / acked;
        f.p99_us = baton::bench::SummarizeLatencies(r.latencies_us).p99;
        runs[system].push_back(f);
        return f.cpu_us_per_ack;
      });
  load.Finish();
  if (!paired.ok()) {
    std::fprintf(stderr, "%s\n", paired.status().ToString().c_str());
    return 1;
  }
  std::printf("| pair | fixed µs CPU/ack | hedged µs CPU/ack | ratio | fixed PUTs/s | hedged PUTs/s "
              "| hedged attempts/req | hedges/req | fixed p99 µs | hedged p99 µs |\n"
              "|---|---|---|---|---|---|---|---|---|---|\n");
  for (size_t i = 0; i < runs[0].size() && i < runs[1].size(); ++i) {
    const CpuRun& h = runs[0][i];
    const CpuRun& f = runs[1][i];
    std::printf("| %zu | %.0f | %.0f | %.3f | %.0f | %.0f | %.3f | %.3f | %.0f | %.0f |\n", i + 1,
                f.cpu_us_per_ack, h.cpu_us_per_ack, h.cpu_us_per_ack / f.cpu_us_per_ack, f.rate,
                h.rate, h.attempts, h.hedges, f.p99_us, h.p99_us);
  }
  const double ratio = paired->paired.median_ratio;
  std::printf("median ratio hedged/fixed of server CPU per acknowledged request: %.3f "
              "(goal <= 1.10: %s)\n%s\n", ratio, ratio <= 1.10 ? "met" : "NOT met",
              load.DescribeAfter().c_str());
  nlohmann::json pairs = nlohmann::json::array();
  for (size_t i = 0; i < runs[0].size() && i < runs[1].size(); ++i) {
    pairs.push_back({{"fixed_cpu_us_per_ack", runs[1][i].cpu_us_per_ack},
                     {"hedged_cpu_us_per_ack", runs[0][i].cpu_us_per_ack},
                     {"fixed_ops_per_s", runs[1][i].rate},
                     {"hedged_ops_per_s", runs[0][i].rate},
                     {"hedged_attempts_per_req", runs[0][i].attempts},
                     {"hedges_per_req", runs[0][i].hedges}});
  }
  nlohmann::json doc = {{"benchmark", "client"}, {"mode", "hedgecpu"}, {"callers", callers},
                        {"seconds", seconds}, {"reps", reps}, {"pairs", pairs},
                        {"median_ratio", ratio}};
  doc.update(load.ToJson());
  return baton::bench::WriteJsonFileOrReport(json_path, doc) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"baton retrying client and gRPC front end benchmark"};
  std::string mode = "throughput", dir = "/var/tmp", clients_s = "1,16,64";
  std::string binary = BATON_KVSERVER_PATH;
  double seconds = 2, interval = 1.5, retention = 3, gc_interval = 1;
  int reps = 3, crashes = 5, clients = 8;
  uint64_t seed = std::random_device{}();
  bool no_acks = false;
  app.add_option("--mode", mode, "throughput | crash | gc | hedgecpu");
  app.add_option("--dir", dir, "directory for stores (default /var/tmp)");
  app.add_option("--clients", clients_s, "throughput: callers list (1,16,64)");
  app.add_option("--seconds", seconds, "throughput/hedgecpu: per run; gc: total");
  app.add_option("--reps", reps, "throughput: runs per figure (median); hedgecpu: pairs");
  app.add_option("--crashes", crashes, "crash: kill -9 count (5)");
  app.add_option("--interval", interval, "crash: mean seconds between kills (1.5)");
  app.add_option("--n", clients, "crash/gc: clients; hedgecpu: callers (8)");
  app.add_option("--seed", seed, "crash: seed of the kill times");
  app.add_option("--retention", retention, "gc: retention seconds (3)");
  app.add_option("--gc-interval", gc_interval, "gc: GC period seconds (1)");
  app.add_flag("--no-acks", no_acks, "gc: clients send no watermark (age GC only)");
  app.add_option("--server", binary, "crash/hedgecpu: baton-kvserver path");
  std::string json_path, timeline_path;
  app.add_option("--json", json_path, "throughput/crash: also write the figures here");
  app.add_option("--timeline", timeline_path,
                 "crash: the requests around the first crash, as JSON lines");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);
  if (mode == "throughput") {
    std::vector<int> list;
    for (auto part : absl::StrSplit(clients_s, ',')) {
      int n = 0;
      if (absl::SimpleAtoi(part, &n) && n > 0) list.push_back(n);
    }
    return Throughput(dir, list, seconds, reps, json_path);
  }
  if (mode == "crash") {
    return Crash(dir, binary, clients, crashes, interval, seed, json_path, timeline_path);
  }
  if (mode == "hedgecpu") {
    return HedgeCpu(dir, binary, clients, seconds, reps, json_path);
  }
  if (mode == "gc") {
    return Gc(dir, clients, seconds, retention, gc_interval, !no_acks);
  }
  std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 2;
}

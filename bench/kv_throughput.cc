// baton-kv-throughput: the kv service's throughput and latency matrix beside
// its baselines, all measured in one run on the same disk.
//
//   baton   PUT, GET, INCR of the sample kv service over HTTP and gRPC through
//           the retrying client (samples/kvservice/kv_client.h), at each
//           client count, on the embedded RocksDB store (fsync) and on a
//           single-member loopback etcd (data dir on disk, under --dir).
//           The server runs in a child process (this binary with --serve),
//           built from the library APIs (RequestPipeline + kv handlers +
//           HttpServer/GrpcServer on a store it opens itself), so its CPU
//           time and peak RSS are read from /proc/<pid> exactly as Redis's
//           and etcd's are.
//   redis   redis-server (appendonly yes, appendfsync always) on a free
//           loopback port, driven by redis-benchmark SET / GET / INCR with
//           as many connections.
//   raw_rocksdb  RocksDB synced Puts from as many threads (bench/raw_rocksdb.h).
//   raw_etcd     the minimal etcd Txn a hand-written client sends for a
//           durable PUT (compare record absent, put state, put record),
//           through the same gRPC stubs, from as many threads.
//
// With both the etcd store and raw_etcd, each baton PUT/INCR rep on etcd is
// followed at once by a raw etcd rep at the same client count, and the baton
// cell's vs_raw column is the median of those paired ratios (the machine's
// load drifts less within a pair than across the run); the raw_etcd cells
// are then the medians of all those raw reps.
//
// Each cell is the median of --reps runs of --seconds; latency percentiles
// are over all runs of the cell. CPU is the server process's user+sys seconds
// per 1000 requests (for raw_rocksdb: this process, which is the engine);
// peak RSS is the server's VmHWM at the end of its runs.
//
//   baton-kv-throughput [--clients 1,16,64] [--seconds 2] [--reps 3]
//                       [--ops put,get,incr] [--protos http,grpc]
//                       [--stores rocksdb,etcd] [--baselines redis,raw_rocksdb,raw_etcd]
//                       [--dir /var/tmp] [--value-bytes 100] [--etcd-members 1]
//                       [--json FILE]
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bench/lib/alternating.h"
#include "bench/lib/closed_loop.h"
#include "bench/lib/json_output.h"
#include "bench/lib/redis_baseline.h"
#include "bench/lib/stats.h"
#include "bench/raw_etcd.h"
#include "bench/raw_rocksdb.h"
#include "framework/clock.h"
#include "framework/grpc/grpc_server.h"
#include "framework/http_server.h"
#include "framework/pipeline.h"
#include "nlohmann/json.hpp"
#include "samples/kvservice/kv_client.h"
#include "samples/kvservice/kv_grpc.h"
#include "samples/kvservice/kv_service.h"
#include "spdlog/spdlog.h"
#include "storage/etcd/etcd_client.h"
#include "storage/etcd/etcd_store.h"
#include "storage/etcd/testing/etcd_launcher.h"
#include "storage/rocksdb/rocksdb_store.h"

extern char** environ;

namespace baton::bench {
namespace {

using Clock = std::chrono::steady_clock;
using kvservice::KvClient;
using kvservice::KvProtocol;

// ---------------------------------------------------------------- /proc ---

// user+sys CPU seconds of process `pid` (/proc/<pid>/stat fields 14, 15).
double ProcCpuSeconds(pid_t pid) {
  std::ifstream f(absl::StrCat("/proc/", pid, "/stat"));
  std::string s((std::istreambuf_iterator<char>(f)), {});
  const size_t close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<std::string> fields =
      absl::StrSplit(s.substr(close + 2), ' ', absl::SkipEmpty());
  // fields[0] is field 3 (state); utime is field 14 -> index 11.
  if (fields.size() < 13) return 0;
  double ut = 0, st = 0;
  (void)absl::SimpleAtod(fields[11], &ut);
  (void)absl::SimpleAtod(fields[12], &st);
  return (ut + st) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// Peak resident set (VmHWM) of `pid` in MiB.
double ProcPeakRssMiB(pid_t pid) {
  std::ifstream f(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      double kb = 0;
      std::string num = line.substr(6);
      num.erase(std::remove_if(num.begin(), num.end(),
                               [](char c) { return !(c >= '0' && c <= '9'); }),
                num.end());
      (void)absl::SimpleAtod(num, &kb);
      return kb / 1024;
    }
  }
  return 0;
}

// ------------------------------------------------------------ results ----

// One measured run.
struct Run {
  double ops_per_s = 0;
  uint64_t ops = 0;
  uint64_t errors = 0;
  double cpu_s = 0;  // Server CPU during the run.
  std::vector<double> latencies_us;
  // When only percentiles are known (redis-benchmark, raw RocksDB): them.
  double p50_us = -1, p99_us = -1;
};

// One cell of the matrix: the median of its runs.
struct Cell {
  std::string system;  // baton, redis, raw_rocksdb, raw_etcd
  std::string store;   // rocksdb, etcd, redis
  std::string proto;   // http, grpc, resp, engine
  std::string op;      // put, get, incr
  int clients = 0;
  double ops_per_s = 0;
  double p50_us = 0;
  double p99_us = 0;
  double cpu_s_per_1k = 0;
  double peak_rss_mib = 0;
  uint64_t errors = 0;
  int reps = 0;
  // baton cells on etcd: the median over reps of (this rep's ops/s / the
  // raw etcd rep run right after it), < 0 when not measured. Pairs taken
  // seconds apart see the same machine load, so this ratio is steadier
  // than the ratio of the two cells' medians.
  double paired_ratio = -1;
};

Cell Reduce(Cell c, const std::vector<Run>& runs) {
  std::vector<double> rates, cpu, lat, p50s, p99s;
  for (const Run& r : runs) {
    rates.push_back(r.ops_per_s);
    if (r.p50_us >= 0) {
      p50s.push_back(r.p50_us);
      p99s.push_back(r.p99_us);
    }
    if (r.ops > 0) cpu.push_back(r.cpu_s * 1000 / static_cast<double>(r.ops));
    lat.insert(lat.end(), r.latencies_us.begin(), r.latencies_us.end());
    c.errors += r.errors;
  }
  c.ops_per_s = Median(rates);
  c.cpu_s_per_1k = Median(cpu);
  c.p50_us = p50s.empty() ? Percentile(lat, 0.5) : Median(p50s);
  c.p99_us = p99s.empty() ? Percentile(lat, 0.99) : Median(p99s);
  c.reps = static_cast<int>(runs.size());
  return c;
}

nlohmann::json ToJson(const Cell& c) {
  return {{"system", c.system},         {"store", c.store},
          {"proto", c.proto},           {"op", c.op},
          {"clients", c.clients},       {"ops_per_s", c.ops_per_s},
          {"p50_us", c.p50_us},         {"p99_us", c.p99_us},
          {"cpu_s_per_1k", c.cpu_s_per_1k}, {"peak_rss_mib", c.peak_rss_mib},
          {"errors", c.errors},         {"reps", c.reps},
          {"paired_ratio_to_raw", c.paired_ratio >= 0 ? nlohmann::json(c.paired_ratio)
                                                      : nlohmann::json(nullptr)}};
}

void Print(const Cell& c) {
  char ratio[32] = "-";
  if (c.paired_ratio >= 0) std::snprintf(ratio, sizeof ratio, "%.2f", c.paired_ratio);
  std::printf("%-11s %-7s %-6s %-4s %4d %10.0f %9.0f %9.0f %8.3f %8.1f %7s %s\n",
              c.system.c_str(), c.store.c_str(), c.proto.c_str(), c.op.c_str(),
              c.clients, c.ops_per_s, c.p50_us, c.p99_us, c.cpu_s_per_1k,
              c.peak_rss_mib, ratio,
              c.errors ? absl::StrCat("errors=", c.errors).c_str() : "");
  std::fflush(stdout);
}

// ------------------------------------------------------- server child ----

// --serve: open the store, start HTTP and gRPC on ephemeral loopback ports,
// print "PORTS <http> <grpc>", serve until stdin closes (the parent exited or
// is done) or SIGTERM.
int Serve(const std::string& store_kind, const std::string& db,
          const std::string& etcd_endpoint) {
  spdlog::set_level(spdlog::level::warn);
  std::unique_ptr<storage::StableStore> store;
  storage::EtcdStore* etcd_store = nullptr;  // For its counters at the end.
  if (store_kind == "rocksdb") {
    storage::RocksDbOptions so;
    so.path = db;
    so.sync = true;
    auto s = storage::OpenRocksDbStore(so);
    if (!s.ok()) {
      std::fprintf(stderr, "serve: %s\n", s.status().ToString().c_str());
      return 1;
    }
    store = *std::move(s);
  } else {
    storage::EtcdOptions eo;
    eo.endpoints = {etcd_endpoint};
    eo.key_prefix = "bench-kv/";
    auto s = storage::OpenEtcd(eo);
    if (!s.ok()) {
      std::fprintf(stderr, "serve: %s\n", s.status().ToString().c_str());
      return 1;
    }
    etcd_store = s->get();
    store = *std::move(s);
  }
  framework::RequestPipeline pipeline(*store, framework::RealClock());
  framework::Router router;
  if (!kvservice::RegisterKvRoutes(router).ok()) return 1;
  framework::HttpServerOptions ho;
  ho.port = 0;
  ho.worker_threads = 64;
  auto http = framework::StartHttpServer(ho, std::move(router), pipeline);
  if (!http.ok()) {
    std::fprintf(stderr, "serve: %s\n", http.status().ToString().c_str());
    return 1;
  }
  framework::GrpcRouter gr;
  if (!kvservice::RegisterKvGrpcMethods(gr).ok()) return 1;
  framework::GrpcServerOptions go;
  go.port = 0;
  go.worker_threads = 64;
  auto grpc = framework::StartGrpcServer(go, std::move(gr), pipeline);
  if (!grpc.ok()) {
    std::fprintf(stderr, "serve: %s\n", grpc.status().ToString().c_str());
    return 1;
  }
  std::printf("PORTS %u %u\n", (*http)->port(), (*grpc)->port());
  std::fflush(stdout);
  char buf[64];
  while (::read(STDIN_FILENO, buf, sizeof buf) > 0) {
  }
  (*grpc)->Stop();
  (*http)->Stop();
  pipeline.StopBackgroundGc();
  // Where the store round trips went (the figures behind the ratios).
  const framework::PipelineStats ps = pipeline.Stats();
  std::fprintf(stderr,
               "serve (%s): executed %llu, read-only %llu, reruns %llu, dedup lookups "
               "skipped %llu\n",
               store_kind.c_str(), static_cast<unsigned long long>(ps.executed),
               static_cast<unsigned long long>(ps.read_only),
               static_cast<unsigned long long>(ps.reruns),
               static_cast<unsigned long long>(ps.lookups_skipped));
  if (etcd_store != nullptr) {
    const storage::EtcdStoreStats es = etcd_store->Stats();
    std::fprintf(stderr,
                 "serve (etcd): %llu commits in %llu Txns; stale reads: %llu keys from the "
                 "cache, %llu from etcd\n",
                 static_cast<unsigned long long>(es.commits),
                 static_cast<unsigned long long>(es.commit_txns),
                 static_cast<unsigned long long>(es.cache_hits),
                 static_cast<unsigned long long>(es.cache_misses));
  }
  return 0;
}

// The parent's handle on a --serve child; kills and reaps it by PID.
class ServerChild {
 public:
  static std::unique_ptr<ServerChild> Start(const std::string& store_kind,
                                            const std::string& db,
                                            const std::string& etcd) {
    int in[2], out[2];
    if (::pipe(in) != 0) return nullptr;
    if (::pipe(out) != 0) return nullptr;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    std::string self = std::filesystem::read_symlink("/proc/self/exe");
    std::vector<std::string> args = {self, "--serve", "--store", store_kind,
                                     "--db", db, "--etcd", etcd};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    auto c = std::unique_ptr<ServerChild>(new ServerChild);
    const int rc = posix_spawn(&c->pid_, self.c_str(), &fa, nullptr,
                               argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out[1]);
    c->stdin_ = in[1];
    if (rc != 0) {
      c->pid_ = -1;
      ::close(out[0]);
      return nullptr;
    }
    FILE* f = ::fdopen(out[0], "r");
    char line[128] = {};
    unsigned h = 0, g = 0;
    const bool ok = f && std::fgets(line, sizeof line, f) &&
                    std::sscanf(line, "PORTS %u %u", &h, &g) == 2;
    if (f) std::fclose(f);
    if (!ok) return nullptr;
    c->http_port_ = static_cast<int>(h);
    c->grpc_port_ = static_cast<int>(g);
    return c;
  }
  ~ServerChild() {
    if (stdin_ >= 0) ::close(stdin_);
    if (pid_ > 0) {
      // Closing stdin asks it to stop; SIGKILL if it has not within 10 s.
      for (int i = 0; i < 100; ++i) {
        if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  std::string Endpoint(KvProtocol p) const {
    return absl::StrCat("127.0.0.1:", p == KvProtocol::kHttp ? http_port_ : grpc_port_);
  }

 private:
  ServerChild() = default;
  pid_t pid_ = -1;
  int stdin_ = -1;
  int http_port_ = 0, grpc_port_ = 0;
};

// ------------------------------------------------------------ drivers ----

// Runs `op(client, seq)` (true = success) from `clients` threads for
// `duration`; CPU is sampled from `pid` (0: none).
Run Drive(int clients, std::chrono::milliseconds duration, pid_t pid,
          const ClosedLoopOp& op) {
  const double cpu0 = pid > 0 ? ProcCpuSeconds(pid) : 0;
  ClosedLoopResult load = RunClosedLoop(clients, duration, op);
  Run r;
  r.cpu_s = pid > 0 ? ProcCpuSeconds(pid) - cpu0 : 0;
  r.latencies_us = std::move(load.latencies_us);
  r.ops = r.latencies_us.size();
  r.ops_per_s = load.ops_per_s;
  r.errors = load.errors;
  return r;
}

// One redis-benchmark run of `test` (set, get, incr) sized to last about
// `seconds` at `expected_rate`, with the server's CPU time.
std::optional<Run> MeasureRedis(const RedisBaseline& redis, const std::string& test,
                                int clients, double seconds, size_t value_bytes,
                                double expected_rate) {
  const double cpu0 = ProcCpuSeconds(redis.pid());
  std::optional<RedisBaseline::Result> result =
      redis.Measure(test, clients, seconds, value_bytes, expected_rate,
                    /*min_requests=*/1000, /*key_space=*/100000);
  if (!result) return std::nullopt;
  Run r;
  r.ops_per_s = result->row.ops_per_s;
  r.ops = result->requests;
  r.p50_us = result->row.p50_us;
  r.p99_us = result->row.p99_us;
  r.cpu_s = ProcCpuSeconds(redis.pid()) - cpu0;
  return r;
}

struct Options {
  std::vector<int> clients = {1, 16, 64};
  double seconds = 2;
  int reps = 3;
  std::vector<std::string> ops = {"put", "get", "incr"};
  std::vector<std::string> protos = {"http", "grpc"};
  std::vector<std::string> stores = {"rocksdb", "etcd"};
  std::vector<std::string> baselines = {"redis", "raw_rocksdb", "raw_etcd"};
  std::string dir = "/var/tmp";
  size_t value_bytes = 100;
  int etcd_members = 1;
  std::string json;
};

bool Has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// One run of a baseline at a client count (the raw etcd Txn loop).
using BaselineRun = std::function<Run(int clients)>;

// The baton cells of one store. With `paired` (etcd), each PUT/INCR rep is
// paired with a run of the baseline at the same client count, right before
// or after it (RunPaired alternates which goes first); those runs go to
// (*paired_runs)[clients] and the cell gets the median ratio of the pairs.
void MeasureBaton(const Options& o, const std::string& store_kind,
                  const std::string& etcd_endpoint, std::vector<Cell>* cells,
                  int* round, const BaselineRun* paired = nullptr,
                  std::map<int, std::vector<Run>>* paired_runs = nullptr) {
  std::string tmpl = o.dir + "/kv-throughput-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::fprintf(stderr, "mkdtemp in %s failed\n", o.dir.c_str());
    return;
  }
  const std::string db = tmpl;
  {
    std::unique_ptr<ServerChild> server =
        ServerChild::Start(store_kind, db + "/db", etcd_endpoint);
    if (!server) {
      std::fprintf(stderr, "cannot start the %s server\n", store_kind.c_str());
      std::filesystem::remove_all(db);
      return;
    }
    const std::string value =
        absl::StrCat("\"", std::string(o.value_bytes, 'v'), "\"");
    const auto dur = std::chrono::milliseconds(static_cast<int>(o.seconds * 1000));
    for (const std::string& proto_name : o.protos) {
      const KvProtocol proto = proto_name == "grpc" ? KvProtocol::kGrpc : KvProtocol::kHttp;
      framework::client::ClientOptions co;
      co.async_threads = 1;
      auto client = KvClient::Connect(proto, server->Endpoint(proto), co);
      if (!client.ok()) {
        std::fprintf(stderr, "connect: %s\n", client.status().ToString().c_str());
        continue;
      }
      KvClient& kv = **client;
      // Keys GET reads: one per client, written once.
      const int max_clients = *std::max_element(o.clients.begin(), o.clients.end());
      for (int c = 0; c < max_clients; ++c) {
        (void)kv.Put(absl::StrCat("g", c), value);
      }
      for (const std::string& op : o.ops) {
        for (int n : o.clients) {
          std::vector<Run> runs;
          auto baton_run = [&]() {
            const int r = ++*round;
            runs.push_back(Drive(n, dur, server->pid(), [&](int c, uint64_t seq) {
              if (op == "put") {
                return kv.Put(absl::StrCat("p", r, "-", c, "-", seq % 64), value).ok();
              }
              if (op == "get") return kv.Get(absl::StrCat("g", c)).ok();
              return kv.Incr(absl::StrCat("i", c)).ok();
            }));
            return runs.back().ops_per_s;
          };
          double paired_ratio = -1;
          if (paired != nullptr && op != "get") {
            absl::StatusOr<PairedRuns> pairs =
                RunPaired(o.reps, [&](int system, int) -> absl::StatusOr<double> {
                  if (system == 0) return baton_run();
                  Run base = (*paired)(n);
                  const double rate = base.ops_per_s;
                  (*paired_runs)[n].push_back(std::move(base));
                  return rate;
                });
            if (pairs.ok()) paired_ratio = pairs->paired.median_ratio;
          } else {
            for (int rep = 0; rep < o.reps; ++rep) baton_run();
          }
          Cell cell{"baton", store_kind, proto_name, op, n};
          cell = Reduce(cell, runs);
          cell.paired_ratio = paired_ratio;
          cell.peak_rss_mib = ProcPeakRssMiB(server->pid());
          Print(cell);
          cells->push_back(cell);
        }
      }
    }
  }
  std::filesystem::remove_all(db);
}

int Main(int argc, char** argv) {
  CLI::App app{"kv PUT/GET/INCR over HTTP and gRPC on RocksDB and etcd, beside "
               "Redis (appendfsync always), raw RocksDB and raw etcd"};
  Options o;
  bool serve = false;
  std::string serve_store = "rocksdb", serve_db, serve_etcd;
  app.add_option("--clients", o.clients, "client counts")->delimiter(',');
  app.add_option("--seconds", o.seconds, "length of one run");
  app.add_option("--reps", o.reps, "runs per cell (median reported)");
  app.add_option("--ops", o.ops, "put,get,incr")->delimiter(',');
  app.add_option("--protos", o.protos, "http,grpc")->delimiter(',');
  app.add_option("--stores", o.stores, "rocksdb,etcd (empty: none)")->delimiter(',');
  app.add_option("--baselines", o.baselines, "redis,raw_rocksdb,raw_etcd")
      ->delimiter(',');
  app.add_option("--dir", o.dir, "directory on the disk under test");
  app.add_option("--value-bytes", o.value_bytes, "bytes per value");
  app.add_option("--etcd-members", o.etcd_members,
                 "members of the loopback etcd cluster (baton and raw etcd both talk to the "
                 "first; its CPU is the raw_etcd row's)")
      ->check(CLI::Range(1, 5));
  app.add_option("--json", o.json, "also write the cells to this file");
  app.add_flag("--serve", serve, "internal: run the server child");
  app.add_option("--store", serve_store, "internal: --serve's store");
  app.add_option("--db", serve_db, "internal: --serve's RocksDB path");
  app.add_option("--etcd", serve_etcd, "internal: --serve's etcd endpoint");
  CLI11_PARSE(app, argc, argv);
  if (serve) return Serve(serve_store, serve_db, serve_etcd);
  spdlog::set_level(spdlog::level::warn);
  ::signal(SIGPIPE, SIG_IGN);

  std::vector<Cell> cells;
  int round = 0;
  const auto dur = std::chrono::milliseconds(static_cast<int>(o.seconds * 1000));
  std::printf("%-11s %-7s %-6s %-4s %4s %10s %9s %9s %8s %8s %7s\n", "system", "store",
              "proto", "op", "cli", "ops/s", "p50_us", "p99_us", "cpu_s/1k",
              "rss_MiB", "vs_raw");

  if (Has(o.stores, "rocksdb")) MeasureBaton(o, "rocksdb", "", &cells, &round);

  if (Has(o.baselines, "raw_rocksdb")) {
    for (int n : o.clients) {
      std::vector<Run> runs;
      for (int rep = 0; rep < o.reps; ++rep) {
        RawRocksDbOptions ro;
        ro.dir = o.dir;
        ro.threads = n;
        ro.duration = dur;
        ro.value_bytes = o.value_bytes;
        const double c0 = ProcCpuSeconds(::getpid());
        auto raw = MeasureRawRocksDbSyncedPuts(ro);
        if (!raw.ok()) {
          std::fprintf(stderr, "raw rocksdb: %s\n", raw.status().ToString().c_str());
          break;
        }
        Run r;
        r.ops_per_s = raw->ops_per_sec;
        r.ops = raw->ops;
        r.cpu_s = ProcCpuSeconds(::getpid()) - c0;
        r.p50_us = raw->p50_us;
        r.p99_us = raw->p99_us;
        runs.push_back(r);
      }
      Cell cell = Reduce({"raw_rocksdb", "rocksdb", "engine", "put", n}, runs);
      Print(cell);
      cells.push_back(cell);
    }
  }

  if (Has(o.baselines, "redis")) {
    std::unique_ptr<RedisBaseline> redis = RedisBaseline::Start(o.dir);
    if (!redis) {
      std::fprintf(stderr, "redis-server/redis-benchmark not available: no Redis baseline\n");
    } else {
      for (const std::string& op : o.ops) {
        const std::string test = op == "put" ? "set" : op;
        for (int n : o.clients) {
          std::vector<Run> runs;
          // Size each run from the first (redis-benchmark takes a count).
          double expected = 2000;
          for (int rep = 0; rep < o.reps; ++rep) {
            auto r = MeasureRedis(*redis, test, n, o.seconds, o.value_bytes, expected);
            if (!r) break;
            expected = r->ops_per_s;
            runs.push_back(*r);
          }
          Cell cell = Reduce({"redis", "redis", "resp", op, n}, runs);
          cell.peak_rss_mib = ProcPeakRssMiB(redis->pid());
          Print(cell);
          cells.push_back(cell);
        }
      }
    }
  }

  const bool need_etcd = Has(o.stores, "etcd") || Has(o.baselines, "raw_etcd");
  if (need_etcd) {
    storage::testing::EtcdLaunchOptions launch;
    launch.temp_root = o.dir;  // On disk, not tmpfs: fsync costs what it costs.
    launch.heartbeat_ms = 100;  // etcd's defaults.
    launch.election_ms = 1000;
    launch.members = o.etcd_members;
    auto cluster = storage::testing::EtcdCluster::Start(launch);
    if (!cluster.ok()) {
      std::fprintf(stderr, "cannot start etcd: %s\n", cluster.status().ToString().c_str());
    } else {
      const std::string endpoint = (*cluster)->ClientEndpoint(0);
      const pid_t etcd_pid = (*cluster)->Pid(0);
      std::unique_ptr<storage::EtcdStore> raw_store;
      BaselineRun raw_run;
      if (Has(o.baselines, "raw_etcd")) {
        storage::EtcdOptions eo;
        eo.endpoints = {endpoint};
        eo.key_prefix = "bench-raw-store/";
        auto opened = storage::OpenEtcd(eo);
        if (!opened.ok()) {
          std::fprintf(stderr, "%s\n", opened.status().ToString().c_str());
        } else {
          raw_store = *std::move(opened);
          raw_run = [&o, &round, dur, etcd_pid,
                     &client = raw_store->client()](int n) {
            const std::string value(o.value_bytes, 'v');
            // The completion record the pipeline writes is a few hundred bytes.
            const std::string record(256, 'r');
            const int r = ++round;
            return Drive(n, dur, etcd_pid, [&](int c, uint64_t seq) {
              const std::string rec = absl::StrCat("bench-raw/done/", r, "/", c, "/", seq);
              return bench::RawEtcdPut(client, absl::StrCat("bench-raw/state/", c, "-", seq % 64),
                                       value, rec, record);
            });
          };
        }
      }
      // The raw etcd runs, by client count: interleaved with baton's PUT and
      // INCR reps when both are measured, else a series of their own.
      std::map<int, std::vector<Run>> raw_runs;
      if (Has(o.stores, "etcd")) {
        // The server child's CPU is baton's; etcd's own CPU per request is
        // in the raw_etcd row.
        MeasureBaton(o, "etcd", endpoint, &cells, &round, raw_run ? &raw_run : nullptr,
                     &raw_runs);
      }
      if (raw_run) {
        for (int n : o.clients) {
          std::vector<Run>& runs = raw_runs[n];
          while (static_cast<int>(runs.size()) < o.reps) runs.push_back(raw_run(n));
          Cell cell = Reduce({"raw_etcd", "etcd", "grpc", "put", n}, runs);
          cell.peak_rss_mib = ProcPeakRssMiB(etcd_pid);
          Print(cell);
          cells.push_back(cell);
        }
      }
    }
  }

  std::printf(
      "\nops/s: median of %d runs of %.1f s; p50/p99 over all runs (redis: "
      "redis-benchmark's, raw: median of the runs'); cpu_s/1k = server "
      "user+sys CPU seconds per 1000 requests (raw_rocksdb: the engine in this "
      "process; raw_etcd: etcd); rss = server peak RSS.\n",
      o.reps, o.seconds);
  if (!o.json.empty()) {
    nlohmann::json j;
    j["benchmark"] = "kv_throughput";
    j["seconds"] = o.seconds;
    j["reps"] = o.reps;
    j["value_bytes"] = o.value_bytes;
    j["cells"] = nlohmann::json::array();
    for (const Cell& c : cells) j["cells"].push_back(ToJson(c));
    if (!WriteJsonFileOrReport(o.json, j)) return 1;
  }
  return 0;
}

}  // namespace
}  // namespace baton::bench

int main(int argc, char** argv) { return baton::bench::Main(argc, argv); }

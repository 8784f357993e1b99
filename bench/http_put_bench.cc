// Durable PUTs/s over HTTP (keep-alive) through the whole baton path: Beast
// front end -> request pipeline (dedup read, handler, one atomic commit of
// state + completion record) -> RocksDB store with fsync, against two
// baselines measured in the same run on the same disk:
//   raw    RocksDB synced Puts with as many writer threads (bench/raw_rocksdb.h)
//   redis  redis-server with appendonly yes + appendfsync always, driven by
//          redis-benchmark SET with as many clients (if installed; --redis)
// Each figure is the median of --reps runs of --seconds each; ratios are
// baton/raw and baton/redis of the medians. Every PUT carries a unique
// Idempotency-Key (so every request writes a completion record, the path
// users care about). A "nosync" run of baton (fsync off) shows how much of the
// time is the disk; commits/fsync and CPU time per request show the rest.
//
// The baton clients run in this process: by default one event-loop thread
// drives every connection (as redis-benchmark does for Redis); --client
// threads gives each connection a blocking thread. --handlers picks where the
// server runs handlers (auto: event loop with the embedded store; workers).
//
//   baton-http-bench [--clients 1,16,64] [--seconds 2] [--reps 3]
//                    [--dir /var/tmp] [--value-bytes 100] [--redis=true]
//                    [--client async|threads] [--handlers auto|io|workers]
//                    [--json FILE]
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>  // Before Asio: Boost 1.74 uses std::exchange without it.
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/lib/json_output.h"
#include "bench/lib/machine_load.h"
#include "bench/lib/redis_baseline.h"
#include "bench/lib/stats.h"
#include "bench/raw_rocksdb.h"
#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "framework/clock.h"
#include "framework/http_server.h"
#include "framework/pipeline.h"
#include "nlohmann/json.hpp"
#include "samples/kvservice/kv_service.h"
#include "spdlog/spdlog.h"
#include "storage/rocksdb/rocksdb_store.h"


namespace baton::bench {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

struct BatonRun {
  ThroughputResult result;
  double commits_per_fsync = 0;
  double cpu_us_per_request = 0;  // Whole process: server and clients.
};

// One closed-loop client connection of the event-driven client: sends a PUT,
// waits for its response, records the latency, sends the next.
class AsyncClient : public std::enable_shared_from_this<AsyncClient> {
 public:
  AsyncClient(net::io_context& ioc, int index, const std::string& body,
              Clock::time_point end, std::vector<double>* latencies,
              std::atomic<bool>* failed)
      : socket_(ioc),
        index_(index),
        body_(body),
        end_(end),
        latencies_(latencies),
        failed_(failed) {}

  void Start(uint16_t port) {
    beast::error_code ec;
    socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port),
                    ec);
    if (!ec) socket_.set_option(tcp::no_delay(true), ec);
    if (ec) return Fail(ec.message());
    Next();
  }

 private:
  void Next() {
    before_ = Clock::now();
    if (before_ >= end_) return;
    const std::string id = absl::StrCat("c", index_, "-", seq_++);
    req_ = {http::verb::put, "/kv/" + id, 11};
    req_.set(http::field::host, "127.0.0.1");
    req_.set("Idempotency-Key", "\"" + id + "\"");
    req_.set(http::field::content_type, "application/json");
    req_.body() = body_;
    req_.prepare_payload();
    http::async_write(socket_, req_,
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        if (ec) return self->Fail(ec.message());
                        self->Read();
                      });
  }

  void Read() {
    res_ = {};
    http::async_read(
        socket_, buffer_, res_,
        [self = shared_from_this()](beast::error_code ec, size_t) {
          if (ec) return self->Fail(ec.message());
          if (self->res_.result_int() != 200) {
            return self->Fail(absl::StrCat("PUT -> ", self->res_.result_int(),
                                           " ", self->res_.body()));
          }
          self->latencies_->push_back(
              std::chrono::duration<double, std::micro>(Clock::now() -
                                                        self->before_)
                  .count());
          self->Next();
        });
  }

  void Fail(const std::string& why) {
    spdlog::error("client: {}", why);
    *failed_ = true;
  }

  tcp::socket socket_;
  const int index_;
  const std::string& body_;
  const Clock::time_point end_;
  std::vector<double>* latencies_;
  std::atomic<bool>* failed_;
  uint64_t seq_ = 0;
  Clock::time_point before_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
};

absl::StatusOr<BatonRun> MeasureBaton(const std::string& dir, int clients,
                                      std::chrono::milliseconds duration,
                                      size_t value_bytes, bool sync,
                                      int workers, int io_threads,
                                      bool async_client,
                                      framework::HttpServerOptions::HandlerThreads
                                          handler_threads) {
  std::string tmpl = dir + "/http-bench-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return absl::UnavailableError(absl::StrCat("mkdtemp in ", dir));
  }
  const std::string path = tmpl;
  storage::RocksDbOptions so;
  so.path = path + "/db";
  so.sync = sync;
  auto opened = storage::OpenRocksDb(so);
  if (!opened.ok()) return opened.status();
  std::unique_ptr<storage::RocksDbStore> store = std::move(*opened);
  BatonRun run;
  {
    framework::RequestPipeline pipeline(*store, framework::RealClock());
    framework::Router router;
    if (absl::Status s = kvservice::RegisterKvRoutes(router); !s.ok()) return s;
    framework::HttpServerOptions ho;
    ho.port = 0;
    ho.worker_threads = workers > 0 ? workers : std::max(16, clients);
    ho.io_threads = io_threads;
    ho.handler_threads = handler_threads;
    auto server = framework::StartHttpServer(ho, std::move(router), pipeline);
    if (!server.ok()) return server.status();
    const uint16_t port = (*server)->port();

    const std::string body =
        absl::StrCat(R"({"value":")", std::string(value_bytes, 'v'), "\"}");
    std::vector<std::vector<double>> latencies(static_cast<size_t>(clients));
    std::atomic<bool> failed{false};
    const uint64_t fsyncs_before = store->Stats().wal_syncs;
    const uint64_t commits_before = store->Stats().commits_ok;
    const double cpu_before = ProcessCpuSeconds();
    const Clock::time_point start = Clock::now();
    const Clock::time_point end = start + duration;
    std::vector<std::thread> threads;
    if (async_client) {
      // Like redis-benchmark: one thread drives every connection.
      threads.emplace_back([&] {
        net::io_context ioc;
        for (int t = 0; t < clients; ++t) {
          std::make_shared<AsyncClient>(ioc, t, body, end,
                                        &latencies[static_cast<size_t>(t)],
                                        &failed)
              ->Start(port);
        }
        ioc.run();
      });
    }
    for (int t = 0; t < clients && !async_client; ++t) {
      threads.emplace_back([&, t] {
        try {
          net::io_context ioc;
          tcp::socket socket(ioc);
          socket.connect(
              tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
          socket.set_option(tcp::no_delay(true));
          beast::flat_buffer buffer;
          std::vector<double>& mine = latencies[static_cast<size_t>(t)];
          for (uint64_t i = 0;; ++i) {
            const Clock::time_point before = Clock::now();
            if (before >= end) break;
            const std::string id = absl::StrCat("c", t, "-", i);
            http::request<http::string_body> req{http::verb::put,
                                                 "/kv/" + id, 11};
            req.set(http::field::host, "127.0.0.1");
            req.set("Idempotency-Key", "\"" + id + "\"");
            req.set(http::field::content_type, "application/json");
            req.body() = body;
            req.prepare_payload();
            http::write(socket, req);
            http::response<http::string_body> res;
            http::read(socket, buffer, res);
            if (res.result_int() != 200) {
              spdlog::error("PUT -> {} {}", res.result_int(), res.body());
              failed = true;
              return;
            }
            mine.push_back(std::chrono::duration<double, std::micro>(
                               Clock::now() - before)
                               .count());
          }
        } catch (const std::exception& e) {
          spdlog::error("client: {}", e.what());
          failed = true;
        }
      });
    }
    for (std::thread& th : threads) th.join();
    const double seconds =
        std::chrono::duration<double>(Clock::now() - start).count();
    const double cpu = ProcessCpuSeconds() - cpu_before;
    (*server)->Stop();
    if (failed) return absl::InternalError("a client failed");
    std::vector<double> all;
    for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
    run.result = Summarize(std::move(all), seconds);
    const uint64_t fsyncs = store->Stats().wal_syncs - fsyncs_before;
    const uint64_t commits = store->Stats().commits_ok - commits_before;
    run.commits_per_fsync = fsyncs ? static_cast<double>(commits) / fsyncs : 0;
    run.cpu_us_per_request =
        run.result.ops ? cpu * 1e6 / static_cast<double>(run.result.ops) : 0;
  }
  (void)store->Close();
  store.reset();
  std::filesystem::remove_all(path);
  return run;
}

// SETs/s and p50/p99 (us) of Redis at `clients` connections for about
// `seconds`.
std::optional<ThroughputResult> MeasureRedis(const RedisBaseline& redis, int clients,
                                             double seconds, size_t value_bytes,
                                             double expected_rate) {
  std::optional<RedisBaseline::Result> result =
      redis.Measure("set", clients, seconds, value_bytes, expected_rate,
                    /*min_requests=*/2000, /*key_space=*/1000000);
  if (!result) return std::nullopt;
  ThroughputResult r;
  r.ops_per_sec = result->row.ops_per_s;
  r.p50_us = result->row.p50_us;
  r.p99_us = result->row.p99_us;
  r.ops = result->requests;
  r.seconds = r.ops_per_sec > 0 ? static_cast<double>(r.ops) / r.ops_per_sec : 0;
  return r;
}

int Main(int argc, char** argv) {
  CLI::App app{"baton durable HTTP PUTs/s vs raw RocksDB and Redis (fsync always)"};
  std::string clients_list = "1,16,64";
  double seconds = 2;
  int reps = 3;
  std::string dir = "/var/tmp";
  size_t value_bytes = 100;
  bool with_redis = true;
  bool with_nosync = true;
  bool with_raw = true;
  int workers = 0;
  int io_threads = 1;
  std::string client_mode = "async";
  std::string handlers = "auto";
  app.add_option("--clients", clients_list, "comma-separated client counts");
  app.add_option("--seconds", seconds, "length of each run");
  app.add_option("--reps", reps, "runs per figure (median reported)");
  app.add_option("--dir", dir, "directory on the disk under test");
  app.add_option("--value-bytes", value_bytes, "bytes per value");
  app.add_option("--redis", with_redis, "measure redis appendfsync always");
  app.add_option("--nosync", with_nosync, "also measure baton with fsync off");
  app.add_option("--raw", with_raw,
                 "measure the raw RocksDB baseline (false: e.g. to profile)");
  app.add_option("--worker-threads", workers,
                 "server worker threads (0: max(16, clients))");
  app.add_option("--io-threads", io_threads, "server event-loop threads");
  app.add_option("--client", client_mode,
                 "async: one event-loop thread drives every connection (as "
                 "redis-benchmark does); threads: one blocking thread per "
                 "connection")
      ->check(CLI::IsMember({"async", "threads"}));
  app.add_option("--handlers", handlers,
                 "where the server runs handlers: auto, io (event loop), "
                 "workers")
      ->check(CLI::IsMember({"auto", "io", "workers"}));
  std::string json_path;
  app.add_option("--json", json_path, "also write the rows to this file");
  CLI11_PARSE(app, argc, argv);
  nlohmann::json rows = nlohmann::json::array();
  spdlog::set_level(spdlog::level::warn);
  const bool async_client = client_mode == "async";
  using HT = framework::HttpServerOptions::HandlerThreads;
  const HT handler_threads = handlers == "io"        ? HT::kIoThreads
                             : handlers == "workers" ? HT::kWorkers
                                                     : HT::kAuto;

  std::vector<int> counts;
  for (absl::string_view c : absl::StrSplit(clients_list, ',')) {
    int n = 0;
    if (!absl::SimpleAtoi(c, &n) || n < 1) {
      std::fprintf(stderr, "bad --clients\n");
      return 2;
    }
    counts.push_back(n);
  }
  std::unique_ptr<RedisBaseline> redis =
      with_redis ? RedisBaseline::Start(dir) : nullptr;
  const auto dur = std::chrono::milliseconds(static_cast<int>(seconds * 1000));

  std::printf(
      "%-7s %12s %12s %12s %12s %8s %8s %10s %10s %10s %9s %9s\n", "clients",
      "raw_rocksdb", "redis_af", "baton_http", "baton_nosync", "b/raw",
      "b/redis", "p50_us", "p99_us", "redis_p99", "commit/fs", "cpu_us/rq");
  for (int c : counts) {
    std::vector<ThroughputResult> raws, rediss;
    std::vector<BatonRun> batons, nosyncs;
    for (int rep = 0; rep < reps; ++rep) {
      RawRocksDbOptions ro;
      ro.dir = dir;
      ro.threads = c;
      ro.duration = dur;
      ro.value_bytes = value_bytes;
      if (with_raw) {
        auto raw = MeasureRawRocksDbSyncedPuts(ro);
        if (!raw.ok()) {
          std::fprintf(stderr, "raw: %s\n", raw.status().ToString().c_str());
          return 1;
        }
        raws.push_back(*raw);
      }
      auto b = MeasureBaton(dir, c, dur, value_bytes, /*sync=*/true, workers,
                            io_threads, async_client, handler_threads);
      if (!b.ok()) {
        std::fprintf(stderr, "baton: %s\n", b.status().ToString().c_str());
        return 1;
      }
      batons.push_back(*b);
      if (with_nosync) {
        auto n = MeasureBaton(dir, c, dur, value_bytes, /*sync=*/false,
                              workers, io_threads, async_client,
                              handler_threads);
        if (n.ok()) nosyncs.push_back(*n);
      }
      if (redis) {
        auto r = MeasureRedis(*redis, c, seconds, value_bytes, b->result.ops_per_sec);
        if (r) rediss.push_back(*r);
      }
    }
    auto rate = [](const ThroughputResult& r) { return r.ops_per_sec; };
    const double raw = MedianOf(raws, rate);
    const double red = MedianOf(rediss, rate);
    const double bat =
        MedianOf(batons, [](const BatonRun& r) { return r.result.ops_per_sec; });
    const double nos =
        MedianOf(nosyncs, [](const BatonRun& r) { return r.result.ops_per_sec; });
    const double baton_p50 =
        MedianOf(batons, [](const BatonRun& r) { return r.result.p50_us; });
    const double baton_p99 =
        MedianOf(batons, [](const BatonRun& r) { return r.result.p99_us; });
    const double redis_p50 =
        MedianOf(rediss, [](const ThroughputResult& r) { return r.p50_us; });
    const double redis_p99 =
        MedianOf(rediss, [](const ThroughputResult& r) { return r.p99_us; });
    const double per_fsync =
        MedianOf(batons, [](const BatonRun& r) { return r.commits_per_fsync; });
    const double cpu_us =
        MedianOf(batons, [](const BatonRun& r) { return r.cpu_us_per_request; });
    std::printf(
        "%-7d %12.0f %12.0f %12.0f %12.0f %8.2f %8.2f %10.0f %10.0f %10.0f "
        "%9.1f %9.0f\n",
        c, raw, red, bat, nos, raw ? bat / raw : 0, red ? bat / red : 0,
        baton_p50, baton_p99, redis_p99, per_fsync, cpu_us);
    std::fflush(stdout);
    rows.push_back({{"clients", c},
                    {"raw_rocksdb_ops_per_s", raw},
                    {"redis_ops_per_s", red},
                    {"baton_ops_per_s", bat},
                    {"baton_nosync_ops_per_s", nos},
                    {"baton_over_raw", raw ? bat / raw : 0},
                    {"baton_over_redis", red ? bat / red : 0},
                    {"baton_p50_us", baton_p50},
                    {"baton_p99_us", baton_p99},
                    {"redis_p50_us", redis_p50},
                    {"redis_p99_us", redis_p99},
                    {"commits_per_fsync", per_fsync},
                    {"cpu_us_per_request", cpu_us}});
  }
  if (!json_path.empty()) {
    nlohmann::json j = {{"benchmark", "http_put"}, {"seconds", seconds}, {"reps", reps},
                        {"value_bytes", value_bytes}, {"client", client_mode},
                        {"handlers", handlers}, {"rows", rows}};
    if (!WriteJsonFileOrReport(json_path, j)) return 1;
  }
  std::printf(
      "\nrates are ops/s (medians of %d runs of %.1f s); b/raw = baton_http / "
      "raw_rocksdb, b/redis = baton_http / redis_af (redis-server appendonly, "
      "appendfsync always, redis-benchmark SET);\ncommit/fs = store commits "
      "per WAL fsync; cpu_us/rq = process CPU (server + in-process clients) "
      "per request.\nbaton client: %s; server handlers: %s.\n",
      reps, seconds,
      async_client ? "async (one thread, like redis-benchmark)"
                   : "threads (one blocking thread per connection)",
      handlers.c_str());
  return 0;
}

}  // namespace
}  // namespace baton::bench

int main(int argc, char** argv) { return baton::bench::Main(argc, argv); }

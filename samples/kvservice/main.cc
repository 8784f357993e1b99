// baton-kvserver: the sample key-value service over HTTP/1.1 and (when
// configured) gRPC, both on one pipeline over the embedded RocksDB store or
// an etcd cluster (config `store:`), optionally with the take-over agent
// embedded (config `takeover:`; framework/embedded_agent.h): the server then
// fences its commits by the service addresses it holds and serves
// GET /baton/status and POST /baton/drain. The agent runs as a supervised
// child process (`takeover_mode: process`, default: baton-takeoverd
// --parent-fd; the server's crash hands its addresses over at once) or on a
// thread of this process (`takeover_mode: thread`). Exit codes: 0 clean shutdown
// (SIGTERM/SIGINT), 1 runtime failure (store cannot open, port in use, agent
// cannot start), 2 bad configuration or flags.
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_join.h"
#include "framework/clock.h"
#include "framework/grpc/grpc_server.h"
#include "framework/http_server.h"
#include "framework/pipeline.h"
#include "nlohmann/json.hpp"
#include "samples/kvservice/config.h"
#include "samples/kvservice/kv_grpc.h"
#include "samples/kvservice/kv_service.h"
#include "spdlog/spdlog.h"
#include "storage/rocksdb/rocksdb_store.h"
#if BATON_KV_ETCD
#include "storage/etcd/etcd_store.h"
#endif
#if BATON_KV_AGENT
#include "framework/embedded_agent.h"
#endif

namespace {

using baton::kvservice::KvServerConfig;

// Test only (--test-kill-after-records N): a store that SIGKILLs its own
// process right after the Nth commit that wrote a completion record became
// durable, before the pipeline can send the reply: the "crash between commit
// and send" that a retry must survive (tests/integration/client_crash_test).
class KillAfterRecordsStore : public baton::storage::StableStore {
 public:
  KillAfterRecordsStore(baton::storage::StableStore& inner, int n)
      : inner_(inner), left_(n) {}
  absl::StatusOr<baton::storage::Versioned> Get(std::string_view key) override {
    return inner_.Get(key);
  }
  absl::StatusOr<std::vector<baton::storage::KeyValue>> Scan(
      const baton::storage::ScanOptions& o) override {
    return inner_.Scan(o);
  }
  absl::StatusOr<uint64_t> Commit(
      const std::vector<baton::storage::Condition>& conditions,
      const std::vector<baton::storage::Write>& writes) override {
    absl::StatusOr<uint64_t> r = inner_.Commit(conditions, writes);
    After(r, writes);
    return r;
  }
  void CommitAsync(std::vector<baton::storage::Condition> conditions,
                   std::vector<baton::storage::Write> writes,
                   CommitCallback done) override {
    const bool record = HasRecord(writes);
    inner_.CommitAsync(std::move(conditions), std::move(writes),
                       [this, record, done = std::move(done)](
                           absl::StatusOr<uint64_t> r) mutable {
                         if (r.ok() && record) Count();
                         done(std::move(r));
                       });
  }
  bool CommitsAsynchronously() const override {
    return inner_.CommitsAsynchronously();
  }
  absl::Status Ping() override { return inner_.Ping(); }

 private:
  static bool HasRecord(const std::vector<baton::storage::Write>& writes) {
    const std::string prefix =
        std::string(baton::storage::kReservedPrefix) + "fw/c/";
    for (const auto& w : writes) {
      if (w.kind == baton::storage::Write::Kind::kPut &&
          w.key.compare(0, prefix.size(), prefix) == 0) {
        return true;
      }
    }
    return false;
  }
  void After(const absl::StatusOr<uint64_t>& r,
             const std::vector<baton::storage::Write>& writes) {
    if (r.ok() && HasRecord(writes)) Count();
  }
  void Count() {
    if (--left_ == 0) {
      std::fprintf(stderr, "baton-kvserver: --test-kill-after-records: SIGKILL\n");
      raise(SIGKILL);
    }
  }
  baton::storage::StableStore& inner_;
  std::atomic<int> left_;
};

void PrintUsage(const std::string& host, uint16_t port) {
  const std::string base = "http://" + host + ":" + std::to_string(port);
  std::printf(
      "baton-kvserver listening on %s\n"
      "Try (a retry with the same Idempotency-Key is answered from the saved "
      "reply, never executed twice):\n"
      "  curl -i -X PUT %s/kv/greeting -H 'Idempotency-Key: \"put-1\"' -d "
      "'{\"value\":\"hello\"}'\n"
      "  curl -i %s/kv/greeting\n"
      "  curl -i -X POST %s/kv/visits/incr -H 'Idempotency-Key: \"incr-1\"' "
      "-d '{\"by\":1}'\n"
      "  curl -i -X POST %s/kv/visits/incr -H 'Idempotency-Key: \"incr-1\"' "
      "-d '{\"by\":1}'   # replay: same reply, Idempotent-Replayed: true\n"
      "  curl -i -X POST %s/kv/greeting/cas -H 'Idempotency-Key: \"cas-1\"' "
      "-d '{\"expected\":\"hello\",\"value\":\"hi\"}'\n"
      "  curl -i -X POST %s/kv/log/append -H 'Idempotency-Key: \"app-1\"' "
      "-d '{\"value\":\"line\\n\"}'\n"
      "  curl -i -X DELETE %s/kv/greeting -H 'Idempotency-Key: \"del-1\"'\n",
      base.c_str(), base.c_str(), base.c_str(), base.c_str(), base.c_str(),
      base.c_str(), base.c_str(), base.c_str());
  const std::string hp = host + ":" + std::to_string(port);
  std::printf(
      "With baton's retrying client (a request id per call, retried until "
      "answered; prints attempts and the replay flag):\n"
      "  build/samples/kvservice/baton-kv --http %s incr visits\n",
      hp.c_str());
  std::fflush(stdout);
}

// GET /baton/stats: the request pipeline's counters and, on etcd (`etcd` is
// then the EtcdStore the pipeline uses, else null), the store's: commits and
// the Txns that carried them, read-cache hits, endpoint fail-overs, unknown
// outcomes. For operators and benchmarks.
absl::Status RegisterStatsRoute(baton::framework::Router& router,
                                baton::framework::RequestPipeline& pipeline,
                                [[maybe_unused]] baton::storage::StableStore* etcd) {
  return router.Add(
      "GET", "/baton/stats",
      baton::framework::MakeHandler(
          [&pipeline, etcd](const baton::framework::Request&,
                            baton::framework::Transaction&)
              -> absl::StatusOr<baton::framework::Reply> {
            const baton::framework::PipelineStats p = pipeline.Stats();
            nlohmann::json j;
            j["pipeline"] = {{"executed", p.executed},
                             {"replayed", p.replayed},
                             {"read_only", p.read_only},
                             {"reruns", p.reruns},
                             {"unknown_outcomes", p.unknown_outcomes},
                             {"waited", p.waited},
                             {"collected", p.collected},
                             {"revalidations", p.revalidations},
                             {"lookups_skipped", p.lookups_skipped}};
#if BATON_KV_ETCD
            if (etcd != nullptr) {
              auto* e = static_cast<baton::storage::EtcdStore*>(etcd);
              const baton::storage::EtcdStoreStats st = e->Stats();
              j["store"] = {{"kind", "etcd"},
                            {"endpoint", e->CurrentEndpoint()},
                            {"commits", st.commits},
                            {"commit_txns", st.commit_txns},
                            {"cache_hits", st.cache_hits},
                            {"cache_misses", st.cache_misses},
                            {"failovers", st.failovers},
                            {"unknown_outcomes", st.unknown_outcomes},
                            {"authentications", st.authentications}};
            }
#endif
            if (!j.contains("store")) j["store"] = {{"kind", "rocksdb"}};
            return baton::framework::Reply::Json(absl::StatusCode::kOk, j.dump());
          }));
}

void PrintGrpcUsage(const std::string& host, uint16_t port) {
  const std::string hp = host + ":" + std::to_string(port);
  std::printf(
      "gRPC (samples/kvservice/proto/kv.proto, service baton.kv.v1.Kv) on "
      "%s, same store:\n"
      "  build/samples/kvservice/baton-kv --grpc %s put greeting '\"hello\"'\n"
      "  build/samples/kvservice/baton-kv --grpc %s incr visits\n"
      "  grpcurl -plaintext -import-path samples/kvservice/proto -proto kv.proto "
      "-H 'idempotency-key: incr-2' -d '{\"key\":\"visits\"}' %s "
      "baton.kv.v1.Kv/Incr\n",
      hp.c_str(), hp.c_str(), hp.c_str(), hp.c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"baton sample key-value service (exactly-once over HTTP)"};
  std::string config_path, listen, grpc_listen, data_dir, log_level,
      ready_file, node_name, takeover_mode, takeover_binary;
  int io_threads = 0, worker_threads = 0;
  bool no_sync = false;
  int kill_after_records = 0;
  int agent_restart_ms = 0;
  app.add_option("--config", config_path, "YAML config file");
  app.add_option("--listen", listen, "host:port to listen on (port 0: any)");
  app.add_option("--grpc-listen", grpc_listen,
                 "host:port for gRPC beside HTTP (port 0: any; \"off\": no "
                 "gRPC)");
  app.add_option("--data-dir", data_dir, "store directory");
  app.add_option("--node-name", node_name,
                 "name sent as Baton-Node / baton-node (default: host name)");
  app.add_option("--io-threads", io_threads, "event-loop threads");
  app.add_option("--worker-threads", worker_threads, "handler threads");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error");
  app.add_option("--ready-file", ready_file,
                 "write host:port here once listening (for tests)");
  app.add_option("--takeover-mode", takeover_mode,
                 "process (default: the agent in a supervised child) or "
                 "thread (in this process)")
      ->check(CLI::IsMember({"process", "thread"}));
  app.add_option("--takeover-binary", takeover_binary,
                 "baton-takeoverd for --takeover-mode process (default: "
                 "beside this binary, its build tree, PATH)");
  app.add_flag("--no-sync", no_sync,
               "do not fsync commits (tests only: a machine crash loses "
               "acknowledged writes)");
  app.add_option("--test-kill-after-records", kill_after_records,
                 "tests only: SIGKILL this process right after the Nth "
                 "completion record is durable, before its reply is sent")
      ->group("");  // Hidden from --help.
  app.add_option("--test-agent-restart-ms", agent_restart_ms,
                 "tests only: first back-off before a dead agent process is "
                 "restarted (default 100 ms)")
      ->group("");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }

  KvServerConfig config;
  config.node_name = baton::kvservice::DefaultNodeName();
  if (!config_path.empty()) {
    absl::StatusOr<KvServerConfig> loaded =
        baton::kvservice::LoadConfig(config_path);
    if (!loaded.ok()) {
      std::fprintf(stderr, "baton-kvserver: %s\n",
                   std::string(loaded.status().message()).c_str());
      return 2;
    }
    config = *std::move(loaded);
  }
  if (!listen.empty()) {
    if (absl::Status s = baton::kvservice::ParseListen(listen, &config.http);
        !s.ok()) {
      std::fprintf(stderr, "baton-kvserver: %s\n",
                   std::string(s.message()).c_str());
      return 2;
    }
  }
  if (grpc_listen == "off") {
    config.grpc_enabled = false;
  } else if (!grpc_listen.empty()) {
    if (absl::Status s =
            baton::kvservice::ParseGrpcListen(grpc_listen, &config.grpc);
        !s.ok()) {
      std::fprintf(stderr, "baton-kvserver: %s\n",
                   std::string(s.message()).c_str());
      return 2;
    }
    config.grpc_enabled = true;
  }
  if (!data_dir.empty()) config.data_dir = data_dir;
  if (io_threads > 0) config.http.io_threads = io_threads;
  if (worker_threads > 0) config.http.worker_threads = worker_threads;
  if (!log_level.empty()) config.log_level = log_level;
  if (!node_name.empty()) config.node_name = node_name;
  config.http.node_name = config.node_name;
  config.grpc.node_name = config.node_name;
  if (no_sync) config.sync = false;
  if (!takeover_mode.empty()) config.takeover_mode = takeover_mode;
  if (!takeover_binary.empty()) config.takeover_binary = takeover_binary;
  spdlog::level::level_enum level = spdlog::level::from_str(config.log_level);
  if (level == spdlog::level::off && config.log_level != "off") {
    std::fprintf(stderr, "baton-kvserver: unknown log level \"%s\"\n",
                 config.log_level.c_str());
    return 2;
  }
  spdlog::set_level(level);

#if BATON_KV_AGENT
  std::unique_ptr<baton::framework::ServerAgent> agent;
  if (!config.takeover_yaml.empty()) {
    absl::StatusOr<baton::framework::EmbeddedAgentConfig> agent_config =
        baton::framework::ParseEmbeddedAgentConfig(config.takeover_yaml);
    if (!agent_config.ok()) {
      std::fprintf(stderr, "baton-kvserver: config key %s\n",
                   std::string(agent_config.status().message()).c_str());
      return 2;
    }
    // Create checks the config against the core and drivers and reads the
    // key (thread: also the state and incarnation files; process: finds the
    // binary): every failure is the config's.
    absl::Status created = absl::OkStatus();
    if (config.takeover_mode == "thread") {
      auto a = baton::framework::EmbeddedAgent::Create(*agent_config);
      if (a.ok()) {
        agent = *std::move(a);
      } else {
        created = a.status();
      }
    } else {
      baton::framework::AgentSupervisorOptions options;
      options.binary = config.takeover_binary;
      if (agent_restart_ms > 0) {
        options.restart_backoff = absl::Milliseconds(agent_restart_ms);
        options.max_restart_backoff =
            std::max(options.max_restart_backoff, options.restart_backoff);
      }
      auto a = baton::framework::AgentSupervisor::Create(*agent_config,
                                                         options);
      if (a.ok()) {
        agent = *std::move(a);
      } else {
        created = a.status();
      }
    }
    if (!created.ok()) {
      std::fprintf(stderr, "baton-kvserver: takeover: %s\n",
                   std::string(created.message()).c_str());
      return 2;
    }
  }
#else
  if (!config.takeover_yaml.empty()) {
    std::fprintf(stderr,
                 "baton-kvserver: config key \"takeover\": this build has no "
                 "embedded take-over agent\n");
    return 2;
  }
#endif

  // Signals are taken by sigwait() below; block them before any thread starts
  // so that every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::error_code ec;
  std::string store_description;
  absl::StatusOr<std::unique_ptr<baton::storage::StableStore>> store =
      absl::UnavailableError("no store");
  baton::storage::StableStore* etcd_store = nullptr;  // The same store, for /baton/stats.
  if (config.store.kind == baton::kvservice::StoreConfig::Kind::kEtcd) {
#if BATON_KV_ETCD
    absl::StatusOr<std::unique_ptr<baton::storage::EtcdStore>> etcd =
        baton::storage::OpenEtcd(config.store.etcd);
    if (etcd.ok()) {
      etcd_store = etcd->get();
      store = std::unique_ptr<baton::storage::StableStore>(*std::move(etcd));
    } else {
      store = etcd.status();
    }
    store_description = "etcd " + absl::StrJoin(config.store.etcd.endpoints, ",") +
                        " prefix " + config.store.etcd.key_prefix;
    if (!store.ok()) {
      std::fprintf(stderr, "baton-kvserver: store: %s\n",
                   std::string(store.status().message()).c_str());
      return 2;
    }
#else
    std::fprintf(stderr,
                 "baton-kvserver: config key \"store.kind\": this build has "
                 "no etcd backend\n");
    return 2;
#endif
  } else {
    std::filesystem::create_directories(config.data_dir, ec);
    if (ec) {
      spdlog::error("cannot create data directory {}: {}", config.data_dir,
                    ec.message());
      return 1;
    }
    baton::storage::RocksDbOptions store_options;
    store_options.path = config.data_dir;
    store_options.sync = config.sync;
    store = baton::storage::OpenRocksDbStore(store_options);
    store_description = "rocksdb " + config.data_dir;
    if (!store.ok()) {
      spdlog::error("cannot open store {}: {}", config.data_dir,
                    std::string(store.status().message()));
      return 1;
    }
  }

  std::unique_ptr<KillAfterRecordsStore> killer;
  baton::storage::StableStore* serving_store = store->get();
  if (kill_after_records > 0) {
    killer = std::make_unique<KillAfterRecordsStore>(**store, kill_after_records);
    serving_store = killer.get();
  }
  baton::framework::RequestPipeline pipeline(*serving_store,
                                             baton::framework::RealClock(),
                                             config.pipeline);
  baton::framework::Router router;
  if (absl::Status s = baton::kvservice::RegisterKvRoutes(router); !s.ok()) {
    spdlog::error("routes: {}", std::string(s.message()));
    return 1;
  }
  if (absl::Status s = RegisterStatsRoute(router, pipeline, etcd_store); !s.ok()) {
    spdlog::error("routes: {}", std::string(s.message()));
    return 1;
  }
#if BATON_KV_AGENT
  if (agent) {
    // Fence commits by the slots the agent holds, from the first request on.
    pipeline.SetFenceTable(&agent->fences());
    if (absl::Status s = agent->RegisterRoutes(router); !s.ok()) {
      spdlog::error("routes: {}", std::string(s.message()));
      return 1;
    }
  }
#endif
  auto server = baton::framework::StartHttpServer(config.http,
                                                  std::move(router), pipeline);
  if (!server.ok()) {
    spdlog::error("{}", std::string(server.status().message()));
    return 1;
  }
  const uint16_t port = (*server)->port();
  std::unique_ptr<baton::framework::GrpcServer> grpc_server;
  if (config.grpc_enabled) {
    baton::framework::GrpcRouter grpc_router;
    if (absl::Status s = baton::kvservice::RegisterKvGrpcMethods(grpc_router);
        !s.ok()) {
      spdlog::error("gRPC methods: {}", std::string(s.message()));
      return 1;
    }
    auto g = baton::framework::StartGrpcServer(config.grpc,
                                               std::move(grpc_router), pipeline);
    if (!g.ok()) {
      spdlog::error("{}", std::string(g.status().message()));
      (*server)->Stop();
      return 1;
    }
    grpc_server = *std::move(g);
  }
  if (!ready_file.empty()) {
    // Written then renamed, so a reader never sees a partial file. Line 1:
    // HTTP host:port; line 2 (with gRPC): gRPC host:port.
    const std::string tmp = ready_file + ".tmp";
    {
      std::ofstream f(tmp, std::ios::trunc);
      f << config.http.address << ":" << port << "\n";
      if (grpc_server) {
        f << config.grpc.address << ":" << grpc_server->port() << "\n";
      }
    }
    std::filesystem::rename(tmp, ready_file, ec);
  }
  spdlog::info("node {} serving on {}:{} (store {}, sync {}, {} io / {} worker "
               "threads)",
               config.node_name, config.http.address, port, store_description,
               config.sync, config.http.io_threads,
               config.http.worker_threads);
  PrintUsage(config.http.address, port);
  if (grpc_server) {
    spdlog::info("gRPC on {}:{}", config.grpc.address, grpc_server->port());
    PrintGrpcUsage(config.grpc.address, grpc_server->port());
  }
  pipeline.StartBackgroundGc();
#if BATON_KV_AGENT
  // Only now, with the store open and both listeners up, may the agent take
  // addresses: a client that reaches a service address finds a server.
  if (agent) {
    if (absl::Status s = agent->Start(*serving_store); !s.ok()) {
      spdlog::error("take-over agent: {}", std::string(s.message()));
      if (grpc_server) grpc_server->Stop();
      (*server)->Stop();
      return 1;
    }
  }
#endif

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("signal {}: shutting down", sig);
#if BATON_KV_AGENT
  // Give the addresses away first (the grantors hear it, the next holder
  // takes over in about a round trip), then stop accepting and finish the
  // requests in flight: those still commit under this host's fence or are
  // refused as deposed, never both.
  if (agent) agent->Shutdown();
#endif
  if (grpc_server) grpc_server->Stop();
  (*server)->Stop();
  pipeline.StopBackgroundGc();
  return 0;
}

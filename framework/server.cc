#include "framework/server.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>
#include <utility>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "framework/admin/admin_server.h"
#include "framework/admin/metrics.h"
#include "framework/clock.h"
#include "framework/embedded_agent.h"
#include "framework/json.h"
#include "framework/systemd.h"
#include "takeover/daemon/metrics.h"
#include "framework/testing/fault_store.h"
#include "spdlog/spdlog.h"
#include "storage/rocksdb/rocksdb_store.h"
#if BATON_SERVER_HAVE_MEMORY_STORE
#include "storage/memory/memory_store.h"
#endif

namespace baton::framework {

// --- ServiceDefinition ---------------------------------------------------------

ServiceDefinition::ServiceDefinition(std::string name) : name_(std::move(name)) {
  const bool ok = !name_.empty() && name_.size() <= 64 &&
                  std::all_of(name_.begin(), name_.end(), [](char c) {
                    return absl::ascii_islower(c) || absl::ascii_isdigit(c) ||
                           c == '-' || c == '_';
                  });
  if (!ok) {
    Fail(absl::InvalidArgumentError(absl::StrCat(
        "service name \"", name_,
        "\" must be 1..64 lower-case letters, digits, '-' or '_'")));
  }
}

void ServiceDefinition::Fail(absl::Status status) {
  if (status_.ok() && !status.ok()) status_ = std::move(status);
}

ServiceDefinition& ServiceDefinition::Route(std::string_view method,
                                            std::string_view pattern,
                                            std::shared_ptr<Handler> handler) {
  Fail(http_.Add(method, pattern, std::move(handler)));
  return *this;
}

ServiceDefinition& ServiceDefinition::Route(std::string_view method,
                                            std::string_view pattern,
                                            HandlerFunction handler) {
  return Route(method, pattern, MakeHandler(std::move(handler)));
}

ServiceDefinition& ServiceDefinition::Method(std::string_view full_method,
                                             std::shared_ptr<Handler> handler) {
  Fail(grpc_.Add(full_method, std::move(handler)));
  return *this;
}

ServiceDefinition& ServiceDefinition::Authenticate(
    std::function<absl::StatusOr<std::string>(const Request&)> hook) {
  authenticate_ = std::move(hook);
  return *this;
}

ServiceDefinition& ServiceDefinition::OnStarted(
    std::function<void(const Server&)> hook) {
  on_started_ = std::move(hook);
  return *this;
}

// --- Server --------------------------------------------------------------------

namespace {

absl::StatusOr<std::unique_ptr<storage::StableStore>> OpenStore(
    const StoreConfig& c) {
  switch (c.kind) {
    case StoreConfig::Kind::kRocksDb: {
      std::error_code ec;
      std::filesystem::create_directories(c.data_dir, ec);
      if (ec) {
        return absl::UnavailableError(absl::StrCat(
            "cannot create store directory ", c.data_dir, ": ", ec.message()));
      }
      storage::RocksDbOptions o;
      o.path = c.data_dir;
      o.sync = c.sync;
      absl::StatusOr<std::unique_ptr<storage::RocksDbStore>> s =
          storage::OpenRocksDb(o);
      if (!s.ok()) return s.status();
      return std::unique_ptr<storage::StableStore>(*std::move(s));
    }
    case StoreConfig::Kind::kEtcd: {
#if BATON_SERVER_HAVE_ETCD
      absl::StatusOr<std::unique_ptr<storage::EtcdStore>> s =
          storage::OpenEtcd(c.etcd);
      if (!s.ok()) return s.status();
      return std::unique_ptr<storage::StableStore>(*std::move(s));
#else
      return absl::InvalidArgumentError(
          "config key \"store.kind\": etcd, but baton was built without the "
          "etcd backend (gRPC/protobuf missing at build time)");
#endif
    }
    case StoreConfig::Kind::kMemory: {
#if BATON_SERVER_HAVE_MEMORY_STORE
      return storage::OpenMemoryStore();
#else
      return absl::InvalidArgumentError(
          "config key \"store.kind\": memory, but baton was built without the "
          "in-memory store");
#endif
    }
  }
  return absl::InternalError("unknown store kind");
}

std::string StoreDescription(const StoreConfig& c) {
  switch (c.kind) {
    case StoreConfig::Kind::kRocksDb:
      return absl::StrCat("rocksdb ", c.data_dir, c.sync ? "" : " (no fsync)");
    case StoreConfig::Kind::kEtcd:
      return absl::StrCat("etcd ", absl::StrJoin(c.etcd.endpoints, ","),
                          " prefix ", c.etcd.key_prefix);
    case StoreConfig::Kind::kMemory:
      return "memory (lost at exit)";
  }
  return "?";
}

// Families for /metrics from plain counters.
std::vector<prometheus::MetricFamily> PipelineFamilies(
    const PipelineStats& p) {
  auto c = [](const char* name, const char* help, uint64_t v) {
    return CounterFamily(absl::StrCat("baton_pipeline_", name, "_total"), help,
                         static_cast<double>(v));
  };
  return {
      c("executed", "Requests whose handler run was committed.", p.executed),
      c("replayed", "Requests answered from a completion record.", p.replayed),
      c("read_only", "Requests without writes (no record).", p.read_only),
      c("handler_reruns", "Handler re-runs after a conflict.", p.reruns),
      c("unknown_outcomes", "Commits whose outcome was unknown.",
        p.unknown_outcomes),
      c("in_flight_waits",
        "Retries that waited for a running attempt of the same id.", p.waited),
      c("records_collected", "Completion records deleted by GC.", p.collected),
      c("revalidations",
        "Latest re-reads of a record after a failed condition.",
        p.revalidations),
      c("lookups_skipped", "Dedup lookups skipped for new sequence numbers.",
        p.lookups_skipped),
      c("acks_refused",
        "Acknowledgements ignored (not below the request's own seq).",
        p.acks_refused),
      c("pending_acks_dropped",
        "Acknowledgements dropped: too many clients with one pending.",
        p.pending_acks_dropped),
      c("gc_passes", "Completion-record GC passes.", p.gc_passes),
      c("gc_errors", "GC passes that ended with an error.", p.gc_errors),
      c("watermarks_expired", "Client watermarks expired with the retention.",
        p.watermarks_expired),
      c("replies_refused", "Replies refused for max_reply_bytes.",
        p.replies_refused),
      c("values_refused", "Writes refused for max_value_bytes.",
        p.values_refused),
      c("handler_exceptions",
        "Handler runs that threw (answered 500, nothing committed).",
        p.handler_exceptions),
  };
}

// The pipeline's commit latency (per-bucket counts) as a Prometheus
// histogram (cumulative buckets, seconds).
prometheus::MetricFamily CommitLatencyFamily(const PipelineStats& p) {
  prometheus::MetricFamily f{
      "baton_pipeline_commit_duration_seconds",
      "Store commits of requests (writes and read confirmations), from the "
      "call to its durable result.",
      prometheus::MetricType::Histogram,
      {}};
  prometheus::ClientMetric m;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < p.commit_latency_buckets.size(); ++i) {
    cumulative += p.commit_latency_buckets[i];
    prometheus::ClientMetric::Bucket b;
    b.cumulative_count = cumulative;
    b.upper_bound = i < kCommitLatencyBoundsMicros.size()
                        ? static_cast<double>(kCommitLatencyBoundsMicros[i]) / 1e6
                        : std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back(b);
  }
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = static_cast<double>(p.commit_latency_sum_micros) / 1e6;
  f.metric.push_back(std::move(m));
  return f;
}

std::vector<prometheus::MetricFamily> StoreFamilies(
    const storage::StableStore& store, bool healthy) {
  std::vector<prometheus::MetricFamily> out;
  for (const storage::StoreStatistic& s : store.Statistics()) {
    out.push_back(s.counter
                      ? CounterFamily(absl::StrCat("baton_store_", s.name,
                                                   "_total"),
                                      s.help, s.value)
                      : GaugeFamily(absl::StrCat("baton_store_", s.name),
                                    s.help, s.value));
  }
  out.push_back(GaugeFamily("baton_store_healthy",
                            "1 while the store answers its health ping.",
                            healthy ? 1 : 0));
  return out;
}

std::vector<prometheus::MetricFamily> ConnectionFamilies(
    const HttpServerStats& h) {
  std::vector<prometheus::MetricFamily> out;
  auto add = [&](const char* name, const char* help, double v, bool counter) {
    out.push_back(counter ? CounterFamily(name, help, v)
                          : GaugeFamily(name, help, v));
    AddSample(&out.back(), {}, 0);  // Placeholder replaced below.
    out.back().metric.pop_back();
    out.back().metric.front().label = {{"front_end", "http"}};
  };
  add("baton_connections_open", "Open client connections.",
      static_cast<double>(h.connections_open), false);
  add("baton_connections_accepted_total", "Client connections accepted.",
      static_cast<double>(h.connections_accepted), true);
  add("baton_connections_refused_total",
      "Connections refused at the connection cap.",
      static_cast<double>(h.connections_refused), true);
  add("baton_accept_errors_total",
      "accept() failures (out of descriptors, ...).",
      static_cast<double>(h.accept_errors), true);
  add("baton_tls_handshake_failures_total", "Failed TLS handshakes.",
      static_cast<double>(h.tls_handshake_failures), true);
  add("baton_malformed_requests_total",
      "Requests refused as malformed HTTP (4xx before routing).",
      static_cast<double>(h.bad_requests), true);
  add("baton_connection_cap", "The effective connection cap.",
      static_cast<double>(h.connection_cap), false);
  return out;
}

std::vector<prometheus::MetricFamily> AgentFamilies(ServerAgent& agent) {
  absl::StatusOr<nlohmann::json> status =
      agent.StatusJson(absl::Milliseconds(500));
  std::vector<prometheus::MetricFamily> out;
  if (!status.ok()) {
    out.push_back(GaugeFamily("baton_takeover_agent_up",
                              "1 while the take-over agent answers.", 0));
    return out;
  }
  out = takeover::TakeoverMetricFamilies(*status);
  out.push_back(GaugeFamily("baton_takeover_agent_up",
                            "1 while the take-over agent answers.", 1));
  const nlohmann::json& server = (*status)["server"];
  auto counter = [&](const char* key, const char* name, const char* help) {
    if (server.is_object() && server.contains(key) &&
        server[key].is_number()) {
      out.push_back(CounterFamily(name, help, server[key].get<double>()));
    }
  };
  counter("fenced_off", "baton_fence_refused_commits_total",
          "Writing requests refused because this host was deposed (a newer "
          "holder's fence was in the store).");
  counter("not_ready", "baton_fence_not_ready_total",
          "Writing requests refused because their slot's fence was not ready.");
  counter("fences_established", "baton_fence_established_total",
          "Fences written after taking a slot.");
  counter("fence_errors", "baton_fence_errors_total",
          "Fence writes that failed (retried).");
  return out;
}

}  // namespace

struct Server::Impl {
  ServerConfig config;
  ServiceDefinition service{"x"};
  std::unique_ptr<ServerAgent> agent;
  std::unique_ptr<storage::StableStore> store;
  std::unique_ptr<baton::testing::FaultStore> killer;
  storage::StableStore* serving = nullptr;
  std::unique_ptr<RequestPipeline> pipeline;
  ServerMetrics metrics;
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<GrpcServer> grpc;
  std::unique_ptr<AdminServer> admin;
  SystemdNotifier notifier;

  // Store health for /readyz, refreshed by the health thread.
  std::atomic<bool> store_healthy{true};
  std::thread health_thread;
  absl::Mutex mu;
  bool stop = false;  // Guarded by mu.
  absl::CondVar wake;
  bool shut_down = false;

  void HealthLoop();
  absl::Status RegisterAdminRoutes(AdminRouter& router);
  nlohmann::json StatusJson();
  nlohmann::json StatsJson();
  bool Ready(std::string* why) const;
  void ShutdownAll();
};

void Server::Impl::HealthLoop() {
  const absl::Duration watchdog = notifier.watchdog_interval();
  const absl::Duration period =
      watchdog > absl::ZeroDuration()
          ? std::min(absl::Seconds(1), watchdog / 2)
          : absl::Seconds(1);
  absl::MutexLock lock(&mu);
  while (!stop) {
    mu.Unlock();
    const bool ok = serving->Ping().ok();
    if (ok != store_healthy.exchange(ok)) {
      if (ok) {
        spdlog::info("store answers again");
      } else {
        spdlog::warn("store does not answer its health ping");
      }
    }
    // The watchdog is fed only while the request event loop makes progress.
    if (watchdog > absl::ZeroDuration() &&
        (!http || http->Probe(std::min(absl::Seconds(1), watchdog / 4)))) {
      (void)notifier.Notify("WATCHDOG=1");
    }
    mu.Lock();
    wake.WaitWithTimeout(&mu, period);
  }
}

bool Server::Impl::Ready(std::string* why) const {
  if (shut_down) {
    *why = "shutting down";
    return false;
  }
  if (!store_healthy.load()) {
    *why = "the store does not answer";
    return false;
  }
  if (agent && !agent->may_serve()) {
    *why = "the take-over agent does not let this host serve";
    return false;
  }
  return true;
}

nlohmann::json Server::Impl::StatusJson() {
  nlohmann::json j = {
      {"service", service.name()},
      {"node", config.node_name},
      {"store", {{"kind", serving->Kind()}, {"healthy", store_healthy.load()}}},
  };
  if (http) j["http"] = absl::StrCat(config.http.address, ":", http->port());
  if (grpc) j["grpc"] = absl::StrCat(config.grpc.address, ":", grpc->port());
  std::string why;
  j["ready"] = Ready(&why);
  if (!why.empty()) j["not_ready_because"] = why;
  if (agent) {
    absl::StatusOr<nlohmann::json> a = agent->StatusJson();
    if (a.ok()) {
      j["agent"] = *std::move(a);
    } else {
      j["agent"] = {{"error", std::string(a.status().message())}};
    }
  }
  return j;
}

nlohmann::json Server::Impl::StatsJson() {
  const PipelineStats p = pipeline->Stats();
  nlohmann::json j;
  j["pipeline"] = {{"executed", p.executed},
                   {"replayed", p.replayed},
                   {"read_only", p.read_only},
                   {"reruns", p.reruns},
                   {"unknown_outcomes", p.unknown_outcomes},
                   {"waited", p.waited},
                   {"collected", p.collected},
                   {"revalidations", p.revalidations},
                   {"lookups_skipped", p.lookups_skipped},
                   {"acks_refused", p.acks_refused},
                   {"pending_acks_dropped", p.pending_acks_dropped},
                   {"gc_passes", p.gc_passes},
                   {"gc_errors", p.gc_errors},
                   {"watermarks_expired", p.watermarks_expired},
                   {"replies_refused", p.replies_refused},
                   {"values_refused", p.values_refused},
                   {"handler_exceptions", p.handler_exceptions}};
  nlohmann::json store = {{"kind", serving->Kind()}};
  for (const storage::StoreStatistic& s : serving->Statistics()) {
    store[s.name] = s.value;
  }
  j["store"] = std::move(store);
  if (http) {
    const HttpServerStats h = http->Stats();
    j["http"] = {{"connections_open", h.connections_open},
                 {"connections_accepted", h.connections_accepted},
                 {"connections_refused", h.connections_refused},
                 {"accept_errors", h.accept_errors},
                 {"tls_handshake_failures", h.tls_handshake_failures},
                 {"malformed_requests", h.bad_requests},
                 {"connection_cap", h.connection_cap}};
  }
  return j;
}

absl::Status Server::Impl::RegisterAdminRoutes(AdminRouter& router) {
  for (absl::Status s : {
           router.Add(
               "GET", "/healthz",
               [this](const AdminRequest&) {
                 // Live: the request event loop makes progress.
                 if (http && !http->Probe(absl::Seconds(1))) {
                   return AdminResponse::Text(
                       503, "the HTTP event loop does not respond\n");
                 }
                 return AdminResponse::Text(200, "ok\n");
               },
               AdminAccess::kPublic),
           router.Add(
               "GET", "/readyz",
               [this](const AdminRequest&) {
                 std::string why;
                 if (!Ready(&why)) {
                   return AdminResponse::Json(
                       503, DumpJson({{"ready", false}, {"reason", why}}));
                 }
                 return AdminResponse::Json(200, DumpJson({{"ready", true}}));
               },
               AdminAccess::kPublic),
           router.Add("GET", "/baton/stats",
                      [this](const AdminRequest&) {
                        return AdminResponse::Json(200, DumpJson(StatsJson()));
                      }),
           router.Add("GET", "/metrics",
                      [this](const AdminRequest&) {
                        return AdminResponse{
                            200, "text/plain; version=0.0.4; charset=utf-8",
                            metrics.Render()};
                      }),
       }) {
    if (!s.ok()) return s;
  }
  if (agent) return agent->RegisterAdminRoutes(router);
  // Without an agent: a status page of the server alone, and a drain that
  // says why there is nothing to drain.
  if (absl::Status s = router.Add("GET", "/baton/status",
                                  [this](const AdminRequest&) {
                                    return AdminResponse::Json(
                                        200, DumpJson(StatusJson()));
                                  });
      !s.ok()) {
    return s;
  }
  return router.Add("POST", "/baton/drain", [](const AdminRequest&) {
    return AdminResponse::Error(
        404, "no_agent",
        "this server runs no take-over agent (config key \"takeover\")");
  });
}

void Server::Impl::ShutdownAll() {
  if (shut_down) return;
  shut_down = true;
  (void)notifier.Notify("STOPPING=1");
  // Addresses first (the next holder takes them in about a round trip),
  // then the listeners finish what is in flight, then GC, then the store.
  if (agent) agent->Shutdown();
  if (grpc) grpc->Stop();
  if (http) http->Stop();
  if (pipeline) pipeline->StopBackgroundGc();
  {
    absl::MutexLock lock(&mu);
    stop = true;
    wake.SignalAll();
  }
  if (health_thread.joinable()) health_thread.join();
  if (admin) admin->Stop();
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Shutdown(); }

void Server::Shutdown() {
  if (impl_) impl_->ShutdownAll();
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    ServerConfig config, ServiceDefinition service) {
  if (!service.status().ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("service definition: ", service.status().message()));
  }
  if (!config.http_enabled && !config.grpc_enabled) {
    return absl::InvalidArgumentError(
        "config: both the HTTP and the gRPC listener are off");
  }
  for (const TlsServerOptions* tls : {&config.http.tls, &config.grpc.tls}) {
    if (absl::Status s = CheckTlsServerOptions(*tls); !s.ok()) {
      return absl::InvalidArgumentError(s.message());
    }
  }
  auto impl = std::make_unique<Impl>();
  Impl& m = *impl;
  m.config = std::move(config);
  m.service = std::move(service);
  m.notifier = SystemdNotifier::FromEnvironment(/*unset_environment=*/false);
  const ServerConfig& c = m.config;

  // The agent: config checked, nothing started.
  if (!c.takeover_yaml.empty()) {
    absl::StatusOr<EmbeddedAgentConfig> ac =
        ParseEmbeddedAgentConfig(c.takeover_yaml);
    if (!ac.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("config key ", ac.status().message()));
    }
    absl::Status created;
    if (c.takeover_mode == "thread") {
      auto a = EmbeddedAgent::Create(*ac);
      if (a.ok()) m.agent = *std::move(a); else created = a.status();
    } else {
      AgentSupervisorOptions options;
      options.binary = c.takeover_binary;
      if (c.test_agent_restart > absl::ZeroDuration()) {
        options.restart_backoff = c.test_agent_restart;
        options.max_restart_backoff =
            std::max(options.max_restart_backoff, options.restart_backoff);
      }
      auto a = AgentSupervisor::Create(*ac, options);
      if (a.ok()) m.agent = *std::move(a); else created = a.status();
    }
    if (!created.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("takeover: ", created.message()));
    }
  }

  absl::StatusOr<std::unique_ptr<storage::StableStore>> store =
      OpenStore(c.store);
  if (!store.ok()) {
    const absl::Status& s = store.status();
    return absl::Status(s.code(), absl::StrCat("store (", StoreDescription(c.store),
                                               "): ", s.message()));
  }
  m.store = *std::move(store);
  m.serving = m.store.get();
  if (c.test_kill_after_records > 0) {
    m.killer = std::make_unique<baton::testing::FaultStore>(*m.store);
    m.killer->AddDurableHook(baton::testing::OnNthCompletionRecord(
        c.test_kill_after_records, [] {
          std::fprintf(stderr, "baton: test_kill_after_records: SIGKILL\n");
          raise(SIGKILL);
        }));
    m.serving = m.killer.get();
  }
  m.pipeline =
      std::make_unique<RequestPipeline>(*m.serving, RealClock(), c.pipeline);
  if (m.agent) m.pipeline->SetFenceTable(&m.agent->fences());

  Impl* raw = &m;
  m.metrics.AddSource([raw] {
    const PipelineStats p = raw->pipeline->Stats();
    std::vector<prometheus::MetricFamily> out = PipelineFamilies(p);
    out.push_back(CommitLatencyFamily(p));
    return out;
  });
  m.metrics.AddSource([raw] {
    return StoreFamilies(*raw->serving, raw->store_healthy.load());
  });
  m.metrics.AddSource([raw] {
    if (!raw->http) return std::vector<prometheus::MetricFamily>{};
    return ConnectionFamilies(raw->http->Stats());
  });
  if (m.agent) {
    // The agent's own metrics (per slot: held, epoch, lease remaining,
    // take-overs, releases, sheds; datagrams rejected by reason), defined
    // once in takeover/daemon/metrics.h, plus this server's fence counters.
    m.metrics.AddSource([raw] { return AgentFamilies(*raw->agent); });
  }

  if (c.http_enabled) {
    HttpServerOptions ho = c.http;
    ho.node_name = c.node_name;
    ho.authenticate = m.service.authenticate_;
    ho.observer = &m.metrics;
    auto h = StartHttpServer(ho, m.service.http_, *m.pipeline);
    if (!h.ok()) {
      m.ShutdownAll();
      return h.status();
    }
    m.http = *std::move(h);
  }
  if (c.grpc_enabled) {
    GrpcServerOptions go = c.grpc;
    go.node_name = c.node_name;
    go.authenticate = m.service.authenticate_;
    go.observer = &m.metrics;
    // A listener per service address, so that a planned release sends
    // GOAWAY on exactly the connections there.
    if (m.agent) go.service_addresses = m.agent->service_addresses();
    auto g = StartGrpcServer(go, m.service.grpc_, *m.pipeline);
    if (!g.ok()) {
      m.ShutdownAll();
      return g.status();
    }
    m.grpc = *std::move(g);
  }
  if (c.admin.enabled) {
    AdminRouter router;
    if (absl::Status s = m.RegisterAdminRoutes(router); !s.ok()) {
      m.ShutdownAll();
      return s;
    }
    AdminServerOptions ao;
    ao.listen = c.admin.listen;
    ao.token_file = c.admin.token_file;
    auto a = StartAdminServer(ao, std::move(router));
    if (!a.ok()) {
      m.ShutdownAll();
      return a.status();
    }
    m.admin = *std::move(a);
  }
  if (c.gc) m.pipeline->StartBackgroundGc();
  m.health_thread = std::thread([raw] { raw->HealthLoop(); });
  spdlog::info(
      "{} on node {} serving on http {}, grpc {}, admin {}, store {}, gc {}{}",
      m.service.name(), c.node_name,
      m.http ? absl::StrCat(c.http.address, ":", m.http->port(),
                            c.http.tls.enabled() ? " (TLS)" : "")
             : "off",
      m.grpc ? absl::StrCat(c.grpc.address, ":", m.grpc->port(),
                            c.grpc.tls.enabled() ? " (TLS)" : "")
             : "off",
      m.admin ? m.admin->address() : "off", StoreDescription(c.store),
      c.gc ? "on" : "off",
      m.agent ? absl::StrCat(", take-over agent (", c.takeover_mode,
                             ") starting") : "");
  // Only now, with the store open and the listeners up, may the agent take
  // addresses: a client that reaches a service address finds a server.
  if (m.agent) {
    // Fail-over hooks (docs/framework.md "Embedded take-over"): before a
    // planned release of a service address the agent has this server close
    // its connections there (HTTP: `Connection: close`; gRPC: GOAWAY, on the
    // address's own listener); its keepalive proves that the request event
    // loop makes progress (a hung server is handed over).
    m.agent->SetConnectionCloser([raw](const std::string& address) -> size_t {
      return (raw->http ? raw->http->CloseConnections(address) : 0) +
             (raw->grpc ? raw->grpc->CloseConnections(address) : 0);
    });
    m.agent->SetProgressProbe([raw](absl::Duration timeout) {
      return !raw->http || raw->http->Probe(timeout);
    });
    // A probe that fails while requests wait on store reads is the store's
    // silence (framework/agent_liveness.h).
    m.agent->SetStoreWaitProbe([raw] { return raw->pipeline->StoreWaitTime(); });
    if (absl::Status s = m.agent->Start(*m.serving); !s.ok()) {
      m.ShutdownAll();
      return absl::UnavailableError(
          absl::StrCat("take-over agent: ", s.message()));
    }
  }
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

absl::Status Server::ReloadCredentials() {
  absl::Status first;
  if (impl_->http && impl_->config.http.tls.enabled()) {
    first.Update(impl_->http->ReloadTls());
  }
  if (impl_->admin) first.Update(impl_->admin->ReloadToken());
  return first;
}

const ServerConfig& Server::config() const { return impl_->config; }

std::string Server::http_address() const {
  if (!impl_->http) return "";
  return absl::StrCat(impl_->config.http.address, ":", impl_->http->port());
}
std::string Server::grpc_address() const {
  if (!impl_->grpc) return "";
  return absl::StrCat(impl_->config.grpc.address, ":", impl_->grpc->port());
}
std::string Server::admin_address() const {
  return impl_->admin ? impl_->admin->address() : "";
}
RequestPipeline& Server::pipeline() { return *impl_->pipeline; }
storage::StableStore& Server::store() { return *impl_->serving; }
ServerMetrics& Server::metrics() { return impl_->metrics; }
bool Server::Ready() const {
  std::string why;
  return impl_->Ready(&why);
}

// --- ServerMain ----------------------------------------------------------------

namespace {

void WriteReadyFile(const std::string& path, const Server& server) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    auto line = [&](const std::string& a) { f << (a.empty() ? "-" : a) << "\n"; };
    line(server.http_address());
    line(server.grpc_address());
    line(server.admin_address());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) spdlog::warn("cannot write ready file {}: {}", path, ec.message());
}

}  // namespace

int ServerMain(int argc, char** argv, ServiceDefinition service) {
  const std::string name = service.name();
  CLI::App app{absl::StrCat(name, ": an exactly-once service on baton")};
  std::string config_path, listen, grpc_listen, admin_listen, data_dir,
      log_level, ready_file, node_name, takeover_mode, takeover_binary;
  int io_threads = 0, worker_threads = 0;
  bool no_sync = false, check_config = false;
  int kill_after_records = 0, agent_restart_ms = 0;
  app.add_option("--config", config_path, "YAML config file");
  app.add_option("--listen", listen,
                 "HTTP host:port (port 0: any; \"off\": no HTTP)");
  app.add_option("--grpc-listen", grpc_listen,
                 "gRPC host:port beside HTTP (port 0: any; \"off\": none)");
  app.add_option("--admin-listen", admin_listen,
                 "operator plane: host:port, unix:/path, or \"off\"");
  app.add_option("--data-dir", data_dir, "embedded store directory");
  app.add_option("--node-name", node_name,
                 "name sent as Baton-Node / baton-node (default: host name)");
  app.add_option("--io-threads", io_threads, "HTTP event-loop threads")
      ->check(CLI::Range(1, 256));
  app.add_option("--worker-threads", worker_threads, "handler threads")
      ->check(CLI::Range(1, 4096));
  app.add_option("--log-level", log_level,
                 "trace|debug|info|warn|error|critical|off");
  app.add_option("--ready-file", ready_file,
                 "write the HTTP, gRPC and admin addresses here once serving");
  app.add_option("--takeover-mode", takeover_mode,
                 "process (default: the agent in a supervised child) or "
                 "thread (in this process)")
      ->check(CLI::IsMember({"process", "thread"}));
  app.add_option("--takeover-binary", takeover_binary,
                 "baton-takeoverd for --takeover-mode process");
  app.add_flag("--no-sync", no_sync,
               "do not fsync commits (tests only: a machine crash loses "
               "acknowledged writes)");
  app.add_flag("--check-config", check_config,
               "check the config and flags, print nothing else, exit 0 or 2");
  app.add_option("--test-kill-after-records", kill_after_records,
                 "tests only: SIGKILL after the Nth durable completion record")
      ->check(CLI::Range(0, 1 << 30))
      ->group("");
  app.add_option("--test-agent-restart-ms", agent_restart_ms,
                 "tests only: first back-off before a dead agent is restarted")
      ->check(CLI::Range(0, 60000))
      ->group("");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  const std::string program =
      argc > 0 ? std::filesystem::path(argv[0]).filename().string() : name;
  auto fail = [&](int code, absl::string_view message) {
    std::fprintf(stderr, "%s: %.*s\n", program.c_str(),
                 static_cast<int>(message.size()), message.data());
    return code;
  };

  ServerConfig config = DefaultServerConfig(name);
  if (!config_path.empty()) {
    absl::StatusOr<ServerConfig> loaded = LoadServerConfig(config_path, name);
    if (!loaded.ok()) return fail(2, loaded.status().message());
    config = *std::move(loaded);
  }
  auto listen_flag = [&](const std::string& flag, const std::string& text,
                         std::string* host, uint16_t* port,
                         bool* enabled) -> absl::Status {
    if (text.empty()) return absl::OkStatus();
    if (text == "off") {
      *enabled = false;
      return absl::OkStatus();
    }
    if (absl::Status s = ParseHostPort(text, host, port); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": ", s.message()));
    }
    *enabled = true;
    return absl::OkStatus();
  };
  for (absl::Status s :
       {listen_flag("--listen", listen, &config.http.address, &config.http.port,
                    &config.http_enabled),
        listen_flag("--grpc-listen", grpc_listen, &config.grpc.address,
                    &config.grpc.port, &config.grpc_enabled)}) {
    if (!s.ok()) return fail(2, s.message());
  }
  if (admin_listen == "off") {
    config.admin.enabled = false;
  } else if (!admin_listen.empty()) {
    config.admin.enabled = true;
    config.admin.listen = admin_listen;
  }
  if (!data_dir.empty()) config.store.data_dir = data_dir;
  if (io_threads > 0) config.http.io_threads = io_threads;
  if (worker_threads > 0) config.http.worker_threads = worker_threads;
  if (!log_level.empty()) config.log_level = log_level;
  if (!node_name.empty()) config.node_name = node_name;
  if (no_sync) config.store.sync = false;
  if (!takeover_mode.empty()) config.takeover_mode = takeover_mode;
  if (!takeover_binary.empty()) config.takeover_binary = takeover_binary;
  if (!ready_file.empty()) config.ready_file = ready_file;
  config.test_kill_after_records = kill_after_records;
  if (agent_restart_ms > 0) {
    config.test_agent_restart = absl::Milliseconds(agent_restart_ms);
  }
  const spdlog::level::level_enum level =
      spdlog::level::from_str(config.log_level);
  if (level == spdlog::level::off && config.log_level != "off") {
    return fail(2, absl::StrCat("unknown log level \"", config.log_level, "\""));
  }
  spdlog::set_level(level);
  for (const std::string& w : config.warnings) spdlog::warn("{}", w);
  if (!service.status().ok()) {
    return fail(2, absl::StrCat("service definition: ",
                                service.status().message()));
  }
  if (check_config) {
    for (const TlsServerOptions* tls : {&config.http.tls, &config.grpc.tls}) {
      if (absl::Status s = CheckTlsServerOptions(*tls); !s.ok()) {
        return fail(2, s.message());
      }
    }
    if (!config.takeover_yaml.empty()) {
      absl::StatusOr<EmbeddedAgentConfig> ac =
          ParseEmbeddedAgentConfig(config.takeover_yaml);
      if (!ac.ok()) return fail(2, absl::StrCat("config key ", ac.status().message()));
    }
    return 0;
  }

  // Signals are taken by sigwait() below; block them before any thread
  // starts so that every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // The agent child must not inherit systemd's notification socket.
  SystemdNotifier notifier = SystemdNotifier::FromEnvironment(false);
  std::function<void(const Server&)> on_started = service.on_started_;

  absl::StatusOr<std::unique_ptr<Server>> server =
      Server::Start(std::move(config), std::move(service));
  if (!server.ok()) {
    return fail(server.status().code() == absl::StatusCode::kInvalidArgument
                    ? 2
                    : 1,
                server.status().message());
  }
  if (!(*server)->config().ready_file.empty()) {
    WriteReadyFile((*server)->config().ready_file, **server);
  }
  (void)notifier.Notify(absl::StrCat("READY=1\nSTATUS=serving; http ",
                                     (*server)->http_address(), ", admin ",
                                     (*server)->admin_address()));
  if (on_started) on_started(**server);

  for (;;) {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGHUP) {
      absl::Status s = (*server)->ReloadCredentials();
      if (s.ok()) {
        spdlog::info("SIGHUP: TLS certificates and admin token re-read");
      } else {
        spdlog::error("SIGHUP: reload failed, keeping the old credentials: {}",
                      std::string(s.message()));
      }
      continue;
    }
    spdlog::info("signal {}: shutting down", sig);
    break;
  }
  (*server)->Shutdown();
  return 0;
}

}  // namespace baton::framework

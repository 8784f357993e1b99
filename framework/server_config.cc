// ServerConfig from YAML (framework/server.h); the format is documented in
// docs/framework.md "Server configuration" and samples/kvservice/kvservice.yaml.
#include <unistd.h>

#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/yaml.h"
#include "framework/server.h"
#include "spdlog/spdlog.h"

namespace baton::framework {
namespace {

constexpr int64_t kKiB = 1024;
constexpr int64_t kMiB = 1024 * 1024;
constexpr int64_t kGiB = 1024 * kMiB;

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') {
    return "localhost";
  }
  return buf;
}

absl::Status ReadTls(const YamlSection& t, TlsServerOptions* tls) {
  if (!t.present()) return absl::OkStatus();
  for (absl::Status s :
       {t.AllowKeys({"cert_file", "key_file", "client_ca_file",
                     "require_client_cert", "refresh_interval"}),
        t.String("cert_file", &tls->cert_file),
        t.String("key_file", &tls->key_file),
        t.String("client_ca_file", &tls->client_ca_file),
        t.Bool("require_client_cert", &tls->require_client_cert),
        t.Duration("refresh_interval", absl::Seconds(1), absl::Hours(24),
                   &tls->grpc_refresh_interval)}) {
    if (!s.ok()) return s;
  }
  if (tls->cert_file.empty() != tls->key_file.empty()) {
    return t.Bad("cert_file", "and key_file go together");
  }
  return absl::OkStatus();
}

absl::Status ReadListen(const YamlSection& sec, std::string_view key,
                        std::string* address, uint16_t* port, bool* enabled) {
  if (!sec.Has(key)) return absl::OkStatus();
  std::string text;
  if (absl::Status s = sec.String(key, &text); !s.ok()) return s;
  if (text == "off") {
    *enabled = false;
    return absl::OkStatus();
  }
  if (absl::Status s = ParseHostPort(text, address, port); !s.ok()) {
    return sec.Bad(key, absl::StrCat("must be host:port or off: ",
                                     s.message()));
  }
  *enabled = true;
  return absl::OkStatus();
}

absl::Status ReadHttp(const YamlSection& root, ServerConfig* c) {
  const YamlSection h = root.Section("http");
  HttpServerOptions& o = c->http;
  for (absl::Status s :
       {h.AllowKeys({"listen", "io_threads", "worker_threads",
                     "max_header_bytes", "max_body_bytes", "max_connections",
                     "idle_timeout", "read_timeout", "write_timeout",
                     "drain_timeout", "tls", "idle_timeout_ms",
                     "read_timeout_ms", "write_timeout_ms"}),
        ReadListen(root, "listen", &o.address, &o.port, &c->http_enabled),
        ReadListen(h, "listen", &o.address, &o.port, &c->http_enabled),
        h.Int("io_threads", 1, 256, &o.io_threads),
        h.Int("worker_threads", 1, 4096, &o.worker_threads),
        h.Int("max_header_bytes", 1 * kKiB, 1 * kMiB, &o.max_header_bytes),
        h.Int("max_body_bytes", 1, 1 * kGiB, &o.max_body_bytes),
        h.Int("max_connections", 1, 1'000'000, &o.max_connections),
        h.DeprecatedDuration("idle_timeout_ms", absl::Milliseconds(1),
                             "idle_timeout", absl::Milliseconds(1),
                             absl::Hours(24), &o.idle_timeout),
        h.DeprecatedDuration("read_timeout_ms", absl::Milliseconds(1),
                             "read_timeout", absl::Milliseconds(1),
                             absl::Hours(24), &o.read_timeout),
        h.DeprecatedDuration("write_timeout_ms", absl::Milliseconds(1),
                             "write_timeout", absl::Milliseconds(1),
                             absl::Hours(24), &o.write_timeout),
        h.Duration("idle_timeout", absl::Milliseconds(1), absl::Hours(24),
                   &o.idle_timeout),
        h.Duration("read_timeout", absl::Milliseconds(1), absl::Hours(24),
                   &o.read_timeout),
        h.Duration("write_timeout", absl::Milliseconds(1), absl::Hours(24),
                   &o.write_timeout),
        h.Duration("drain_timeout", absl::ZeroDuration(), absl::Minutes(10),
                   &o.drain_timeout),
        ReadTls(h.Section("tls"), &o.tls)}) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ReadGrpc(const YamlSection& root, ServerConfig* c) {
  const YamlSection g = root.Section("grpc");
  GrpcServerOptions& o = c->grpc;
  for (absl::Status s :
       {g.AllowKeys({"listen", "worker_threads", "max_message_bytes",
                     "max_metadata_bytes", "tls"}),
        ReadListen(root, "grpc_listen", &o.address, &o.port, &c->grpc_enabled),
        ReadListen(g, "listen", &o.address, &o.port, &c->grpc_enabled),
        g.Int("worker_threads", 1, 4096, &o.worker_threads),
        g.Int("max_message_bytes", 1, 1 * kGiB, &o.max_message_bytes),
        g.Int("max_metadata_bytes", 1 * kKiB, 1 * kMiB,
              &o.max_metadata_bytes),
        ReadTls(g.Section("tls"), &o.tls)}) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ReadPipeline(const YamlSection& root, ServerConfig* c) {
  const YamlSection p = root.Section("pipeline");
  PipelineOptions& o = c->pipeline;
  for (absl::Status s :
       {p.AllowKeys({"max_attempts", "in_flight_wait", "retention",
                     "gc_interval", "gc_batch", "gc", "max_reply_bytes",
                     "max_value_bytes", "in_flight_wait_ms",
                     "retention_hours", "gc_interval_s"}),
        p.Int("max_attempts", 1, 1000, &o.max_attempts),
        p.DeprecatedDuration("in_flight_wait_ms", absl::Milliseconds(1),
                             "in_flight_wait", absl::ZeroDuration(),
                             absl::Hours(1), &o.in_flight_wait),
        p.DeprecatedDuration("retention_hours", absl::Hours(1), "retention",
                             absl::Seconds(1), absl::Hours(24 * 366),
                             &o.retention),
        p.DeprecatedDuration("gc_interval_s", absl::Seconds(1), "gc_interval",
                             absl::Milliseconds(10), absl::Hours(24),
                             &o.gc_interval),
        p.Duration("in_flight_wait", absl::ZeroDuration(), absl::Hours(1),
                   &o.in_flight_wait),
        p.Duration("retention", absl::Seconds(1), absl::Hours(24 * 366),
                   &o.retention),
        p.Duration("gc_interval", absl::Milliseconds(10), absl::Hours(24),
                   &o.gc_interval),
        p.Int("gc_batch", 1, 100000, &o.gc_batch),
        p.Int("max_reply_bytes", 1, 1 * kGiB, &o.max_reply_bytes),
        p.Int("max_value_bytes", 1, 1 * kGiB, &o.max_value_bytes),
        p.Bool("gc", &c->gc)}) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ReadStore(const YamlSection& root, ServerConfig* c) {
  const YamlSection st = root.Section("store");
  StoreConfig& o = c->store;
  if (absl::Status s = root.String("data_dir", &o.data_dir); !s.ok()) return s;
  if (absl::Status s = root.Bool("sync", &o.sync); !s.ok()) return s;
  if (!st.present()) return absl::OkStatus();
  std::string kind = "rocksdb";
  if (absl::Status s = st.String("kind", &kind); !s.ok()) return s;
  if (kind == "rocksdb" || kind == "memory") {
    o.kind = kind == "rocksdb" ? StoreConfig::Kind::kRocksDb
                               : StoreConfig::Kind::kMemory;
    for (absl::Status s : {st.AllowKeys({"kind", "data_dir", "sync"}),
                           st.String("data_dir", &o.data_dir),
                           st.Bool("sync", &o.sync)}) {
      if (!s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            s.message(), " (store.kind ", kind, " takes data_dir and sync)"));
      }
    }
    return absl::OkStatus();
  }
  if (kind != "etcd") {
    return st.Bad("kind", absl::StrCat("must be rocksdb, etcd or memory, got \"",
                                       kind, "\""));
  }
  o.kind = StoreConfig::Kind::kEtcd;
  storage::EtcdOptions& e = o.etcd;
  absl::Duration dial = absl::FromChrono(e.dial_timeout);
  absl::Duration request = absl::FromChrono(e.request_timeout);
  absl::Duration wait_first = absl::FromChrono(e.wait_for_first_endpoint);
  absl::Duration probe_interval = absl::FromChrono(e.health_probe_interval);
  absl::Duration probe_timeout = absl::FromChrono(e.health_probe_timeout);
  absl::Duration probe_silent = absl::FromChrono(e.health_probe_silent_after);
  absl::Duration stuck = absl::FromChrono(e.stuck_batch_after);
  absl::Duration compaction = absl::FromChrono(e.compaction_interval);
  absl::Duration retention = absl::FromChrono(e.record_retention);
  absl::Duration statistics = absl::FromChrono(e.statistics_interval);
  for (absl::Status s :
       {st.AllowKeys({"kind", "endpoints", "key_prefix", "dial_timeout",
                      "request_timeout", "tls_ca_file", "tls_cert_file",
                      "tls_key_file", "username", "password",
                      "max_request_bytes", "max_txn_ops", "group_commits",
                      "max_commit_txns_in_flight", "read_cache_bytes",
                      "wait_for_first_endpoint", "health_probe_interval",
                      "health_probe_timeout", "health_probe_silent_after",
                      "stuck_batch_after",
                      "compaction_interval", "quota_backend_bytes",
                      "record_retention", "statistics_interval"}),
        st.StringList("endpoints", &e.endpoints),
        st.String("key_prefix", &e.key_prefix),
        st.Duration("dial_timeout", absl::Milliseconds(1), absl::Minutes(10),
                    &dial),
        st.Duration("request_timeout", absl::Milliseconds(1),
                    absl::Minutes(10), &request),
        st.String("tls_ca_file", &e.tls_ca_file),
        st.String("tls_cert_file", &e.tls_cert_file),
        st.String("tls_key_file", &e.tls_key_file),
        st.String("username", &e.username),
        st.String("password", &e.password),
        st.Int("max_request_bytes", 1 * kKiB, 1 * kGiB, &e.max_request_bytes),
        st.Int("max_txn_ops", 1, 100000, &e.max_txn_ops),
        st.Bool("group_commits", &e.group_commits),
        st.Int("max_commit_txns_in_flight", 1, 1024,
               &e.max_commit_txns_in_flight),
        st.Int("read_cache_bytes", 0, 64 * kGiB, &e.read_cache_bytes),
        st.Duration("wait_for_first_endpoint", absl::ZeroDuration(),
                    absl::Hours(1), &wait_first),
        st.Duration("health_probe_interval", absl::ZeroDuration(),
                    absl::Minutes(10), &probe_interval),
        st.Duration("health_probe_timeout", absl::Milliseconds(1),
                    absl::Minutes(10), &probe_timeout),
        st.Duration("health_probe_silent_after", absl::Milliseconds(1),
                    absl::Minutes(10), &probe_silent),
        st.Duration("stuck_batch_after", absl::ZeroDuration(),
                    absl::Minutes(10), &stuck),
        st.Duration("compaction_interval", absl::ZeroDuration(),
                    absl::Hours(24 * 7), &compaction),
        st.Int("quota_backend_bytes", 1 * kMiB, 1024 * kGiB,
               &e.quota_backend_bytes),
        st.Duration("record_retention", absl::Seconds(1),
                    absl::Hours(24 * 365), &retention),
        st.Duration("statistics_interval", absl::ZeroDuration(),
                    absl::Hours(24), &statistics)}) {
    if (!s.ok()) return s;
  }
  if (st.Has("endpoints") && e.endpoints.empty()) {
    return st.Bad("endpoints", "must list at least one host:port");
  }
  e.dial_timeout = absl::ToChronoMilliseconds(dial);
  e.request_timeout = absl::ToChronoMilliseconds(request);
  e.wait_for_first_endpoint = absl::ToChronoMilliseconds(wait_first);
  e.health_probe_interval = absl::ToChronoMilliseconds(probe_interval);
  e.health_probe_timeout = absl::ToChronoMilliseconds(probe_timeout);
  e.health_probe_silent_after = absl::ToChronoMilliseconds(probe_silent);
  e.stuck_batch_after = absl::ToChronoMilliseconds(stuck);
  e.compaction_interval = absl::ToChronoSeconds(compaction);
  e.record_retention = absl::ToChronoSeconds(retention);
  e.statistics_interval = absl::ToChronoSeconds(statistics);
  return absl::OkStatus();
}

absl::Status ReadAdmin(const YamlSection& root, ServerConfig* c) {
  const YamlSection a = root.Section("admin");
  for (absl::Status s : {a.AllowKeys({"listen", "token_file"}),
                         a.String("token_file", &c->admin.token_file)}) {
    if (!s.ok()) return s;
  }
  if (a.Has("listen")) {
    std::string listen;
    if (absl::Status s = a.String("listen", &listen); !s.ok()) return s;
    if (listen == "off") {
      c->admin.enabled = false;
    } else {
      c->admin.enabled = true;
      c->admin.listen = listen;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseHostPort(std::string_view text, std::string* host,
                           uint16_t* port) {
  const size_t colon = text.rfind(':');
  uint32_t p = 0;
  if (colon == std::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(std::string(text.substr(colon + 1)), &p) ||
      p > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected host:port, got \"", std::string(text), "\""));
  }
  std::string h(text.substr(0, colon));
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') {
    h = h.substr(1, h.size() - 2);
  }
  *host = std::move(h);
  *port = static_cast<uint16_t>(p);
  return absl::OkStatus();
}

ServerConfig DefaultServerConfig(std::string_view service_name) {
  ServerConfig c;
  c.node_name = HostName();
  c.store.data_dir = absl::StrCat("./var/", std::string(service_name));
  c.store.etcd.key_prefix = absl::StrCat(std::string(service_name), "/");
  c.grpc.address = "127.0.0.1";
  return c;
}

absl::StatusOr<ServerConfig> ParseServerConfig(std::string_view yaml,
                                               std::string_view service_name,
                                               std::string_view what) {
  ServerConfig c = DefaultServerConfig(service_name);
  absl::StatusOr<YAML::Node> root_node = ParseYaml(yaml, what);
  if (!root_node.ok()) return root_node.status();
  YamlSection root(*root_node, "", &c.warnings);
  if (!root.present()) return c;
  for (absl::Status s :
       {root.AllowKeys({"node_name", "log_level", "listen", "grpc_listen",
                        "data_dir", "sync", "http", "grpc", "admin", "store",
                        "pipeline", "takeover", "takeover_mode",
                        "takeover_binary"}),
        root.String("node_name", &c.node_name),
        root.String("log_level", &c.log_level),
        ReadHttp(root, &c), ReadGrpc(root, &c), ReadAdmin(root, &c),
        ReadStore(root, &c), ReadPipeline(root, &c),
        root.String("takeover_mode", &c.takeover_mode),
        root.String("takeover_binary", &c.takeover_binary)}) {
    if (!s.ok()) return s;
  }
  if (spdlog::level::from_str(c.log_level) == spdlog::level::off &&
      c.log_level != "off") {
    return root.Bad("log_level", absl::StrCat("must be trace, debug, info, "
                                              "warn, error, critical or off, "
                                              "got \"",
                                              c.log_level, "\""));
  }
  if (c.takeover_mode != "process" && c.takeover_mode != "thread") {
    return root.Bad("takeover_mode", "must be \"process\" or \"thread\"");
  }
  if (root.Has("takeover")) {
    const YAML::Node t = root.node()["takeover"];
    if (!t.IsMap()) {
      return root.Bad("takeover",
                      "must be a mapping (a baton-takeoverd config)");
    }
    YAML::Emitter out;
    out << t;
    c.takeover_yaml = out.c_str();
  }
  return c;
}

absl::StatusOr<ServerConfig> LoadServerConfig(const std::string& path,
                                              std::string_view service_name) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("config file ", path, " not found"));
  }
  std::stringstream text;
  text << in.rdbuf();
  return ParseServerConfig(text.str(), service_name,
                           absl::StrCat("config file ", path));
}

}  // namespace baton::framework

#include "samples/kvservice/config.h"

#include <unistd.h>

#include <chrono>
#include <exception>
#include <filesystem>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "yaml-cpp/yaml.h"

namespace baton::kvservice {
namespace {

absl::Status CheckKeys(const YAML::Node& node, const std::string& where,
                       const std::set<std::string>& allowed) {
  if (!node.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where.empty() ? "config" : where, " must be a mapping"));
  }
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    if (!allowed.count(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown config key \"", where.empty() ? "" : where + ".",
                       key, "\""));
    }
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status Read(const YAML::Node& node, const std::string& name,
                  const std::string& where, T* out) {
  if (!node[name]) return absl::OkStatus();
  try {
    *out = node[name].as<T>();
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key \"", where.empty() ? "" : where + ".", name,
        "\" has the wrong type"));
  }
  return absl::OkStatus();
}

absl::Status ReadMs(const YAML::Node& node, const std::string& name,
                    const std::string& where, absl::Duration* out,
                    absl::Duration unit) {
  int64_t v = 0;
  if (!node[name]) return absl::OkStatus();
  if (absl::Status s = Read(node, name, where, &v); !s.ok()) return s;
  if (v <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key \"", where, ".", name, "\" must be positive"));
  }
  *out = v * unit;
  return absl::OkStatus();
}

// "2s", "500ms", "1.5s", "250us", "1m"; a bare number is milliseconds.
bool ParseDurationMs(const std::string& text, std::chrono::milliseconds* out) {
  double v = 0;
  std::string num = text, unit;
  size_t i = 0;
  while (i < text.size() &&
         ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) {
    ++i;
  }
  num = text.substr(0, i);
  unit = text.substr(i);
  if (num.empty() || !absl::SimpleAtod(num, &v) || v < 0) return false;
  double ms = 0;
  if (unit.empty() || unit == "ms") {
    ms = v;
  } else if (unit == "s") {
    ms = v * 1000;
  } else if (unit == "us") {
    ms = v / 1000;
  } else if (unit == "m") {
    ms = v * 60000;
  } else {
    return false;
  }
  *out = std::chrono::milliseconds(static_cast<int64_t>(ms + 0.5));
  return true;
}

absl::Status ReadDuration(const YAML::Node& node, const std::string& name,
                          const std::string& where,
                          std::chrono::milliseconds* out) {
  if (!node[name]) return absl::OkStatus();
  std::string text;
  if (absl::Status s = Read(node, name, where, &text); !s.ok()) return s;
  if (!ParseDurationMs(text, out) || out->count() <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key \"", where, ".", name,
        "\" must be a positive duration (e.g. 2s, 500ms)"));
  }
  return absl::OkStatus();
}

absl::Status ReadStore(const YAML::Node& n, StoreConfig* store) {
  if (absl::Status s = CheckKeys(
          n, "store",
          {"kind", "endpoints", "key_prefix", "dial_timeout", "request_timeout",
           "tls_ca_file", "tls_cert_file", "tls_key_file", "username",
           "password", "max_request_bytes", "max_txn_ops", "group_commits",
           "max_commit_txns_in_flight", "read_cache_bytes"});
      !s.ok()) {
    return s;
  }
  std::string kind = "rocksdb";
  if (absl::Status s = Read(n, "kind", "store", &kind); !s.ok()) return s;
  storage::EtcdOptions& e = store->etcd;
  e.key_prefix = "kvservice/";
  if (kind == "rocksdb") {
    store->kind = StoreConfig::Kind::kRocksDb;
    for (const auto& kv : n) {
      if (kv.first.as<std::string>() != "kind") {
        return absl::InvalidArgumentError(
            absl::StrCat("config key \"store.", kv.first.as<std::string>(),
                         "\" is only for store.kind etcd"));
      }
    }
    return absl::OkStatus();
  }
  if (kind != "etcd") {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key \"store.kind\" must be rocksdb or etcd, got \"", kind,
        "\""));
  }
  store->kind = StoreConfig::Kind::kEtcd;
  if (n["endpoints"]) {
    std::vector<std::string> endpoints;
    if (absl::Status s = Read(n, "endpoints", "store", &endpoints); !s.ok()) {
      return s;
    }
    if (endpoints.empty()) {
      return absl::InvalidArgumentError(
          "config key \"store.endpoints\" must list at least one host:port");
    }
    e.endpoints = endpoints;
  }
  for (absl::Status s :
       {Read(n, "key_prefix", "store", &e.key_prefix),
        ReadDuration(n, "dial_timeout", "store", &e.dial_timeout),
        ReadDuration(n, "request_timeout", "store", &e.request_timeout),
        Read(n, "tls_ca_file", "store", &e.tls_ca_file),
        Read(n, "tls_cert_file", "store", &e.tls_cert_file),
        Read(n, "tls_key_file", "store", &e.tls_key_file),
        Read(n, "username", "store", &e.username),
        Read(n, "password", "store", &e.password),
        Read(n, "max_request_bytes", "store", &e.max_request_bytes),
        Read(n, "max_txn_ops", "store", &e.max_txn_ops),
        Read(n, "group_commits", "store", &e.group_commits),
        Read(n, "max_commit_txns_in_flight", "store",
             &e.max_commit_txns_in_flight),
        Read(n, "read_cache_bytes", "store", &e.read_cache_bytes)}) {
    if (!s.ok()) return s;
  }
  if (e.key_prefix.empty()) {
    return absl::InvalidArgumentError(
        "config key \"store.key_prefix\" must not be empty");
  }
  return absl::OkStatus();
}

}  // namespace

std::string DefaultNodeName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') {
    return "localhost";
  }
  return buf;
}

absl::Status ParseListen(const std::string& listen,
                         framework::HttpServerOptions* http) {
  size_t colon = listen.rfind(':');
  uint32_t port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen must be host:port, got \"", listen, "\""));
  }
  http->address = listen.substr(0, colon);
  if (http->address.size() > 2 && http->address.front() == '[') {
    http->address = http->address.substr(1, http->address.size() - 2);
  }
  http->port = static_cast<uint16_t>(port);
  return absl::OkStatus();
}

absl::Status ParseGrpcListen(const std::string& listen,
                             framework::GrpcServerOptions* grpc) {
  framework::HttpServerOptions parsed;
  if (absl::Status s = ParseListen(listen, &parsed); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("grpc_listen must be host:port, got \"", listen, "\""));
  }
  grpc->address = parsed.address;
  grpc->port = parsed.port;
  return absl::OkStatus();
}

absl::StatusOr<KvServerConfig> LoadConfig(const std::string& path) {
  if (!std::filesystem::exists(path)) {
    return absl::NotFoundError(absl::StrCat("config file ", path, " not found"));
  }
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("config file ", path, " is not valid YAML: ", e.what()));
  }
  KvServerConfig c;
  c.node_name = DefaultNodeName();
  c.store.etcd.key_prefix = "kvservice/";
  if (root.IsNull()) return c;
  if (absl::Status s = CheckKeys(
          root, "", {"listen", "grpc_listen", "data_dir", "sync", "log_level", "http",
                 "grpc", "pipeline", "store", "node_name", "takeover",
                 "takeover_mode", "takeover_binary"});
      !s.ok()) {
    return s;
  }
  std::string listen;
  if (absl::Status s = Read(root, "listen", "", &listen); !s.ok()) return s;
  if (!listen.empty()) {
    if (absl::Status s = ParseListen(listen, &c.http); !s.ok()) return s;
  }
  std::string grpc_listen;
  if (absl::Status s = Read(root, "grpc_listen", "", &grpc_listen); !s.ok()) {
    return s;
  }
  if (!grpc_listen.empty()) {
    if (absl::Status s = ParseGrpcListen(grpc_listen, &c.grpc); !s.ok()) {
      return s;
    }
    c.grpc_enabled = true;
  }
  if (absl::Status s = Read(root, "data_dir", "", &c.data_dir); !s.ok()) return s;
  if (absl::Status s = Read(root, "sync", "", &c.sync); !s.ok()) return s;
  if (absl::Status s = Read(root, "log_level", "", &c.log_level); !s.ok()) return s;
  if (absl::Status s = Read(root, "node_name", "", &c.node_name); !s.ok()) {
    return s;
  }
  if (c.node_name.empty()) {
    return absl::InvalidArgumentError(
        "config key \"node_name\" must not be empty");
  }
  if (YAML::Node st = root["store"]) {
    if (absl::Status s = ReadStore(st, &c.store); !s.ok()) return s;
  }
  if (absl::Status s = Read(root, "takeover_mode", "", &c.takeover_mode);
      !s.ok()) {
    return s;
  }
  if (c.takeover_mode != "process" && c.takeover_mode != "thread") {
    return absl::InvalidArgumentError(
        "config key \"takeover_mode\" must be \"process\" or \"thread\"");
  }
  if (absl::Status s = Read(root, "takeover_binary", "", &c.takeover_binary);
      !s.ok()) {
    return s;
  }
  if (YAML::Node t = root["takeover"]) {
    if (!t.IsMap()) {
      return absl::InvalidArgumentError(
          "config key \"takeover\" must be a mapping (a take-over daemon "
          "config)");
    }
    YAML::Emitter out;
    out << t;
    c.takeover_yaml = out.c_str();
  }

  if (YAML::Node h = root["http"]) {
    if (absl::Status s = CheckKeys(h, "http",
                                   {"io_threads", "worker_threads",
                                    "max_header_bytes", "max_body_bytes",
                                    "idle_timeout_ms", "read_timeout_ms",
                                    "write_timeout_ms"});
        !s.ok()) {
      return s;
    }
    for (absl::Status s :
         {Read(h, "io_threads", "http", &c.http.io_threads),
          Read(h, "worker_threads", "http", &c.http.worker_threads),
          Read(h, "max_header_bytes", "http", &c.http.max_header_bytes),
          Read(h, "max_body_bytes", "http", &c.http.max_body_bytes),
          ReadMs(h, "idle_timeout_ms", "http", &c.http.idle_timeout,
                 absl::Milliseconds(1)),
          ReadMs(h, "read_timeout_ms", "http", &c.http.read_timeout,
                 absl::Milliseconds(1)),
          ReadMs(h, "write_timeout_ms", "http", &c.http.write_timeout,
                 absl::Milliseconds(1))}) {
      if (!s.ok()) return s;
    }
  }
  if (YAML::Node g = root["grpc"]) {
    if (absl::Status s = CheckKeys(g, "grpc",
                                   {"worker_threads", "max_message_bytes",
                                    "max_metadata_bytes"});
        !s.ok()) {
      return s;
    }
    for (absl::Status s :
         {Read(g, "worker_threads", "grpc", &c.grpc.worker_threads),
          Read(g, "max_message_bytes", "grpc", &c.grpc.max_message_bytes),
          Read(g, "max_metadata_bytes", "grpc", &c.grpc.max_metadata_bytes)}) {
      if (!s.ok()) return s;
    }
    if (c.grpc.worker_threads < 1 || c.grpc.max_message_bytes < 1 ||
        c.grpc.max_metadata_bytes < 1) {
      return absl::InvalidArgumentError(
          "grpc.worker_threads, grpc.max_message_bytes and "
          "grpc.max_metadata_bytes must be >= 1");
    }
  }
  if (YAML::Node p = root["pipeline"]) {
    if (absl::Status s = CheckKeys(p, "pipeline",
                                   {"max_attempts", "in_flight_wait_ms",
                                    "retention_hours", "gc_interval_s"});
        !s.ok()) {
      return s;
    }
    for (absl::Status s :
         {Read(p, "max_attempts", "pipeline", &c.pipeline.max_attempts),
          ReadMs(p, "in_flight_wait_ms", "pipeline", &c.pipeline.in_flight_wait,
                 absl::Milliseconds(1)),
          ReadMs(p, "retention_hours", "pipeline", &c.pipeline.retention,
                 absl::Hours(1)),
          ReadMs(p, "gc_interval_s", "pipeline", &c.pipeline.gc_interval,
                 absl::Seconds(1))}) {
      if (!s.ok()) return s;
    }
  }
  if (c.http.io_threads < 1 || c.http.worker_threads < 1 ||
      c.pipeline.max_attempts < 1) {
    return absl::InvalidArgumentError(
        "http.io_threads, http.worker_threads and pipeline.max_attempts must "
        "be >= 1");
  }
  return c;
}

}  // namespace baton::kvservice

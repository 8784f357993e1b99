#include "samples/kvservice/config.h"

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

}  // namespace

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
  if (root.IsNull()) return c;
  if (absl::Status s = CheckKeys(
          root, "", {"listen", "grpc_listen", "data_dir", "sync", "log_level", "http",
                 "grpc", "pipeline"});
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

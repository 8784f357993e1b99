// Configuration of baton-kvserver: a YAML file (samples/kvservice/kvservice.yaml
// documents every key) whose values command-line flags may override.
#ifndef BATON_SAMPLES_KVSERVICE_CONFIG_H_
#define BATON_SAMPLES_KVSERVICE_CONFIG_H_

#include <string>

#include "absl/status/statusor.h"
#include "framework/grpc/grpc_server.h"
#include "framework/http_server.h"
#include "framework/pipeline.h"
#include "storage/etcd/etcd_store.h"

namespace baton::kvservice {

// YAML `store:` -- which StableStore backend serves the requests.
struct StoreConfig {
  enum class Kind {
    kRocksDb,  // the embedded store in data_dir (one host). Default.
    kEtcd,     // an etcd cluster shared by every host of the service
  };
  Kind kind = Kind::kRocksDb;
  // kEtcd: endpoints, key_prefix, dial_timeout, request_timeout, TLS files,
  // username/password, max_request_bytes, max_txn_ops (the defaults of
  // storage::EtcdOptions, except key_prefix "kvservice/").
  storage::EtcdOptions etcd;
};

struct KvServerConfig {
  // Data directory of the embedded RocksDB store (created with its parents).
  // Default: ./var/kvdata
  std::string data_dir = "./var/kvdata";
  // fsync every commit before replying. Default: true. false only for tests
  // that do not test durability across machine crashes.
  bool sync = true;
  // spdlog level: trace, debug, info, warn, error. Default: info.
  std::string log_level = "info";
  framework::HttpServerOptions http;
  // Serve gRPC (samples/kvservice/proto/kv.proto) beside HTTP, on the same
  // store, at grpc.address:grpc.port. Default: false (the shipped
  // kvservice.yaml turns it on at 127.0.0.1:9090).
  bool grpc_enabled = false;
  framework::GrpcServerOptions grpc;
  framework::PipelineOptions pipeline;
  StoreConfig store;
  // Sent in every reply (HTTP header Baton-Node, gRPC trailer baton-node) so
  // clients see which host answered. Default: the host name.
  std::string node_name;
  // YAML `takeover:`: a take-over daemon config (the keys of
  // deploy/baton-takeoverd.example.yaml), re-emitted as YAML text for
  // baton::takeover::ParseDaemonConfig; empty: no embedded agent.
  std::string takeover_yaml;
  // YAML `takeover_mode`: how the agent runs. "process" (default): a
  // supervised child process (baton-takeoverd --parent-fd), so a crash of
  // this server hands its addresses over at once; "thread": inside this
  // process (the address then outlives a crash until its lease runs out).
  std::string takeover_mode = "process";
  // YAML `takeover_binary`: the baton-takeoverd for takeover_mode process.
  // Default (empty): beside this binary, then its build tree, then PATH.
  std::string takeover_binary;
};

// The host name (gethostname), the default node_name; "localhost" if none.
std::string DefaultNodeName();

// Parses "host:port" (port 0: ephemeral) into `grpc` for the gRPC listener.
[[nodiscard]] absl::Status ParseGrpcListen(const std::string& listen,
                                           framework::GrpcServerOptions* grpc);

// Parses "host:port" (port 0: ephemeral) into `http`. kInvalidArgument on error.
[[nodiscard]] absl::Status ParseListen(const std::string& listen,
                                       framework::HttpServerOptions* http);

// Loads a YAML config on top of the defaults. Unknown keys and wrong types
// are kInvalidArgument (naming the key); an unreadable file kNotFound.
[[nodiscard]] absl::StatusOr<KvServerConfig> LoadConfig(const std::string& path);

}  // namespace baton::kvservice

#endif  // BATON_SAMPLES_KVSERVICE_CONFIG_H_

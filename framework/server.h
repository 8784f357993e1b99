// The server entry point: a baton service is its routes and handlers; the
// framework owns the rest -- config and flags, the store, the request
// pipeline with completion-record GC, the HTTP and gRPC listeners, the
// operator plane (admin listener: status, drain, stats, metrics, health),
// the take-over agent and its fences, TLS, signals, systemd notification,
// and the order in which all of that starts and stops.
//
// A service's whole main (samples/reservations/main.cc is a real one):
//
//   int main(int argc, char** argv) {
//     baton::framework::ServiceDefinition service("hello");
//     service.Route("POST", "/hits", HandleHit);         // HTTP route
//     service.Method("/hello.v1.Hello/Hit",               // typed gRPC
//                    MakeTypedHandler<HitRequest, HitReply>(HandleHitGrpc));
//     return baton::framework::ServerMain(argc, argv, std::move(service));
//   }
//
// Two levels:
//   - ServerMain(argc, argv, service): the standard flags and YAML config
//     (docs/framework.md "Server configuration"), logging, SIGTERM/SIGINT
//     (clean stop), SIGHUP (TLS files and admin token re-read), ready file,
//     systemd notification. Exit codes: 0 clean stop, 1 runtime failure
//     (store cannot open, port in use, agent cannot start), 2 bad config
//     or flags (unknown key, wrong type, out-of-range number, duplicate
//     route), each with one message naming the key or resource.
//   - Server::Start(config, service) / Shutdown() for embedding in a
//     program that has its own main.
//
// Start order (Server::Start): check the service definition and the config
// -> create the take-over agent (config checked, nothing started) -> open
// the store -> the pipeline (GC on by default) -> the HTTP and gRPC
// listeners -> the admin listener -> background GC -> the agent, which
// campaigns for addresses only now that a request reaching one finds a
// server. Shutdown: the agent hands its addresses over first (grantors
// told, the next holder takes them in about a round trip), then the
// listeners stop accepting and finish the requests in flight (those commit
// under this host's fence or are refused as deposed, never both), then GC
// stops and the store closes.
//
// Thread safety: Start/Shutdown/Wait from one owning thread; the accessors
// from any thread.
#ifndef BATON_FRAMEWORK_SERVER_H_
#define BATON_FRAMEWORK_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "framework/grpc/grpc_server.h"
#include "framework/handler.h"
#include "framework/http_server.h"
#include "framework/pipeline.h"
#include "framework/tls.h"
#include "storage/etcd/etcd_store.h"
#include "storage/stable_store.h"

namespace baton::framework {

class ServerMetrics;

// What the service is: its name, HTTP routes, gRPC methods, and optional
// hooks. Route/method mistakes (a malformed pattern, the same route twice)
// are collected and reported by Server::Start as kInvalidArgument (exit 2
// from ServerMain).
class ServiceDefinition {
 public:
  // `name`: for logs, --help and the default store directory
  // (./var/<name>). Lower-case letters, digits, '-' and '_'.
  explicit ServiceDefinition(std::string name);

  const std::string& name() const { return name_; }

  // Adds an HTTP route (framework/http_server.h Router::Add).
  ServiceDefinition& Route(std::string_view method, std::string_view pattern,
                           std::shared_ptr<Handler> handler);
  ServiceDefinition& Route(std::string_view method, std::string_view pattern,
                           HandlerFunction handler);
  // Adds a gRPC method: a typed one (framework/grpc/typed.h,
  // MakeTypedHandler<Req, Resp>(fn)) or a raw-bytes Handler.
  ServiceDefinition& Method(std::string_view full_method,
                            std::shared_ptr<Handler> handler);

  // Direct access to the routers, for helpers that add several at once
  // (their errors must be reported through Fail()).
  Router& http() { return http_; }
  GrpcRouter& grpc() { return grpc_; }
  // Records an error found while defining the service.
  void Fail(absl::Status status);

  // Derives a request's principal from its credentials (e.g. an
  // Authorization header), on both front ends: see Request::principal.
  // kUnauthenticated / kPermissionDenied refuse the request (401/403,
  // UNAUTHENTICATED/PERMISSION_DENIED). Default: none.
  ServiceDefinition& Authenticate(
      std::function<absl::StatusOr<std::string>(const Request&)> hook);

  // Called once the server runs (after the ready file is written), e.g. to
  // print how to call the service. Default: none.
  ServiceDefinition& OnStarted(std::function<void(const class Server&)> hook);

  // The first definition error, if any.
  absl::Status status() const { return status_; }

 private:
  friend class Server;
  friend int ServerMain(int argc, char** argv, ServiceDefinition service);
  std::string name_;
  Router http_;
  GrpcRouter grpc_;
  std::function<absl::StatusOr<std::string>(const Request&)> authenticate_;
  std::function<void(const Server&)> on_started_;
  absl::Status status_;
};

// Which store serves the requests.
struct StoreConfig {
  enum class Kind {
    kRocksDb,  // embedded, one host, durable across process crashes. Default.
    kEtcd,     // a replicated etcd cluster shared by the service's hosts.
    kMemory,   // in memory, lost at exit: tests and demos only.
  };
  Kind kind = Kind::kRocksDb;
  // kRocksDb: the database directory (created with its parents).
  // Default: ./var/<service name>.
  std::string data_dir;
  // kRocksDb: fsync every commit before replying. Default: true; false only
  // for tests (a machine crash then loses acknowledged writes).
  bool sync = true;
  // kEtcd: endpoints, key prefix (default "<service name>/"), timeouts,
  // TLS, auth, limits, group commit, read cache (storage/etcd/etcd_store.h).
  storage::EtcdOptions etcd;
};

struct AdminConfig {
  // Serve the operator plane. Default: true.
  bool enabled = true;
  // "host:port" (loopback unless a token is set) or "unix:/path".
  // Default: 127.0.0.1:0 (an ephemeral port, logged and in the ready file).
  std::string listen = "127.0.0.1:0";
  // Bearer token file (framework/admin/admin_server.h). Default: none.
  std::string token_file;
};

struct ServerConfig {
  // Sent in every reply (HTTP `Baton-Node`, gRPC trailer `baton-node`) and
  // used as the store client's name. Default: the host name.
  std::string node_name;
  // spdlog level: trace, debug, info, warn, error, critical, off.
  // Default: info.
  std::string log_level = "info";

  bool http_enabled = true;
  HttpServerOptions http;  // listen address, threads, limits, TLS
  // gRPC beside HTTP, on the same pipeline. Default: off.
  bool grpc_enabled = false;
  GrpcServerOptions grpc;
  AdminConfig admin;
  StoreConfig store;
  PipelineOptions pipeline;
  // Background completion-record GC. Default: true (without it every
  // record is kept forever).
  bool gc = true;

  // The take-over agent: a baton-takeoverd config (YAML text of the
  // `takeover:` section); empty: no agent.
  std::string takeover_yaml;
  // "process" (default: a supervised child, baton-takeoverd --parent-fd)
  // or "thread".
  std::string takeover_mode = "process";
  // baton-takeoverd for process mode; empty: beside this binary, its build
  // tree, PATH.
  std::string takeover_binary;

  // Written (atomically) once the server runs: line 1 the HTTP host:port,
  // line 2 the gRPC host:port, line 3 the admin address ("-" for a
  // listener that is off). Default: none.
  std::string ready_file;

  // Tests only. SIGKILL this process right after the Nth completion record
  // is durable, before its reply is sent (0: never).
  int test_kill_after_records = 0;
  // Tests only. First back-off before a dead agent child is restarted
  // (zero: the default 100 ms).
  absl::Duration test_agent_restart = absl::ZeroDuration();

  // Messages about deprecated keys found while loading (logged at start).
  std::vector<std::string> warnings;
};

// The defaults above for `service_name` (data_dir ./var/<name>, etcd key
// prefix <name>/, node name = host name).
ServerConfig DefaultServerConfig(std::string_view service_name);

// Loads a YAML config file on top of DefaultServerConfig(service_name).
// kInvalidArgument naming the key (unknown key, wrong type, out of range),
// kNotFound for an unreadable file. The format: docs/framework.md.
[[nodiscard]] absl::StatusOr<ServerConfig> LoadServerConfig(
    const std::string& path, std::string_view service_name);
// The same from YAML text (`what` names it in errors).
[[nodiscard]] absl::StatusOr<ServerConfig> ParseServerConfig(
    std::string_view yaml, std::string_view service_name,
    std::string_view what = "config");

// Parses "host:port" / "[v6]:port" (port 0: ephemeral).
[[nodiscard]] absl::Status ParseHostPort(std::string_view text,
                                         std::string* host, uint16_t* port);

class Server {
 public:
  // Starts everything (see the file comment). Errors: kInvalidArgument (the
  // service definition or config: ServerMain exits 2), others runtime
  // (kUnavailable: port in use, store unreachable, agent cannot start;
  // ServerMain exits 1). Nothing is left running on error.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Server>> Start(
      ServerConfig config, ServiceDefinition service);

  ~Server();  // Shutdown().
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Graceful stop in the order of the file comment. Idempotent.
  void Shutdown();

  // Re-reads the TLS certificate files of the HTTP listener and the admin
  // token (SIGHUP); the gRPC listener watches its files on its own. The
  // first error, if any (the old certificate stays).
  absl::Status ReloadCredentials();

  const ServerConfig& config() const;
  // Bound addresses ("host:port"; empty when that listener is off).
  std::string http_address() const;
  std::string grpc_address() const;
  std::string admin_address() const;

  RequestPipeline& pipeline();
  storage::StableStore& store();
  ServerMetrics& metrics();

  // True while the store answers and, with an agent, while it may serve
  // (what /readyz says).
  bool Ready() const;

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Runs a service as a program: flags (--help lists them), config, logging,
// signals; returns the exit code (see the file comment).
int ServerMain(int argc, char** argv, ServiceDefinition service);

}  // namespace baton::framework

#endif  // BATON_FRAMEWORK_SERVER_H_

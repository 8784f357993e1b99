// baton-kvserver: the sample key-value service (kv_service.h: HTTP routes,
// kv_grpc.h: the same operations over gRPC) on baton's server entry point,
// which owns the rest: config (kvservice.yaml documents every key), the
// store (embedded RocksDB or etcd), the listeners, the operator plane, the
// take-over agent, signals and exit codes (framework/server.h).
#include <cstdio>
#include <string>

#include "framework/server.h"
#include "samples/kvservice/kv_grpc.h"
#include "samples/kvservice/kv_service.h"

namespace {

// How to call the service, printed once it serves (the README's first run).
void PrintUsage(const baton::framework::Server& server) {
  const std::string http = server.http_address();
  const std::string grpc = server.grpc_address();
  if (!http.empty()) {
    const std::string b = "http://" + http;
    std::printf(
        "baton-kvserver serving on %s. Try (a retry with the same "
        "Idempotency-Key is answered from the saved reply, never executed "
        "twice):\n"
        "  curl -i -X PUT %s/kv/greeting -H 'Idempotency-Key: \"put-1\"' "
        "-d '{\"value\":\"hello\"}'\n"
        "  curl -i %s/kv/greeting\n"
        "  curl -i -X POST %s/kv/visits/incr -H 'Idempotency-Key: "
        "\"incr-1\"' -d '{\"by\":1}'\n"
        "  curl -i -X POST %s/kv/visits/incr -H 'Idempotency-Key: "
        "\"incr-1\"' -d '{\"by\":1}'   # replay: Idempotent-Replayed: true\n"
        "  build/samples/kvservice/baton-kv --http %s incr visits\n",
        http.c_str(), b.c_str(), b.c_str(), b.c_str(), b.c_str(), http.c_str());
  }
  if (!grpc.empty()) {
    std::printf("gRPC (samples/kvservice/proto/kv.proto) on %s:\n"
                "  build/samples/kvservice/baton-kv --grpc %s get visits\n",
                grpc.c_str(), grpc.c_str());
  }
  if (!server.admin_address().empty()) {
    std::printf("Operator plane on %s: /baton/status, /baton/stats, "
                "/metrics, /healthz, /readyz, POST /baton/drain\n",
                server.admin_address().c_str());
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  baton::framework::ServiceDefinition service("kvservice");
  service.Fail(baton::kvservice::RegisterKvRoutes(service.http()));
  service.Fail(baton::kvservice::RegisterKvGrpcMethods(service.grpc()));
  service.OnStarted(PrintUsage);
  return baton::framework::ServerMain(argc, argv, std::move(service));
}

// The sample key-value service over gRPC (samples/kvservice/proto/kv.proto):
// each method decodes its protobuf message, runs the same handler as the
// matching HTTP route (kv_service.h) in the same pipeline, and encodes the
// reply as a KvReply. A serving process registers these on a GrpcRouter
// beside RegisterKvRoutes on a Router, over one RequestPipeline and store.
//
// Requests are fingerprinted as gRPC requests (method name + message bytes),
// so one request id used once over HTTP and once over gRPC is "reused for a
// different request" (FAILED_PRECONDITION, idempotency_key_reused).
#ifndef BATON_SAMPLES_KVSERVICE_KV_GRPC_H_
#define BATON_SAMPLES_KVSERVICE_KV_GRPC_H_

#include "absl/status/status.h"
#include "framework/grpc/grpc_server.h"

namespace baton::kvservice {

// The full method names.
inline constexpr char kGrpcGet[] = "/baton.kv.v1.Kv/Get";
inline constexpr char kGrpcPut[] = "/baton.kv.v1.Kv/Put";
inline constexpr char kGrpcDelete[] = "/baton.kv.v1.Kv/Delete";
inline constexpr char kGrpcCas[] = "/baton.kv.v1.Kv/Cas";
inline constexpr char kGrpcIncr[] = "/baton.kv.v1.Kv/Incr";
inline constexpr char kGrpcAppend[] = "/baton.kv.v1.Kv/Append";

// Adds the six methods to `router`. Errors: those of GrpcRouter::Add.
[[nodiscard]] absl::Status RegisterKvGrpcMethods(framework::GrpcRouter& router);

}  // namespace baton::kvservice

#endif  // BATON_SAMPLES_KVSERVICE_KV_GRPC_H_

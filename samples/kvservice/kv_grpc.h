// The sample key-value service over gRPC (samples/kvservice/proto/kv.proto):
// typed methods (framework/grpc/typed.h) over the same operations as the
// HTTP routes (kv_service.h: KvGet ... KvAppend), in the same pipeline. A
// serving process registers these on a GrpcRouter beside RegisterKvRoutes
// on a Router, over one RequestPipeline and store.
//
// Answers: a KvReply; or NOT_FOUND / FAILED_PRECONDITION / INVALID_ARGUMENT
// with the HTTP front end's JSON error as the status message, the JSON
// error's code as trailing metadata `baton-error` ("not_found",
// "precondition_failed", "invalid_argument") and, when the refusal names the
// current value (CAS mismatch, wrong type), a KvReply {key, value_json} in
// the google.rpc.Status details. Request bytes that are not the method's
// message: INVALID_ARGUMENT `baton-error: invalid_argument`.
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

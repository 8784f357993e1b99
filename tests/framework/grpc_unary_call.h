// One unary call through grpc::GenericStub with an `idempotency-key`, for the
// tests that talk to baton's gRPC front end as a plain gRPC client would.
// Blocks until the call ends. Thread-safe (each call has its own context).
#ifndef BATON_TESTS_FRAMEWORK_GRPC_UNARY_CALL_H_
#define BATON_TESTS_FRAMEWORK_GRPC_UNARY_CALL_H_

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"

namespace baton::framework {

struct GrpcAnswer {
  grpc::Status status;
  std::string body;      // the reply message (status OK)
  std::string replayed;  // trailing metadata `idempotent-replayed`, if any
};

// Calls `method` on `channel` with `body` as the message; `timeout` 0: none.
inline GrpcAnswer GrpcUnaryCall(const std::shared_ptr<grpc::Channel>& channel,
                                const std::string& method, const std::string& key,
                                const std::string& body,
                                std::chrono::milliseconds timeout = {}) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  if (timeout.count() > 0) ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  ctx.AddMetadata("idempotency-key", key);
  grpc::Slice slice(body);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer reply;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &reply,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  GrpcAnswer a;
  a.status = done.get_future().get();
  std::vector<grpc::Slice> slices;
  if (a.status.ok() && reply.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) {
      a.body.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  auto it = ctx.GetServerTrailingMetadata().find("idempotent-replayed");
  if (it != ctx.GetServerTrailingMetadata().end()) {
    a.replayed = std::string(it->second.data(), it->second.size());
  }
  return a;
}

}  // namespace baton::framework

#endif  // BATON_TESTS_FRAMEWORK_GRPC_UNARY_CALL_H_

// The gRPC transport of the retrying client: any unary method through
// grpc::GenericStub (serialized messages in, serialized messages out), so the
// client library needs no generated code. gRPC's own retries are switched off
// (the client retries with the request id); after a failed attempt the
// channel is replaced, which resolves the target again and reconnects at
// once instead of waiting out the channel's reconnect backoff.
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "framework/client/transport.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/byte_buffer.h"

namespace baton::framework::client {
namespace {

std::string ToString(const grpc::string_ref& s) {
  return std::string(s.data(), s.size());
}

class GrpcTransport : public Transport {
 public:
  explicit GrpcTransport(GrpcTransportOptions o) : options_(std::move(o)) {
    NewChannel(0);
  }

  absl::StatusOr<Response> Attempt(const Call& call, const IdHeaders& id,
                                   absl::Duration timeout, bool fresh) override {
    if (call.method.empty() || call.method[0] != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("bad gRPC method name \"", call.method, "\""));
    }
    std::shared_ptr<grpc::GenericStub> stub;
    uint64_t generation = 0;
    {
      absl::MutexLock lock(&mu_);
      stub = stub_;
      generation = generation_;
    }
    if (fresh && generation == failed_generation_.load()) {
      stub = NewChannel(generation);
      absl::MutexLock lock(&mu_);
      generation = generation_;
    }

    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     absl::ToChronoMicroseconds(timeout));
    if (!id.client_id.empty()) {
      ctx.AddMetadata("baton-client-id", id.client_id);
      ctx.AddMetadata("baton-seq", std::to_string(id.seq));
      if (id.acked) ctx.AddMetadata("baton-ack", std::to_string(*id.acked));
    } else if (!id.idempotency_key.empty()) {
      ctx.AddMetadata("idempotency-key", id.idempotency_key);
    }
    grpc::Slice slice(call.body);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer reply;
    std::promise<grpc::Status> done;
    stub->UnaryCall(&ctx, call.method, grpc::StubOptions(), &request, &reply,
                    [&done](grpc::Status s) { done.set_value(std::move(s)); });
    const grpc::Status status = done.get_future().get();

    auto trailer = [&](const char* name) -> std::string {
      const auto& md = ctx.GetServerTrailingMetadata();
      auto it = md.find(name);
      if (it != md.end()) return ToString(it->second);
      const auto& init = ctx.GetServerInitialMetadata();
      it = init.find(name);
      return it == init.end() ? std::string() : ToString(it->second);
    };
    const std::string error_code = trailer("baton-error");
    // No answer from a baton server: a transport failure, outcome unknown.
    if (error_code.empty() &&
        (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
         status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)) {
      failed_generation_.store(generation);
      const std::string msg = absl::StrCat(options_.target, ": ",
                                           status.error_message());
      if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
        return absl::DeadlineExceededError(msg);
      }
      return absl::UnavailableError(msg);
    }
    Response r;
    r.code = static_cast<absl::StatusCode>(status.error_code());
    r.replayed = trailer("idempotent-replayed") == "true";
    r.node = trailer("baton-node");
    r.error_code = error_code;
    if (status.ok()) {
      std::vector<grpc::Slice> slices;
      if (!reply.Dump(&slices).ok()) {
        return absl::InternalError("cannot read the reply message");
      }
      for (const grpc::Slice& s : slices) {
        r.body.append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
    } else {
      r.body = status.error_message();
    }
    return r;
  }

 private:
  // Replaces the channel if it is still generation `seen`; returns the
  // current stub.
  std::shared_ptr<grpc::GenericStub> NewChannel(uint64_t seen) {
    absl::MutexLock lock(&mu_);
    if (stub_ && generation_ != seen) return stub_;
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
    // A channel of its own connections: a new channel must really reconnect
    // (the global subchannel pool would hand back the old, failed one).
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    args.SetMaxReceiveMessageSize(options_.max_receive_bytes);
    stub_ = std::make_shared<grpc::GenericStub>(grpc::CreateCustomChannel(
        options_.target, grpc::InsecureChannelCredentials(), args));
    ++generation_;
    return stub_;
  }

  const GrpcTransportOptions options_;
  absl::Mutex mu_;
  std::shared_ptr<grpc::GenericStub> stub_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<uint64_t> failed_generation_{~0ULL};
};

}  // namespace

absl::StatusOr<std::unique_ptr<Transport>> MakeGrpcTransport(
    const GrpcTransportOptions& options) {
  if (options.target.empty()) return absl::InvalidArgumentError("empty target");
  return std::unique_ptr<Transport>(new GrpcTransport(options));
}

}  // namespace baton::framework::client

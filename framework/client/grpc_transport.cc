// The gRPC transport of the retrying client: any unary method through
// grpc::GenericStub (serialized messages in, serialized messages out), so the
// client library needs no generated code. gRPC's own retries are switched off
// (the client retries with the request id); after a failed attempt the
// channel is replaced, which resolves the target again and reconnects at
// once instead of waiting out the channel's reconnect backoff. TLS through
// grpc::SslCredentials (gRPC's defaults: TLS 1.2 or later, the peer's name
// checked); its failures come back as UNAVAILABLE with OpenSSL's text, which
// is read here to end the call instead of retrying it.
#include <utility>  // Before Asio: Boost 1.74 uses std::exchange without it.

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "framework/client/internal/tls.h"
#include "framework/client/transport.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/byte_buffer.h"

namespace baton::framework::client {
namespace {

std::string ToString(const grpc::string_ref& s) {
  return std::string(s.data(), s.size());
}

// The host and port of a "host:port" or "dns:///host:port" target (for the
// TLS probe); nullopt for other forms (unix:, lists, no port).
std::optional<std::pair<std::string, uint16_t>> HostPort(std::string target) {
  if (absl::StartsWith(target, "dns:///")) target = target.substr(7);
  const size_t colon = target.rfind(':');
  uint32_t port = 0;
  if (colon == std::string::npos || colon == 0 ||
      target.find('/') != std::string::npos ||
      !absl::SimpleAtoi(target.substr(colon + 1), &port) || port == 0 ||
      port > 65535) {
    return std::nullopt;
  }
  std::string host = target.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return std::make_pair(host, static_cast<uint16_t>(port));
}

// A connection failure that no retry cures, from gRPC's status message
// (C-core reports TLS failures as UNAVAILABLE, with OpenSSL's text or its
// own peer-name check in the message). Empty status: none.
absl::Status FinalTlsFailure(const std::string& target, const std::string& msg,
                             const TlsOptions& tls) {
  auto has = [&](const char* s) { return msg.find(s) != std::string::npos; };
  if (has("certificate verify failed") || has("Peer name") ||
      has("peer name") || has("CERTIFICATE_VERIFY_FAILED")) {
    return absl::UnauthenticatedError(absl::StrCat(
        "TLS: the certificate of ", target, " is not trusted (",
        tls.ca_file.empty() ? "checked against the system CA store"
                            : absl::StrCat("checked against ", tls.ca_file),
        "): ", msg));
  }
  if (has("alert bad certificate") || has("alert certificate required") ||
      has("alert unknown ca") || has("alert certificate unknown") ||
      has("alert access denied") || has("alert certificate expired") ||
      has("alert certificate revoked")) {
    return absl::UnauthenticatedError(absl::StrCat(
        "TLS: ", target, " refused this client's certificate: ", msg));
  }
  if (has("wrong version number") || has("WRONG_VERSION_NUMBER") ||
      has("alert protocol version") || has("unsupported protocol")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "TLS: ", target, " does not speak TLS 1.2 or later (is it a plain-text "
        "server?): ", msg));
  }
  return absl::OkStatus();
}

class GrpcTransport : public Transport {
 public:
  GrpcTransport(GrpcTransportOptions o,
                std::shared_ptr<grpc::ChannelCredentials> credentials,
                std::unique_ptr<boost::asio::ssl::context> tls_context)
      : options_(std::move(o)),
        credentials_(std::move(credentials)),
        tls_context_(std::move(tls_context)) {
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
    // CANCELLED that this client did not ask for, without baton's trailers:
    // the server's gRPC dropped the call before baton saw it -- a call that
    // raced with the GOAWAY of a listener shutting down at a planned release
    // (gRPC C++ 1.51 cancels calls that arrive after its Shutdown began).
    // Not executed, or (were it anything else) of unknown outcome: retried
    // with the same id. A handler's own CANCELLED reply is retried once and
    // its replay is final.
    if (error_code.empty() && status.error_code() == grpc::StatusCode::CANCELLED &&
        trailer("idempotent-replayed") != "true") {
      return absl::UnavailableError(absl::StrCat(
          options_.target, ": the server cancelled the call before answering (",
          status.error_message(), ")"));
    }
    // No answer from a baton server: a transport failure, outcome unknown.
    if (error_code.empty() &&
        (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
         status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)) {
      failed_generation_.store(generation);
      if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
        if (options_.tls.enabled) {
          absl::Status f =
              FinalTlsFailure(options_.target, status.error_message(), options_.tls);
          if (!f.ok()) return f;
        }
        // No server has answered this transport yet: a plain-text channel to
        // a TLS server, or a client certificate refused after a TLS 1.3
        // handshake, fail just like a server that is down ("Socket
        // closed"). One more connection, made with OpenSSL, tells them
        // apart (a server that is down refuses it).
        if (!answered_.load()) {
          if (auto hp = HostPort(options_.target)) {
            absl::Status d = internal::DiagnoseTls(
                hp->first, hp->second, tls_context_.get(),
                options_.tls.server_name.empty() ? hp->first : options_.tls.server_name,
                options_.tls, std::min(timeout, absl::Seconds(1)));
            if (!d.ok()) return d;
          }
        }
      }
      const std::string msg = absl::StrCat(options_.target, ": ",
                                           status.error_message());
      if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
        return absl::DeadlineExceededError(msg);
      }
      return absl::UnavailableError(msg);
    }
    answered_.store(true);
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
    if (!options_.tls.server_name.empty()) {
      args.SetSslTargetNameOverride(options_.tls.server_name);
    }
    stub_ = std::make_shared<grpc::GenericStub>(
        grpc::CreateCustomChannel(options_.target, credentials_, args));
    ++generation_;
    return stub_;
  }

  const GrpcTransportOptions options_;
  const std::shared_ptr<grpc::ChannelCredentials> credentials_;
  // The same TLS set-up for OpenSSL, to diagnose failures; null: plain text.
  const std::unique_ptr<boost::asio::ssl::context> tls_context_;
  // Some attempt got an answer from a server.
  std::atomic<bool> answered_{false};
  absl::Mutex mu_;
  std::shared_ptr<grpc::GenericStub> stub_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<uint64_t> failed_generation_{~0ULL};
};

}  // namespace

absl::StatusOr<std::unique_ptr<Transport>> MakeGrpcTransport(
    const GrpcTransportOptions& options) {
  if (options.target.empty()) return absl::InvalidArgumentError("empty target");
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::InsecureChannelCredentials();
  std::unique_ptr<boost::asio::ssl::context> tls_context;
  if (options.tls.enabled) {
    // Without a CA file, the system's bundle (as the HTTP transport uses),
    // not gRPC's own list of roots.
    absl::StatusOr<internal::TlsMaterial> m =
        internal::LoadTlsMaterial(options.tls, /*system_bundle=*/true);
    if (!m.ok()) return m.status();
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = m->ca_pem;
    ssl.pem_cert_chain = m->cert_pem;
    ssl.pem_private_key = m->key_pem;
    credentials = grpc::SslCredentials(ssl);
    if (!credentials) return absl::InvalidArgumentError("gRPC refused the TLS credentials");
    absl::StatusOr<std::unique_ptr<boost::asio::ssl::context>> ctx =
        internal::MakeClientContext(*m);
    if (!ctx.ok()) return ctx.status();
    tls_context = *std::move(ctx);
  }
  return std::unique_ptr<Transport>(
      new GrpcTransport(options, std::move(credentials), std::move(tls_context)));
}

}  // namespace baton::framework::client

// How the retrying client sends one attempt of a request: HTTP/1.1 (Boost.Beast)
// or gRPC (generic, any unary method), behind one interface so that the retry
// loop (framework/client/client.h) is the same for both and tests can fake it.
//
// A connection that failed is never reused, and every attempt after a failure
// resolves the server name again and opens a new connection: after a
// take-over the address may be served by another host.
//
// Thread safety: implementations are thread-safe; many attempts may be in
// flight at once (HTTP: a small pool of keep-alive connections, one request
// at a time each; gRPC: one multiplexed channel).
#ifndef BATON_FRAMEWORK_CLIENT_TRANSPORT_H_
#define BATON_FRAMEWORK_CLIENT_TRANSPORT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace baton::framework::client {

// One request, protocol-specific where it must be.
struct Call {
  // HTTP: the method ("PUT"). gRPC: the full method name
  // ("/baton.kv.v1.Kv/Put").
  std::string method;
  // HTTP: the target ("/kv/a"). gRPC: unused.
  std::string target;
  // HTTP: the body. gRPC: the serialized request message.
  std::string body;
  // HTTP Content-Type. Default: application/json.
  std::string content_type = "application/json";
};

// The request id sent with an attempt (HTTP headers Baton-Client-Id,
// Baton-Seq, Baton-Ack or Idempotency-Key; gRPC metadata of the same names in
// lower case).
struct IdHeaders {
  std::string client_id;            // Empty: use idempotency_key.
  uint64_t seq = 0;
  std::optional<uint64_t> acked;    // Acknowledged watermark, if any.
  std::string idempotency_key;      // Used when client_id is empty.
};

// What the server answered.
struct Response {
  // gRPC: the status code (1:1 with absl). HTTP: the code the status maps
  // back to (200 kOk, 400 kInvalidArgument, 404 kNotFound, 409 kAborted,
  // 412 kFailedPrecondition, 503 kUnavailable, ...).
  absl::StatusCode code = absl::StatusCode::kOk;
  // HTTP status; 0 for gRPC.
  int http_status = 0;
  // HTTP body, or the gRPC reply message (OK) / status message (not OK).
  std::string body;
  // The reply was served from a completion record (HTTP
  // `Idempotent-Replayed: true`; gRPC trailing metadata
  // `idempotent-replayed: true`).
  bool replayed = false;
  // baton's error code for framework errors ("request_in_progress",
  // "aborted", "unavailable", "idempotency_key_reused", ...); empty for a
  // handler's reply.
  std::string error_code;
  // Server's Retry-After hint (HTTP), zero if none.
  absl::Duration retry_after;
  // Which host answered: the `Baton-Node` header (HTTP) / `baton-node`
  // trailing metadata (gRPC); empty if the server sent none.
  std::string node;
};

class Transport {
 public:
  virtual ~Transport() = default;

  // Sends one attempt and waits for the answer, at most `timeout`.
  // `fresh`: do not reuse a connection opened before (this is a retry).
  // Errors (no answer; the outcome is unknown): kUnavailable (cannot resolve
  // or connect, connection reset or closed), kDeadlineExceeded (no answer in
  // time). kInvalidArgument: the call cannot be sent (bad method/target).
  [[nodiscard]] virtual absl::StatusOr<Response> Attempt(
      const Call& call, const IdHeaders& id, absl::Duration timeout,
      bool fresh) = 0;
};

struct HttpTransportOptions {
  // Server host name or address (resolved again on every new connection) and
  // port. Default: 127.0.0.1:8080.
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  // Idle keep-alive connections kept for reuse; more are opened when more
  // requests are in flight, and closed after use. Default: 8.
  int max_idle_connections = 8;
  // Time allowed for a new connection's handshake, capped by the attempt's
  // timeout (see RetryOptions::connect_timeout). Zero: the attempt's timeout.
  // Default: zero.
  absl::Duration connect_timeout = absl::ZeroDuration();
};
// Errors: kInvalidArgument (empty host).
[[nodiscard]] absl::StatusOr<std::unique_ptr<Transport>> MakeHttpTransport(
    const HttpTransportOptions& options);

struct GrpcTransportOptions {
  // gRPC target ("host:port", "dns:///name:port"). Default: 127.0.0.1:9090.
  std::string target = "127.0.0.1:9090";
  // Largest reply message. Default: 4 MiB.
  int max_receive_bytes = 4 * 1024 * 1024;
};
// Errors: kInvalidArgument (empty target).
[[nodiscard]] absl::StatusOr<std::unique_ptr<Transport>> MakeGrpcTransport(
    const GrpcTransportOptions& options);

// The code an HTTP status maps back to (see Response::code).
absl::StatusCode CodeForHttpStatus(int status);

}  // namespace baton::framework::client

#endif  // BATON_FRAMEWORK_CLIENT_TRANSPORT_H_

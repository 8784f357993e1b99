// How the retrying client sends one attempt of a request: HTTP/1.1 (Boost.Beast)
// or gRPC (generic, any unary method), behind one interface so that the retry
// loop (framework/client/client.h) is the same for both and tests can fake it.
//
// A connection that failed is never reused, and every attempt after a failure
// resolves the server name again and opens a new connection: after a
// take-over the address may be served by another host.
//
// Both transports speak TLS when TlsOptions::enabled (HTTP: Boost.Beast's
// ssl_stream on OpenSSL; gRPC: grpc::SslCredentials): TLS 1.2 or later, the
// server's certificate verified against a CA file or the system store and
// its name checked against the host dialled (or TlsOptions::server_name),
// SNI sent, an optional client certificate for mutual TLS. A failed
// verification is final, never retried: retrying cannot make a certificate
// trusted, and nothing was sent (see Transport::Attempt's error codes).
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
  // time). Final errors (the request was not sent; a retry cannot help):
  // kInvalidArgument: the call cannot be sent (bad method/target);
  // kUnauthenticated: TLS verification failed -- the server's certificate is
  // not signed by a trusted CA or does not name the host, or the server
  // refused this client's certificate (mTLS); kFailedPrecondition: the two
  // ends disagree about TLS (a TLS client reached a plain-text server, or a
  // plain-text client a TLS server) or share no TLS version.
  [[nodiscard]] virtual absl::StatusOr<Response> Attempt(
      const Call& call, const IdHeaders& id, absl::Duration timeout,
      bool fresh) = 0;
};

// TLS for a transport. Files are PEM and read once, when the transport is
// made (so a later change of a file needs a new transport).
struct TlsOptions {
  // Speak TLS. Default: false (plain text).
  bool enabled = false;
  // CA certificates that sign the server's certificate. Empty: the system
  // store (OpenSSL's default paths: on Debian /etc/ssl/certs; SSL_CERT_FILE
  // overrides). Default: empty.
  std::string ca_file{};
  // Client certificate (chain) and its private key, for servers that verify
  // clients (mTLS); both or neither. Default: empty (no client certificate).
  std::string cert_file{};
  std::string key_file{};
  // The name the server's certificate must carry (a DNS name, or an IP
  // address matched against the certificate's IP entries) and the SNI sent
  // (not for an IP address). Empty: the host dialled. Default: empty.
  std::string server_name{};
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
  // HTTPS when tls.enabled (the handshake counts in the attempt's timeout,
  // after connect_timeout). Default: plain HTTP.
  TlsOptions tls{};
};
// Errors: kInvalidArgument (empty host; with TLS, a PEM file that cannot be
// read or parsed, a certificate without its key or a key that does not
// match).
[[nodiscard]] absl::StatusOr<std::unique_ptr<Transport>> MakeHttpTransport(
    const HttpTransportOptions& options);

struct GrpcTransportOptions {
  // gRPC target ("host:port", "dns:///name:port"). Default: 127.0.0.1:9090.
  std::string target = "127.0.0.1:9090";
  // Largest reply message. Default: 4 MiB.
  int max_receive_bytes = 4 * 1024 * 1024;
  // TLS (grpc::SslCredentials) when tls.enabled; tls.server_name overrides
  // the name checked (grpc.ssl_target_name_override). Default: plain text.
  TlsOptions tls{};
};
// Errors: kInvalidArgument (empty target; TLS files as for HTTP).
[[nodiscard]] absl::StatusOr<std::unique_ptr<Transport>> MakeGrpcTransport(
    const GrpcTransportOptions& options);

// The code an HTTP status maps back to (see Response::code).
absl::StatusCode CodeForHttpStatus(int status);

}  // namespace baton::framework::client

#endif  // BATON_FRAMEWORK_CLIENT_TRANSPORT_H_

// The gRPC front end: serves the same handlers (framework/handler.h) through
// the same request pipeline as the HTTP front end, over gRPC, as a generic
// service (any unary method; messages are passed to handlers as bytes), so it
// needs no generated code of its own.
//
//   GrpcRouter router;
//   (void)router.Add("/baton.kv.v1.Kv/Put", put_handler);
//   auto server = StartGrpcServer({.port = 9090}, std::move(router), pipeline);
//
// A handler gets a Request with operation = path = the full method name,
// body = the serialized request message, metadata = the client's metadata.
// Its Reply becomes: kOk -> the reply body as the response message; any other
// code -> that gRPC status code with the body as the status message, or, for
// a Reply made by GrpcErrorReply() (typed methods' named errors), its
// message, `baton-error` trailer and google.rpc.Status details. Typed methods
// (protobuf messages in and out, parsed and serialized by the framework):
// framework/grpc/typed.h.
//
// Request ids from metadata (the HTTP headers' names in lower case):
//   idempotency-key: abc              an opaque key (1..255 printable ASCII)
//   baton-client-id: c1               baton's retrying client: client id,
//   baton-seq: 42                     its sequence number,
//   baton-ack: 40                     optional: all seq <= 40 were received.
// Missing id -> executed once per arrival (like HTTP). Both schemes at once,
// a seq without client id or the reverse, non-numeric or oversized values
// -> INVALID_ARGUMENT with `baton-error: bad_request_id`.
//
// Status codes: absl::StatusCode values map 1:1 to gRPC codes (kUnavailable =
// retry, kAborted = conflict, kFailedPrecondition = fenced/precondition).
// Framework errors (not handler replies) carry trailing metadata
// `baton-error` with the code names of the HTTP front end:
//   unknown method                         UNIMPLEMENTED       unknown_method
//   id reused for another request          FAILED_PRECONDITION idempotency_key_reused
//   same id still running                  ABORTED             request_in_progress
//   conflicts exhausted max_attempts       ABORTED             aborted
//   seq at/below the collected watermark   FAILED_PRECONDITION request_already_acknowledged
//   no id, commit outcome unknown          UNKNOWN             outcome_unknown
//   store unavailable                      UNAVAILABLE         unavailable
//   slot's fence not ready (fence.h)       UNAVAILABLE         fence_not_ready
//   deposed: newer holder's fence seen     UNAVAILABLE         deposed
//   request message too large              RESOURCE_EXHAUSTED  (gRPC's own)
// A reply served from a completion record carries trailing metadata
// `idempotent-replayed: true`.
//
// Authentication: with TLS and a client CA, the verified client
// certificate's subject (RFC 2253) is the call's principal; an
// options.authenticate hook may derive another (e.g. from an
// `authorization` metadata entry) or refuse the call (UNAUTHENTICATED,
// PERMISSION_DENIED with `baton-error: unauthenticated`/`permission_denied`).
//
// Listeners and fencing (framework/fence.h): beside a wildcard `address`,
// each of options.service_addresses (the take-over agent's addresses, set by
// the server entry point) gets a grpc::Server of its own, bound to that
// address with IP_FREEBIND (it need not be on the host yet) and SO_REUSEPORT
// (the kernel gives a connection to the most specific bind). A call there has
// Request::local_address = that address, whatever its :authority. On other
// addresses gRPC's C++ API does not expose a call's local socket address, so
// Request::local_address is the host part of the call's :authority -- the
// address the client dialled (gRPC's default authority is the target).
//
// Planned release (drain, SIGTERM; docs/framework.md "Embedded take-over"):
// CloseConnections(address) shuts that address's grpc::Server down -- every
// connection there gets HTTP/2 GOAWAY, the calls running on it finish and are
// answered (they commit under this host's fence or are refused as deposed),
// then the connections end -- and puts a fresh listener in its place for a
// later holding. The client's channel opens its next connection to the
// address, which by then the kernel fence refuses (a reset: the client
// retries at once) or another host holds. Cost per service address: one
// grpc::Server and its listening socket, no thread (calls run on gRPC's
// shared callback threads and the one worker pool), a few KiB (32 addresses:
// about 200 KiB resident, tests/framework/grpc_drain_test.cc).
//
// Threads: when the store commits asynchronously
// (RequestPipeline::ExecutesInline(), e.g. RocksDB), a call runs the handler
// on gRPC's callback thread and is answered from the store's commit callback
// (RequestPipeline::ExecuteAsync): no thread waits for the disk. Otherwise
// handlers and blocking store calls run on `worker_threads`.
//
// Thread safety: StartGrpcServer returns a running server; Stop() may be
// called from any thread, once or more.
#ifndef BATON_FRAMEWORK_GRPC_GRPC_SERVER_H_
#define BATON_FRAMEWORK_GRPC_GRPC_SERVER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "framework/handler.h"
#include "framework/observer.h"
#include "framework/pipeline.h"
#include "framework/tls.h"

namespace baton::framework {

class GrpcRouter {
 public:
  // Adds a unary method by its full name ("/package.Service/Method").
  // Errors: kInvalidArgument (not of that form), kAlreadyExists.
  [[nodiscard]] absl::Status Add(std::string_view full_method,
                                 std::shared_ptr<Handler> handler);
  // The handler of a method, or nullptr.
  Handler* Find(std::string_view full_method) const;

 private:
  std::map<std::string, std::shared_ptr<Handler>, std::less<>> methods_;
};

struct GrpcServerOptions {
  // Address and port to listen on. Port 0: an ephemeral port (see port()).
  // Default: 127.0.0.1:9090.
  std::string address = "127.0.0.1";
  uint16_t port = 9090;
  // Numeric addresses that get a listener of their own beside a wildcard
  // `address` (0.0.0.0, ::), so that CloseConnections() ends exactly the
  // connections there with GOAWAY (see the file comment). Ignored when
  // `address` is not a wildcard; if `address` is one of them, the main
  // listener is that address's. At most 1024 (as the take-over pool).
  // Default: none.
  std::vector<std::string> service_addresses;
  // Threads running handlers and blocking store calls, for stores that do
  // not commit asynchronously (otherwise unused). Default: 16.
  int worker_threads = 16;
  // Largest request message. Default: 1 MiB (as HTTP's max_body_bytes).
  int max_message_bytes = 1024 * 1024;
  // Largest total of the request's metadata, enforced by gRPC (larger ->
  // the call fails with RESOURCE_EXHAUSTED/INTERNAL before reaching baton).
  // Default: 8 KiB (as HTTP's max_header_bytes).
  int max_metadata_bytes = 8 * 1024;
  // Sent as trailing metadata `baton-node` of every call (which host
  // answered). Default: empty (none).
  std::string node_name;
  // TLS (framework/tls.h): gRPC's TLS server credentials over files it
  // re-reads every tls.grpc_refresh_interval; with client_ca_file the
  // client certificate's subject becomes Request::principal. Default: off.
  TlsServerOptions tls;
  // Derives the principal (as HttpServerOptions::authenticate);
  // kUnauthenticated / kPermissionDenied refuse the call. Default: none.
  std::function<absl::StatusOr<std::string>(const Request&)> authenticate;
  // Told about every answered call (metrics). Not owned. Default: none.
  RequestObserver* observer = nullptr;
};

class GrpcServer {
 public:
  virtual ~GrpcServer() = default;
  // The bound port (the real one when options.port was 0).
  virtual uint16_t port() const = 0;
  // A planned release of `local_address` (numeric): its listener's
  // connections get GOAWAY, running calls finish (up to 5 s), a fresh
  // listener takes its place. Returns how many listeners of that address are
  // still shutting down; call it again until it returns 0 (the first call
  // starts the shutdown; 0 at once for an address without a listener of its
  // own). Thread-safe.
  virtual size_t CloseConnections(std::string_view local_address) = 0;
  // Stops accepting, lets running calls finish (up to 5 s), joins the
  // threads. Idempotent; the destructor calls it.
  virtual void Stop() = 0;
};

// Binds, listens and starts serving. `pipeline` must outlive the server.
// Errors: kInvalidArgument (bad options), kUnavailable (cannot bind).
[[nodiscard]] absl::StatusOr<std::unique_ptr<GrpcServer>> StartGrpcServer(
    const GrpcServerOptions& options, GrpcRouter router,
    RequestPipeline& pipeline);

// The request id in gRPC metadata (names in lower case; see above).
// Errors: kInvalidArgument naming the problem.
[[nodiscard]] absl::StatusOr<RequestId> RequestIdFromMetadata(
    const std::map<std::string, std::string, std::less<>>& metadata);

// The `baton-error` name of a pipeline/store error (see the table above).
std::string GrpcErrorName(const absl::Status& status);

// --- Named errors that are stored and replayed like any reply ---------------
// A handler's non-OK Reply is answered with its code and its body as the
// status message. A Reply made by GrpcErrorReply() says more: it is answered
// with `code`, `message` as the status message, trailing metadata
// `baton-error: <name>` (as the framework's own errors are), and
// `status_details` as `grpc-status-details-bin` (the standard rich error
// model: a serialized google.rpc.Status, which gRPC clients in every language
// decode). Like any Reply it is committed with the handler's writes and a
// retry gets it again, byte for byte. framework/grpc/typed.h builds these.
struct GrpcError {
  // Not kOk (GrpcErrorReply answers kOk as kUnknown).
  absl::StatusCode code = absl::StatusCode::kUnknown;
  // `baton-error`: 1..64 characters of [a-z0-9_.-]; anything else (or
  // empty) is replaced by the code's name, e.g. "failed_precondition".
  std::string name;
  std::string message;
  // A serialized google.rpc.Status, or empty (no details trailer).
  std::string status_details;

  friend bool operator==(const GrpcError&, const GrpcError&) = default;
};

// The Reply that carries `error` (content type kGrpcErrorContentType; the
// name is normalized as said above).
Reply GrpcErrorReply(GrpcError error);
// The error a GrpcErrorReply() carries; nullopt for any other Reply
// (including a malformed body under that content type).
std::optional<GrpcError> ParseGrpcErrorReply(const Reply& reply);
inline constexpr char kGrpcErrorContentType[] =
    "application/x-baton-grpc-error";

}  // namespace baton::framework

#endif  // BATON_FRAMEWORK_GRPC_GRPC_SERVER_H_

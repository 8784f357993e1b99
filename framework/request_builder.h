// From what a front end received to what the request pipeline runs: the one
// place that builds a Request and its RequestId, for the HTTP front end
// (framework/http_server.h), the gRPC front end (framework/grpc/) and the
// test kit (framework/testing/harness.h), which thereby runs a handler on
// exactly the Request a server would give it, without sockets.
//
//   HTTP   BuildHttpRequest(router, {method, target, headers, body, local,
//                                    principal, authenticate})
//          -> RoutedRequest{handler, id, request}  (route matched, params
//             decoded, operation "METHOD /pattern", metadata lower-cased,
//             id from the id headers, principal authenticated)
//          or HttpRequestError{404 | 405 | 400 | 401 | 403, code, message,
//                              headers (Allow, WWW-Authenticate)}
//   gRPC   RequestIdFromGrpcMetadata(metadata) -> RequestId
//   both   ParseRequestId(fields, form): the one parser of the id fields
//          (Idempotency-Key, or Baton-Client-Id + Baton-Seq [+ Baton-Ack])
//   errors ErrorName(status), HttpStatusForError(status): what the front
//          ends answer for an error of the pipeline or the store
//
// Pure functions, no I/O; thread-safe.
#ifndef BATON_FRAMEWORK_REQUEST_BUILDER_H_
#define BATON_FRAMEWORK_REQUEST_BUILDER_H_

#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "framework/handler.h"
#include "framework/http_server.h"
#include "framework/pipeline.h"

namespace baton::framework {

// --- Request ids ------------------------------------------------------------

// The id fields of one request as its front end found them; nullopt: absent.
struct RequestIdFields {
  std::optional<std::string_view> idempotency_key;  // Idempotency-Key
  std::optional<std::string_view> client_id;        // Baton-Client-Id
  std::optional<std::string_view> seq;              // Baton-Seq
  std::optional<std::string_view> ack;              // Baton-Ack
};

// Where the fields came from. Both forms follow one rule -- an idempotency
// key, or a client id with a seq (and optionally an ack), never both, none
// at all -> RequestId::None() -- and differ in these details, kept so that
// neither front end's answers change:
//                      kHttpHeaders                 kGrpcMetadata
//   idempotency key    sf-string or bare token      the value as is, non-empty
//                      (ParseIdempotencyKey)
//   seq, ack           absl::SimpleAtoi (blanks     decimal digits only
//                      and '+' accepted)
//   value sizes        (the key: 1..255 parsed)     every value <= 255 bytes
//   key + ack alone    the ack is ignored           refused
//   client id          surrounding blanks stripped  as is
//   messages           name headers (Baton-Seq)     name metadata (baton-seq)
// Client ids and keys are checked further by the pipeline
// (RequestPipeline::Execute: kInvalidArgument).
enum class RequestIdForm { kHttpHeaders, kGrpcMetadata };

// Errors: kInvalidArgument naming the field (the front ends answer it as
// HTTP 400 / gRPC INVALID_ARGUMENT, both with code "bad_request_id").
[[nodiscard]] absl::StatusOr<RequestId> ParseRequestId(
    const RequestIdFields& fields, RequestIdForm form);

// One header as received; `name` in any case.
struct HttpHeader {
  std::string_view name;
  std::string_view value;
};

// The id in HTTP headers (first occurrence of each name, case-insensitive).
[[nodiscard]] absl::StatusOr<RequestId> RequestIdFromHttpHeaders(
    std::span<const HttpHeader> headers);

// The id in gRPC metadata (names in lower case, as Request::metadata).
[[nodiscard]] absl::StatusOr<RequestId> RequestIdFromGrpcMetadata(
    const std::map<std::string, std::string, std::less<>>& metadata);

// Adds one header / metadata entry to Request::metadata: the name lower-
// cased; a repeated name's values joined with ",".
void AddMetadata(std::string_view name, std::string_view value,
                 std::map<std::string, std::string, std::less<>>* metadata);

// --- HTTP requests ------------------------------------------------------------

// Derives a request's principal, or refuses it: kUnauthenticated (401) or
// kPermissionDenied (403) (HttpServerOptions::authenticate).
using HttpAuthenticator =
    std::function<absl::StatusOr<std::string>(const Request&)>;

// What the HTTP front end received, parsed.
struct HttpRequestParts {
  std::string_view method;  // "POST"
  std::string_view target;  // "/kv/a/incr?x=1": path and query
  std::span<const HttpHeader> headers;  // In arrival order.
  std::string body;
  std::string local_address;  // Request::local_address.
  // Request::principal as the connection gives it (a TLS client
  // certificate's subject); empty: none.
  std::string principal;
  // Runs on the routed and identified Request (principal preset as above)
  // and returns its principal. Not owned; nullptr: none.
  const HttpAuthenticator* authenticate = nullptr;
};

// A request routed and identified, ready for RequestPipeline::Execute.
struct RoutedRequest {
  Handler* handler = nullptr;  // Owned by the Router.
  RequestId id;
  Request request;
};

// A request refused before the pipeline, as the HTTP front end answers it
// (a JSON error body {"error":{"status","code","message"}}).
struct HttpRequestError {
  // 404 no route, 405 wrong method, 400 bad id, 401/403 refused by the
  // authenticator.
  int status = 400;
  // "not_found", "method_not_allowed", "bad_request_id", "unauthenticated",
  // "permission_denied".
  std::string code;
  std::string message;
  // Response headers that go with it: 405 `Allow: GET, PUT`, 401
  // `WWW-Authenticate: Bearer`.
  std::vector<std::pair<std::string, std::string>> headers;
  // The operation to report it under (metrics): "unrouted" for 404 and 405,
  // else "METHOD /pattern".
  std::string operation;
};

// Routes, identifies and authenticates one HTTP request; moves parts.body
// into the Request. Errors are checked in this order: no route (404), wrong
// method (405), bad id headers (400), refused by parts.authenticate (401,
// 403).
std::variant<RoutedRequest, HttpRequestError> BuildHttpRequest(
    const Router& router, HttpRequestParts parts);

// --- Errors -------------------------------------------------------------------

// The wire name of an error returned by RequestPipeline::Execute:
// "idempotency_key_reused", "request_in_progress",
// "request_already_acknowledged", "outcome_unknown", "fence_not_ready",
// "deposed" for the PipelineErrors, else the status code's name in lower
// snake case ("unavailable", "aborted", ...). HTTP sends it as the error
// body's "code", gRPC as trailing metadata `baton-error`.
std::string ErrorName(const absl::Status& status);

// The HTTP status for such an error: kKeyReused 422, kInProgress 409,
// kAlreadyAcknowledged 410, kOutcomeUnknown 500, kFenceNotReady and
// kDeposed 503, else HttpStatusForCode(status.code()).
int HttpStatusForError(const absl::Status& status);

}  // namespace baton::framework

#endif  // BATON_FRAMEWORK_REQUEST_BUILDER_H_

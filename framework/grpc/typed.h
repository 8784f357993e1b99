// Typed unary gRPC methods: a handler takes a parsed protobuf request and
// returns a protobuf response; the framework parses, serializes, maps status
// codes and stores the serialized response for replays.
//
//   absl::StatusOr<Int64Value> Incr(const StringValue& name,
//                                   const RequestContext& ctx,
//                                   Transaction& txn);
//   service.Method("/counter.v1.Counter/Incr",
//                  MakeTypedHandler<StringValue, Int64Value>(Incr));
//   // or, on a bare GrpcRouter:
//   absl::Status s = AddTypedMethod<StringValue, Int64Value>(
//       router, "/counter.v1.Counter/Incr", Incr);
//
// What the framework does around the handler (docs/framework.md, "Typed gRPC
// methods"):
//   - Request bytes that do not parse as `Req` -> INVALID_ARGUMENT "malformed
//     <type> message", `baton-error: invalid_argument`; the handler does not
//     run, nothing is committed. Messages larger than
//     GrpcServerOptions::max_message_bytes (default 1 MiB) are refused by
//     gRPC before that (RESOURCE_EXHAUSTED); protobuf bounds nesting (100).
//     The request is fingerprinted by its bytes: a retry must resend the same
//     bytes (every gRPC library does; one id with other bytes is
//     FAILED_PRECONDITION idempotency_key_reused).
//   - The handler returns absl::StatusOr<Resp> or
//     absl::StatusOr<TypedReply<Resp>>:
//       a Resp                 OK: its serialization is the response; with
//                              writes it is committed with them and a retry
//                              gets the same bytes (`idempotent-replayed`);
//       a non-OK Status        the transaction is discarded (nothing written,
//                              nothing recorded, as handler.h says) and the
//                              call ends with that code and message,
//                              `baton-error: <code name>`; a retry runs the
//                              handler again;
//       TypedReply::Error(...) an application error that is an answer: it is
//                              committed with the handler's writes and
//                              replayed to retries, byte for byte, and sent
//                              with its code, message, `baton-error: <name>`
//                              and, with WithDetail(), google.rpc.Status
//                              details (`grpc-status-details-bin`).
//   - A handler that throws: INTERNAL "handler failed", nothing committed
//     (the pipeline catches it).
//
// Thread safety: a typed handler is a framework::Handler and is called as one
// (concurrently, possibly several times per request: handler.h).
#ifndef BATON_FRAMEWORK_GRPC_TYPED_H_
#define BATON_FRAMEWORK_GRPC_TYPED_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "framework/grpc/grpc_server.h"
#include "framework/handler.h"
#include "framework/pipeline.h"
#include "framework/transaction.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/message.h"
#include "google/protobuf/message_lite.h"

namespace baton::framework {

// Content type of a typed method's stored response (the serialized message).
inline constexpr char kGrpcMessageContentType[] = "application/grpc";

// What a typed handler knows of its call besides the message. A view of the
// framework's Request: valid during the handler call only.
class RequestContext {
 public:
  explicit RequestContext(const Request& request);

  // The full method name, e.g. "/baton.kv.v1.Kv/Get".
  const std::string& method() const { return request_.operation; }
  // How the call is identified for exactly-once (framework/pipeline.h):
  // RequestId::Kind::kClientSeq (baton's retrying client: client_id, seq),
  // kIdempotencyKey (idempotency_key), or kNone: no id, so the call is
  // executed once per arrival and a retry may execute it again (a handler
  // may refuse such calls, e.g. FAILED_PRECONDITION).
  const RequestId& id() const { return id_; }
  bool has_id() const { return id_.kind != RequestId::Kind::kNone; }
  // The authenticated principal (TLS client certificate subject or the
  // service's authentication hook); empty: unauthenticated.
  const std::string& principal() const { return request_.principal; }
  // The address the client dialled (host of the call's :authority); it
  // selects the take-over slot whose fence the commit carries.
  const std::string& local_address() const { return request_.local_address; }
  // A metadata value by its lower-case name; "" when absent (repeated
  // entries are joined with ',').
  std::string_view metadata(std::string_view name) const;
  const std::map<std::string, std::string, std::less<>>& all_metadata() const {
    return request_.metadata;
  }
  // The framework's request (body = the request bytes).
  const Request& request() const { return request_; }

 private:
  const Request& request_;
  RequestId id_;
};

// A typed handler's answer: a response message, or an application error that
// is committed and replayed like a response (see the file comment).
template <typename Resp>
class TypedReply {
 public:
  // The response (implicit, so a handler can `return TypedReply<R>(r)`).
  TypedReply(Resp response)  // NOLINT(google-explicit-constructor)
      : response_(std::move(response)) {}

  // An error answer with `code` (not kOk; kOk is answered kUnknown),
  // `message`, and `name` for the `baton-error` trailer (1..64 of
  // [a-z0-9_.-], e.g. "insufficient_funds"; default: the code's name).
  static TypedReply Error(absl::StatusCode code, std::string message,
                          std::string name = {}) {
    return TypedReply(code, std::move(message), std::move(name));
  }

  // Adds `detail` (packed in a google.protobuf.Any) to the error's
  // google.rpc.Status details. Ignored on a response.
  TypedReply& WithDetail(const google::protobuf::Message& detail) & {
    if (!response_) details_.emplace_back().PackFrom(detail);
    return *this;
  }
  TypedReply&& WithDetail(const google::protobuf::Message& detail) && {
    return std::move(WithDetail(detail));
  }

  bool ok() const { return response_.has_value(); }
  // The response; nullptr for an error.
  const Resp* response() const { return response_ ? &*response_ : nullptr; }
  absl::StatusCode code() const {
    return response_ ? absl::StatusCode::kOk : code_;
  }
  const std::string& message() const { return message_; }
  const std::string& name() const { return name_; }
  const std::vector<google::protobuf::Any>& details() const { return details_; }

 private:
  TypedReply(absl::StatusCode code, std::string message, std::string name)
      : code_(code), message_(std::move(message)), name_(std::move(name)) {}

  std::optional<Resp> response_;
  absl::StatusCode code_ = absl::StatusCode::kOk;
  std::string message_;
  std::string name_;
  std::vector<google::protobuf::Any> details_;
};

// The handler forms AddTypedMethod and MakeTypedHandler accept.
template <typename Req, typename Resp>
using TypedHandlerFunction = std::function<absl::StatusOr<Resp>(
    const Req&, const RequestContext&, Transaction&)>;
template <typename Req, typename Resp>
using TypedReplyHandlerFunction = std::function<absl::StatusOr<TypedReply<Resp>>(
    const Req&, const RequestContext&, Transaction&)>;

// A google.rpc.Status (code, message, details), as sent in
// `grpc-status-details-bin`.
struct RpcStatus {
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string message;
  std::vector<google::protobuf::Any> details;
};
// Serializes `status` as a google.rpc.Status message.
std::string SerializeRpcStatus(const RpcStatus& status);
// Parses a google.rpc.Status message, e.g. what a client got as
// grpc::Status::error_details(). Errors: kInvalidArgument (malformed).
[[nodiscard]] absl::StatusOr<RpcStatus> ParseRpcStatus(std::string_view bytes);

namespace internal {

// Parses the request bytes into `message`; kInvalidArgument "malformed <type>
// message" when they are not one.
[[nodiscard]] absl::Status ParseRequestMessage(
    std::string_view bytes, google::protobuf::MessageLite* message);
// The Reply of a response message (kInternal if it cannot be serialized).
[[nodiscard]] absl::StatusOr<Reply> ResponseReply(
    const google::protobuf::MessageLite& response);
// The Reply of an error answer (GrpcErrorReply with the details encoded).
Reply ErrorReply(absl::StatusCode code, const std::string& message,
                 const std::string& name,
                 const std::vector<google::protobuf::Any>& details);

template <typename T>
struct IsTypedReply : std::false_type {};
template <typename T>
struct IsTypedReply<TypedReply<T>> : std::true_type {};

template <typename Req, typename Resp, typename Fn>
class TypedHandler : public Handler {
 public:
  explicit TypedHandler(Fn fn) : fn_(std::move(fn)) {}

  absl::StatusOr<Reply> Handle(const Request& request,
                               Transaction& txn) override {
    Req message;
    if (absl::Status s = ParseRequestMessage(request.body, &message); !s.ok()) {
      return s;
    }
    const RequestContext context(request);
    auto result = fn_(std::as_const(message), context, txn);
    if (!result.ok()) return result.status();
    using Value = std::decay_t<decltype(*result)>;
    if constexpr (IsTypedReply<Value>::value) {
      static_assert(std::is_same_v<Value, TypedReply<Resp>>,
                    "the handler's TypedReply must be of the method's Resp");
      if (const Resp* r = result->response()) return ResponseReply(*r);
      return ErrorReply(result->code(), result->message(), result->name(),
                        result->details());
    } else {
      static_assert(std::is_same_v<Value, Resp>,
                    "the handler must return absl::StatusOr<Resp> or "
                    "absl::StatusOr<TypedReply<Resp>>");
      return ResponseReply(*result);
    }
  }

 private:
  Fn fn_;
};

}  // namespace internal

// A Handler for a unary method taking `Req` and answering `Resp` (protobuf
// message types). `fn` is callable as
//   (const Req&, const RequestContext&, Transaction&)
//       -> absl::StatusOr<Resp> or absl::StatusOr<TypedReply<Resp>>.
template <typename Req, typename Resp, typename Fn>
std::shared_ptr<Handler> MakeTypedHandler(Fn fn) {
  static_assert(std::is_base_of_v<google::protobuf::MessageLite, Req> &&
                    std::is_base_of_v<google::protobuf::MessageLite, Resp>,
                "Req and Resp must be protobuf messages");
  static_assert(
      std::is_invocable_v<Fn&, const Req&, const RequestContext&, Transaction&>,
      "the handler must be callable as (const Req&, const RequestContext&, "
      "Transaction&)");
  return std::make_shared<internal::TypedHandler<Req, Resp, Fn>>(std::move(fn));
}

// Adds `full_method` ("/package.Service/Method") to `router` as a typed
// method (MakeTypedHandler). Errors: those of GrpcRouter::Add.
template <typename Req, typename Resp, typename Fn>
[[nodiscard]] absl::Status AddTypedMethod(GrpcRouter& router,
                                          std::string_view full_method, Fn fn) {
  return router.Add(full_method, MakeTypedHandler<Req, Resp>(std::move(fn)));
}

}  // namespace baton::framework

#endif  // BATON_FRAMEWORK_GRPC_TYPED_H_

// The request-handler API: what a service developer writes.
//
// A handler gets a Request and a Transaction over the inter-request state and
// returns a Reply. The framework (framework/pipeline.h) makes the outcome
// exactly-once: the handler's writes and its reply are committed atomically
// and durably before the reply is sent, and a retry of the same request gets
// the saved reply instead of a second execution. The API does not depend on
// the front end (HTTP/1.1 and gRPC, framework/http_server.h and
// framework/grpc/grpc_server.h).
//
//   class Hello : public baton::framework::Handler {
//    public:
//     absl::StatusOr<Reply> Handle(const Request& req, Transaction& txn) override {
//       auto n = txn.Get("hits");
//       if (!n.ok()) return n.status();
//       int hits = n->present() ? std::stoi(n->value) : 0;
//       if (auto s = txn.Put("hits", std::to_string(hits + 1)); !s.ok()) return s;
//       return Reply::Json(absl::StatusCode::kOk, "{\"hits\":" + std::to_string(hits + 1) + "}");
//     }
//   };
//
// Thread safety: a handler is called concurrently from many worker threads,
// and may be called several times for one request (when its reads conflicted
// with a concurrent commit; only the committed run's reply is sent).
#ifndef BATON_FRAMEWORK_HANDLER_H_
#define BATON_FRAMEWORK_HANDLER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/strings.h"  // spdlog/fmt formatting of absl types, AV()/SV()
#include "framework/transaction.h"

namespace baton::framework {

struct Request {
  // What is called, front-end neutral: HTTP uses "<METHOD> <route pattern>",
  // e.g. "POST /kv/{key}/incr"; gRPC the full method name.
  std::string operation;
  // The concrete target, e.g. "/kv/a/incr" (with the query string, if any).
  std::string path;
  // Route parameters, e.g. {"key": "a"} (percent-decoded).
  std::map<std::string, std::string, std::less<>> params;
  std::string body;
  // Request metadata (HTTP headers, gRPC metadata); names in lower case.
  std::map<std::string, std::string, std::less<>> metadata;
  // The local (server-side) address the request arrived on, numeric, e.g.
  // "10.78.0.100" (HTTP: the connection's local endpoint; gRPC: the host of
  // the call's :authority). Selects the take-over slot whose fence the commit
  // carries (framework/fence.h); empty: not fenced.
  std::string local_address;
  // The authenticated principal the front end derived (a TLS client
  // certificate's subject, or what the service's authentication hook
  // returned); empty when the request is unauthenticated. Any bytes, at most
  // RequestPipeline::kMaxPrincipalBytes (1024). The pipeline scopes request
  // ids, completion records, watermarks and acknowledgements by it
  // (framework/pipeline.h): one principal never sees another's stored reply,
  // even for the same id. Without authentication ids are global (whoever
  // knows a client id or an idempotency key shares its records).
  std::string principal;

  // The parameter `name`, or "" when absent.
  std::string_view Param(std::string_view name) const {
    auto it = params.find(name);
    return it == params.end() ? std::string_view() : std::string_view(it->second);
  }
};

struct Reply {
  // gRPC's codes; the HTTP front end maps them to HTTP statuses
  // (OK 200, kInvalidArgument 400, kNotFound 404, kFailedPrecondition 412,
  // kAlreadyExists/kAborted 409, ...; see docs/framework.md).
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string body;
  std::string content_type = "application/json";

  static Reply Json(absl::StatusCode code, std::string body) {
    return Reply{code, std::move(body), "application/json"};
  }
  static Reply Text(absl::StatusCode code, std::string body) {
    return Reply{code, std::move(body), "text/plain; charset=utf-8"};
  }

  friend bool operator==(const Reply&, const Reply&) = default;
};

class Handler {
 public:
  virtual ~Handler() = default;

  // Runs the request on `txn`. A returned Reply (whatever its code) is the
  // answer: if the handler wrote anything, it is committed together with the
  // writes and replayed to retries. A returned non-OK Status discards the
  // transaction (nothing is written, nothing is recorded) and is answered as
  // an error (e.g. kUnavailable from the store: 503, retry later).
  [[nodiscard]] virtual absl::StatusOr<Reply> Handle(const Request& request,
                                                     Transaction& txn) = 0;
};

using HandlerFunction =
    std::function<absl::StatusOr<Reply>(const Request&, Transaction&)>;

// A handler that calls `fn`.
std::shared_ptr<Handler> MakeHandler(HandlerFunction fn);

}  // namespace baton::framework

#endif  // BATON_FRAMEWORK_HANDLER_H_

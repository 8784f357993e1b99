// JSON routes in a few lines: the framework parses the request body (bounded:
// framework/json.h), the handler gets the parsed value and returns a JSON
// value with a status code, and the framework prints it.
//
//   // POST /counters/{name}/incr  {"by": 2}  ->  {"name": "a", "value": 7}
//   absl::StatusOr<JsonReply> Incr(const nlohmann::json& body,
//                                  const Request& req, Transaction& txn) {
//     if (!body.value("by", nlohmann::json(1)).is_number_integer()) {
//       return JsonReply::Error(absl::StatusCode::kInvalidArgument,
//                               "\"by\" must be an integer");
//     }
//     ...
//     return JsonReply::Ok({{"name", req.Param("name")}, {"value", n}});
//   }
//   service.Route("POST", "/counters/{name}/incr", MakeJsonHandler(Incr));
//
// A body that is not JSON, is nested too deep or is too long, or is not an
// object when one is required, is answered 400 with
// {"error":{"code":"invalid_argument","message":"request body: ..."}} without
// running the handler. The handler's JsonReply is a Reply like any other
// (handler.h): whatever its code, it is committed with the handler's writes
// and replayed to retries; a returned non-OK Status discards the
// transaction.
//
// Thread safety: as handler.h (the function is called concurrently).
#ifndef BATON_FRAMEWORK_HTTP_JSON_H_
#define BATON_FRAMEWORK_HTTP_JSON_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "framework/handler.h"
#include "framework/json.h"
#include "framework/transaction.h"
#include "nlohmann/json.hpp"

namespace baton::framework {

// A JSON answer: a status code (HTTP status through HttpStatusForCode: kOk
// 200, kInvalidArgument 400, kNotFound 404, ...) and a body.
struct JsonReply {
  absl::StatusCode code = absl::StatusCode::kOk;
  nlohmann::json body;

  static JsonReply Ok(nlohmann::json body) {
    return {absl::StatusCode::kOk, std::move(body)};
  }
  // {"error":{"code":<name>,"message":<message>}}, plus the members of
  // `extra` (an object, or null for none) at the top level. `name` defaults
  // to the code's name in lower case ("not_found").
  static JsonReply Error(absl::StatusCode code, std::string_view message,
                         std::string name = {},
                         nlohmann::json extra = nullptr);
};

// The Reply of a JsonReply (body printed compactly, application/json).
Reply ToReply(const JsonReply& reply);

struct JsonRouteOptions {
  // Size and nesting bounds of the body. Default: 1 MiB, depth 64.
  JsonLimits limits;
  // Refuse bodies that are not a JSON object. Default: true.
  bool require_object = true;
  // An empty body is the empty object {} instead of an error. Default: false.
  bool allow_empty = false;
};

using JsonHandlerFunction = std::function<absl::StatusOr<JsonReply>(
    const nlohmann::json& body, const Request& request, Transaction& txn)>;

// A Handler that parses the body per `options` and calls `fn`.
std::shared_ptr<Handler> MakeJsonHandler(JsonHandlerFunction fn,
                                         JsonRouteOptions options = {});

}  // namespace baton::framework

#endif  // BATON_FRAMEWORK_HTTP_JSON_H_

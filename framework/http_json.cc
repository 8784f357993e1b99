#include "framework/http_json.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace baton::framework {
namespace {

class JsonHandler : public Handler {
 public:
  JsonHandler(JsonHandlerFunction fn, JsonRouteOptions options)
      : fn_(std::move(fn)), options_(std::move(options)) {}

  absl::StatusOr<Reply> Handle(const Request& request,
                               Transaction& txn) override {
    nlohmann::json body = nlohmann::json::object();
    if (!(options_.allow_empty && request.body.empty())) {
      absl::StatusOr<nlohmann::json> parsed =
          ParseJson(request.body, options_.limits);
      if (!parsed.ok()) {
        return ToReply(JsonReply::Error(
            absl::StatusCode::kInvalidArgument,
            absl::StrCat("request body: ", parsed.status().message())));
      }
      if (options_.require_object && !parsed->is_object()) {
        return ToReply(JsonReply::Error(absl::StatusCode::kInvalidArgument,
                                        "request body must be a JSON object"));
      }
      body = *std::move(parsed);
    }
    absl::StatusOr<JsonReply> reply = fn_(body, request, txn);
    if (!reply.ok()) return reply.status();
    return ToReply(*reply);
  }

 private:
  const JsonHandlerFunction fn_;
  const JsonRouteOptions options_;
};

}  // namespace

JsonReply JsonReply::Error(absl::StatusCode code, std::string_view message,
                           std::string name, nlohmann::json extra) {
  if (name.empty()) name = absl::AsciiStrToLower(absl::StatusCodeToString(code));
  nlohmann::json body = {{"error", {{"code", name}, {"message", message}}}};
  if (extra.is_object()) {
    for (auto& [k, v] : extra.items()) body[k] = std::move(v);
  }
  return {code, std::move(body)};
}

Reply ToReply(const JsonReply& reply) {
  return Reply::Json(reply.code, DumpJson(reply.body));
}

std::shared_ptr<Handler> MakeJsonHandler(JsonHandlerFunction fn,
                                         JsonRouteOptions options) {
  return std::make_shared<JsonHandler>(std::move(fn), std::move(options));
}

}  // namespace baton::framework

#include "samples/kvservice/kv_grpc.h"

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "framework/http_server.h"
#include "framework/json.h"
#include "nlohmann/json.hpp"
#include "samples/kvservice/kv_service.h"
#include "samples/kvservice/proto/kv.pb.h"

namespace baton::kvservice {
namespace {

using framework::Reply;
using framework::Request;
using framework::Transaction;
using json = nlohmann::json;

// What a gRPC method becomes: the HTTP route's method and the JSON body.
struct HttpForm {
  std::string method;  // "PUT"
  std::string suffix;  // "" or "/incr"
  std::string key;
  json body;           // null: no body
};

// Turns a request message into its HTTP form, or an error reply.
using Decoder = std::function<absl::StatusOr<HttpForm>(const std::string&)>;

absl::StatusOr<json> ParseValue(const std::string& text, const char* field) {
  // One level less than the HTTP body limit: the value is wrapped in the
  // route's {"value": ...} body (framework/json.h says why depth matters).
  framework::JsonLimits limits;
  limits.max_depth -= 1;
  absl::StatusOr<json> v = framework::ParseJson(text, limits);
  if (!v.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be a JSON text: ", v.status().message()));
  }
  return v;
}

Reply BadRequest(std::string message) {
  return Reply::Text(absl::StatusCode::kInvalidArgument,
                     json{{"error", {{"code", "invalid_argument"},
                                     {"message", std::move(message)}}}}
                         .dump());
}

// Runs the HTTP route's handler for a decoded gRPC request.
class GrpcAdapter : public framework::Handler {
 public:
  GrpcAdapter(std::shared_ptr<framework::Router> routes, Decoder decode)
      : routes_(std::move(routes)), decode_(std::move(decode)) {}

  absl::StatusOr<Reply> Handle(const Request& req, Transaction& txn) override {
    absl::StatusOr<HttpForm> form = decode_(req.body);
    if (!form.ok()) return BadRequest(std::string(form.status().message()));
    if (form->key.empty()) return BadRequest("key must not be empty");
    // The route is found with a placeholder key: the real key is passed as
    // the parameter, so it needs no percent-encoding.
    framework::Router::Match m =
        routes_->Find(form->method, absl::StrCat("/kv/k", form->suffix));
    if (m.result != framework::Router::Match::Result::kFound) {
      return absl::InternalError("kv route missing");
    }
    Request inner;
    inner.operation = req.operation;
    inner.path = req.path;
    inner.params = {{"key", form->key}};
    inner.body = form->body.is_null() ? std::string() : framework::DumpJson(form->body);
    inner.metadata = req.metadata;
    absl::StatusOr<Reply> r = m.handler->Handle(inner, txn);
    if (!r.ok() || r->code != absl::StatusCode::kOk) return r;
    json j = json::parse(r->body, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) return absl::InternalError("kv reply is not JSON");
    baton::kv::v1::KvReply out;
    out.set_key(j.value("key", ""));
    if (j.contains("value")) out.set_value_json(j["value"].dump());
    out.set_version(j.value("version", int64_t{0}));
    out.set_deleted(j.value("deleted", false));
    Reply reply;
    reply.code = absl::StatusCode::kOk;
    reply.content_type = "application/grpc";
    out.SerializeToString(&reply.body);
    return reply;
  }

 private:
  std::shared_ptr<framework::Router> routes_;
  Decoder decode_;
};

template <typename M>
absl::StatusOr<M> ParseMessage(const std::string& bytes) {
  M m;
  if (!m.ParseFromString(bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed ", M::descriptor()->name()));
  }
  return m;
}

}  // namespace

absl::Status RegisterKvGrpcMethods(framework::GrpcRouter& router) {
  auto routes = std::make_shared<framework::Router>();
  if (absl::Status s = RegisterKvRoutes(*routes); !s.ok()) return s;
  namespace pb = baton::kv::v1;
  const std::pair<const char*, Decoder> methods[] = {
      {kGrpcGet,
       [](const std::string& b) -> absl::StatusOr<HttpForm> {
         auto m = ParseMessage<pb::GetRequest>(b);
         if (!m.ok()) return m.status();
         return HttpForm{"GET", "", m->key(), nullptr};
       }},
      {kGrpcPut,
       [](const std::string& b) -> absl::StatusOr<HttpForm> {
         auto m = ParseMessage<pb::PutRequest>(b);
         if (!m.ok()) return m.status();
         auto v = ParseValue(m->value_json(), "value_json");
         if (!v.ok()) return v.status();
         return HttpForm{"PUT", "", m->key(), json{{"value", *v}}};
       }},
      {kGrpcDelete,
       [](const std::string& b) -> absl::StatusOr<HttpForm> {
         auto m = ParseMessage<pb::DeleteRequest>(b);
         if (!m.ok()) return m.status();
         return HttpForm{"DELETE", "", m->key(), nullptr};
       }},
      {kGrpcCas,
       [](const std::string& b) -> absl::StatusOr<HttpForm> {
         auto m = ParseMessage<pb::CasRequest>(b);
         if (!m.ok()) return m.status();
         auto e = ParseValue(m->expected_json(), "expected_json");
         if (!e.ok()) return e.status();
         auto v = ParseValue(m->value_json(), "value_json");
         if (!v.ok()) return v.status();
         return HttpForm{"POST", "/cas", m->key(),
                         json{{"expected", *e}, {"value", *v}}};
       }},
      {kGrpcIncr,
       [](const std::string& b) -> absl::StatusOr<HttpForm> {
         auto m = ParseMessage<pb::IncrRequest>(b);
         if (!m.ok()) return m.status();
         return HttpForm{"POST", "/incr", m->key(),
                         json{{"by", m->has_by() ? m->by() : int64_t{1}}}};
       }},
      {kGrpcAppend,
       [](const std::string& b) -> absl::StatusOr<HttpForm> {
         auto m = ParseMessage<pb::AppendRequest>(b);
         if (!m.ok()) return m.status();
         return HttpForm{"POST", "/append", m->key(),
                         json{{"value", m->value()}}};
       }},
  };
  for (const auto& [name, decode] : methods) {
    if (absl::Status s = router.Add(
            name, std::make_shared<GrpcAdapter>(routes, decode));
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace baton::kvservice

#include "samples/kvservice/kv_grpc.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "framework/grpc/typed.h"
#include "framework/json.h"
#include "nlohmann/json.hpp"
#include "samples/kvservice/kv_service.h"
#include "samples/kvservice/proto/kv.pb.h"

namespace baton::kvservice {
namespace {

namespace pb = baton::kv::v1;
using framework::RequestContext;
using framework::Transaction;
using json = nlohmann::json;
using Answer = framework::TypedReply<pb::KvReply>;

Answer Refusal(const KvError& e, std::string_view key) {
  Answer a = Answer::Error(e.code, framework::DumpJson(KvErrorJson(e)),
                           KvErrorName(e.code));
  if (e.current) {
    pb::KvReply current;
    current.set_key(std::string(key));
    current.set_value_json(framework::DumpJson(*e.current));
    a.WithDetail(current);
  }
  return a;
}

Answer BadRequest(std::string message) {
  return Refusal(KvError{absl::StatusCode::kInvalidArgument, std::move(message),
                         std::nullopt},
                 "");
}

absl::StatusOr<Answer> ToAnswer(absl::StatusOr<KvOutcome> outcome,
                                std::string_view key) {
  if (!outcome.ok()) return outcome.status();
  if (const KvError* e = std::get_if<KvError>(&*outcome)) {
    return Refusal(*e, key);
  }
  const KvEntry& entry = std::get<KvEntry>(*outcome);
  pb::KvReply reply;
  reply.set_key(entry.key);
  if (!entry.deleted) reply.set_value_json(framework::DumpJson(entry.value));
  reply.set_version(entry.version);
  reply.set_deleted(entry.deleted);
  return Answer(std::move(reply));
}

// A value_json/expected_json field as JSON, one level less deep than the
// HTTP body limit: over HTTP the value is wrapped in the route's
// {"value": ...} body (framework/json.h says why depth matters).
absl::StatusOr<json> ParseValue(const std::string& text, const char* field) {
  framework::JsonLimits limits;
  limits.max_depth -= 1;
  absl::StatusOr<json> v = framework::ParseJson(text, limits);
  if (!v.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be a JSON text: ", v.status().message()));
  }
  return v;
}

// Runs `op` on a non-empty key (an empty one cannot be addressed over HTTP).
template <typename Op>
absl::StatusOr<Answer> OnKey(const std::string& key, Op op) {
  if (key.empty()) return BadRequest("key must not be empty");
  return ToAnswer(op(), key);
}

absl::StatusOr<Answer> Get(const pb::GetRequest& m, const RequestContext&,
                           Transaction& txn) {
  return OnKey(m.key(), [&] { return KvGet(txn, m.key()); });
}

absl::StatusOr<Answer> Put(const pb::PutRequest& m, const RequestContext&,
                           Transaction& txn) {
  absl::StatusOr<json> v = ParseValue(m.value_json(), "value_json");
  if (!v.ok()) return BadRequest(std::string(v.status().message()));
  return OnKey(m.key(), [&] { return KvPut(txn, m.key(), *v); });
}

absl::StatusOr<Answer> Delete(const pb::DeleteRequest& m, const RequestContext&,
                              Transaction& txn) {
  return OnKey(m.key(), [&] { return KvDelete(txn, m.key()); });
}

absl::StatusOr<Answer> Cas(const pb::CasRequest& m, const RequestContext&,
                           Transaction& txn) {
  absl::StatusOr<json> e = ParseValue(m.expected_json(), "expected_json");
  if (!e.ok()) return BadRequest(std::string(e.status().message()));
  absl::StatusOr<json> v = ParseValue(m.value_json(), "value_json");
  if (!v.ok()) return BadRequest(std::string(v.status().message()));
  return OnKey(m.key(), [&] { return KvCas(txn, m.key(), *e, *v); });
}

absl::StatusOr<Answer> Incr(const pb::IncrRequest& m, const RequestContext&,
                            Transaction& txn) {
  const int64_t by = m.has_by() ? m.by() : 1;
  return OnKey(m.key(), [&] { return KvIncr(txn, m.key(), by); });
}

absl::StatusOr<Answer> Append(const pb::AppendRequest& m, const RequestContext&,
                              Transaction& txn) {
  return OnKey(m.key(), [&] { return KvAppend(txn, m.key(), m.value()); });
}

}  // namespace

absl::Status RegisterKvGrpcMethods(framework::GrpcRouter& router) {
  using framework::AddTypedMethod;
  for (absl::Status s : {
           AddTypedMethod<pb::GetRequest, pb::KvReply>(router, kGrpcGet, Get),
           AddTypedMethod<pb::PutRequest, pb::KvReply>(router, kGrpcPut, Put),
           AddTypedMethod<pb::DeleteRequest, pb::KvReply>(router, kGrpcDelete,
                                                          Delete),
           AddTypedMethod<pb::CasRequest, pb::KvReply>(router, kGrpcCas, Cas),
           AddTypedMethod<pb::IncrRequest, pb::KvReply>(router, kGrpcIncr,
                                                        Incr),
           AddTypedMethod<pb::AppendRequest, pb::KvReply>(router, kGrpcAppend,
                                                          Append),
       }) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace baton::kvservice

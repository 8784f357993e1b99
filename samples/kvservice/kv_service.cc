#include "samples/kvservice/kv_service.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "framework/http_json.h"
#include "framework/json.h"
#include "nlohmann/json.hpp"

namespace baton::kvservice {
namespace {

using framework::JsonReply;
using framework::Reply;
using framework::Request;
using framework::Transaction;
using json = nlohmann::json;

// A stored entry wraps a request's value one level deeper.
framework::JsonLimits StoredLimits() {
  framework::JsonLimits limits;
  limits.max_depth += 1;
  limits.max_bytes = std::numeric_limits<size_t>::max();
  return limits;
}

KvError Refuse(absl::StatusCode code, std::string message,
               std::optional<json> current = std::nullopt) {
  return KvError{code, std::move(message), std::move(current)};
}

struct Stored {
  json value;
  int64_t version = 0;
};

// The stored form of a key: {"value": <json>, "version": n}.
absl::StatusOr<std::optional<Stored>> Load(Transaction& txn,
                                           std::string_view key) {
  auto v = txn.Get(key);
  if (!v.ok()) return v.status();
  if (!v->present()) return std::optional<Stored>();
  absl::StatusOr<json> j = framework::ParseJson(v->value, StoredLimits());
  if (!j.ok() || !j->is_object() || !j->contains("version") ||
      !(*j)["version"].is_number_integer()) {
    return absl::DataLossError("stored value is not a kv entry");
  }
  return std::optional<Stored>(
      Stored{(*j)["value"], (*j)["version"].get<int64_t>()});
}

absl::StatusOr<KvOutcome> Save(Transaction& txn, std::string_view key,
                               json value, int64_t version) {
  json stored = {{"value", value}, {"version", version}};
  if (absl::Status s = txn.Put(key, framework::DumpJson(stored)); !s.ok()) {
    return s;
  }
  return KvEntry{std::string(key), std::move(value), version, false};
}

int64_t NextVersion(const std::optional<Stored>& e) {
  return e ? e->version + 1 : 1;
}

// --- HTTP adapters ------------------------------------------------------------

JsonReply Answer(const KvOutcome& outcome) {
  if (const KvError* e = std::get_if<KvError>(&outcome)) {
    return JsonReply{e->code, KvErrorJson(*e)};
  }
  return JsonReply::Ok(KvEntryJson(std::get<KvEntry>(outcome)));
}

absl::StatusOr<JsonReply> ToJson(absl::StatusOr<KvOutcome> outcome) {
  if (!outcome.ok()) return outcome.status();
  return Answer(*outcome);
}

JsonReply BadBody(std::string message) {
  return Answer(Refuse(absl::StatusCode::kInvalidArgument, std::move(message)));
}

absl::StatusOr<Reply> HandleGet(const Request& req, Transaction& txn) {
  absl::StatusOr<JsonReply> r = ToJson(KvGet(txn, req.Param("key")));
  if (!r.ok()) return r.status();
  return framework::ToReply(*r);
}

absl::StatusOr<Reply> HandleDelete(const Request& req, Transaction& txn) {
  absl::StatusOr<JsonReply> r = ToJson(KvDelete(txn, req.Param("key")));
  if (!r.ok()) return r.status();
  return framework::ToReply(*r);
}

absl::StatusOr<JsonReply> HandlePut(const json& body, const Request& req,
                                    Transaction& txn) {
  if (!body.contains("value")) return BadBody("body must have a \"value\"");
  return ToJson(KvPut(txn, req.Param("key"), body["value"]));
}

absl::StatusOr<JsonReply> HandleCas(const json& body, const Request& req,
                                    Transaction& txn) {
  if (!body.contains("expected") || !body.contains("value")) {
    return BadBody("body must have \"expected\" and \"value\"");
  }
  return ToJson(KvCas(txn, req.Param("key"), body["expected"], body["value"]));
}

absl::StatusOr<JsonReply> HandleIncr(const json& body, const Request& req,
                                     Transaction& txn) {
  int64_t by = 1;
  if (body.contains("by")) {
    const json& b = body["by"];
    // An unsigned above INT64_MAX (e.g. 2^64-1) would wrap to a negative
    // step if read as int64_t.
    if (!b.is_number_integer() ||
        (b.is_number_unsigned() &&
         b.get<uint64_t>() >
             static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))) {
      return BadBody("\"by\" must be an integer in [-2^63, 2^63-1]");
    }
    by = b.get<int64_t>();
  }
  return ToJson(KvIncr(txn, req.Param("key"), by));
}

absl::StatusOr<JsonReply> HandleAppend(const json& body, const Request& req,
                                       Transaction& txn) {
  if (!body.contains("value") || !body["value"].is_string()) {
    return BadBody("body must have a string \"value\"");
  }
  return ToJson(
      KvAppend(txn, req.Param("key"), body["value"].get<std::string>()));
}

}  // namespace

// --- The operations -------------------------------------------------------------

absl::StatusOr<KvOutcome> KvGet(Transaction& txn, std::string_view key) {
  auto e = Load(txn, key);
  if (!e.ok()) return e.status();
  if (!*e) return Refuse(absl::StatusCode::kNotFound, "no such key");
  return KvEntry{std::string(key), (*e)->value, (*e)->version, false};
}

absl::StatusOr<KvOutcome> KvPut(Transaction& txn, std::string_view key,
                                const json& value) {
  auto e = Load(txn, key);
  if (!e.ok()) return e.status();
  return Save(txn, key, value, NextVersion(*e));
}

absl::StatusOr<KvOutcome> KvDelete(Transaction& txn, std::string_view key) {
  auto e = Load(txn, key);
  if (!e.ok()) return e.status();
  if (!*e) return Refuse(absl::StatusCode::kNotFound, "no such key");
  if (absl::Status s = txn.Delete(key); !s.ok()) return s;
  return KvEntry{std::string(key), nullptr, (*e)->version, true};
}

absl::StatusOr<KvOutcome> KvCas(Transaction& txn, std::string_view key,
                                const json& expected, const json& value) {
  auto e = Load(txn, key);
  if (!e.ok()) return e.status();
  const json current = *e ? (*e)->value : json(nullptr);
  if ((expected.is_null() && *e) || (!expected.is_null() && current != expected)) {
    return Refuse(absl::StatusCode::kFailedPrecondition,
                  "current value differs from \"expected\"", current);
  }
  return Save(txn, key, value, NextVersion(*e));
}

absl::StatusOr<KvOutcome> KvIncr(Transaction& txn, std::string_view key,
                                 int64_t by) {
  auto e = Load(txn, key);
  if (!e.ok()) return e.status();
  int64_t n = 0;
  if (*e) {
    if (!(*e)->value.is_number_integer()) {
      return Refuse(absl::StatusCode::kFailedPrecondition,
                    "value is not an integer", (*e)->value);
    }
    // A value PUT as an unsigned number above 2^63 - 1 reads back as a
    // negative int64; adding to it would wrap (fuzz_kv_json: u64 max + 1
    // stored 0).
    if ((*e)->value.is_number_unsigned() &&
        (*e)->value.get<uint64_t>() >
            static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Refuse(absl::StatusCode::kFailedPrecondition,
                    "value is outside the signed 64-bit range", (*e)->value);
    }
    n = (*e)->value.get<int64_t>();
  }
  int64_t sum = 0;
  if (__builtin_add_overflow(n, by, &sum)) {
    return Refuse(absl::StatusCode::kFailedPrecondition,
                  "increment would overflow a 64-bit integer", (*e)->value);
  }
  return Save(txn, key, sum, NextVersion(*e));
}

absl::StatusOr<KvOutcome> KvAppend(Transaction& txn, std::string_view key,
                                   const std::string& suffix) {
  auto e = Load(txn, key);
  if (!e.ok()) return e.status();
  std::string s;
  if (*e) {
    if (!(*e)->value.is_string()) {
      return Refuse(absl::StatusCode::kFailedPrecondition,
                    "value is not a string", (*e)->value);
    }
    s = (*e)->value.get<std::string>();
  }
  s += suffix;
  return Save(txn, key, s, NextVersion(*e));
}

json KvEntryJson(const KvEntry& entry) {
  if (entry.deleted) {
    return {{"key", entry.key}, {"deleted", true}, {"version", entry.version}};
  }
  return {{"key", entry.key}, {"value", entry.value}, {"version", entry.version}};
}

std::string KvErrorName(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kNotFound: return "not_found";
    case absl::StatusCode::kFailedPrecondition: return "precondition_failed";
    default: return "invalid_argument";
  }
}

json KvErrorJson(const KvError& error) {
  json j = JsonReply::Error(error.code, error.message, KvErrorName(error.code))
               .body;
  if (error.current) j["current"] = *error.current;
  return j;
}

absl::Status RegisterKvRoutes(framework::Router& router) {
  // incr may come without a body ({"by": 1}).
  framework::JsonRouteOptions incr_options;
  incr_options.allow_empty = true;
  struct R {
    const char* method;
    const char* pattern;
    std::shared_ptr<framework::Handler> handler;
  };
  const R routes[] = {
      {"GET", "/kv/{key}", framework::MakeHandler(HandleGet)},
      {"PUT", "/kv/{key}", framework::MakeJsonHandler(HandlePut)},
      {"DELETE", "/kv/{key}", framework::MakeHandler(HandleDelete)},
      {"POST", "/kv/{key}/cas", framework::MakeJsonHandler(HandleCas)},
      {"POST", "/kv/{key}/incr",
       framework::MakeJsonHandler(HandleIncr, incr_options)},
      {"POST", "/kv/{key}/append", framework::MakeJsonHandler(HandleAppend)},
  };
  for (const R& r : routes) {
    if (absl::Status s = router.Add(r.method, r.pattern, r.handler); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace baton::kvservice

#include "samples/kvservice/kv_service.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"

#include "framework/json.h"
#include "nlohmann/json.hpp"

namespace baton::kvservice {
namespace {

using framework::MakeHandler;
using framework::Reply;
using framework::Request;
using framework::Transaction;
using json = nlohmann::json;

std::string Dump(const json& j) { return framework::DumpJson(j); }

// A stored entry wraps a request's value one level deeper.
framework::JsonLimits StoredLimits() {
  framework::JsonLimits limits;
  limits.max_depth += 1;
  limits.max_bytes = std::numeric_limits<size_t>::max();
  return limits;
}

Reply Error(absl::StatusCode code, std::string_view message,
            const json* current = nullptr) {
  json j = {{"error", {{"code", code == absl::StatusCode::kNotFound
                                        ? "not_found"
                                    : code == absl::StatusCode::kFailedPrecondition
                                        ? "precondition_failed"
                                        : "invalid_argument"},
                       {"message", message}}}};
  if (current) j["current"] = *current;
  return Reply::Json(code, Dump(j));
}

struct Entry {
  json value;
  int64_t version = 0;
};

// The stored form of a key: {"value": <json>, "version": n}.
absl::StatusOr<std::optional<Entry>> Load(Transaction& txn,
                                          std::string_view key) {
  auto v = txn.Get(key);
  if (!v.ok()) return v.status();
  if (!v->present()) return std::optional<Entry>();
  absl::StatusOr<json> j = framework::ParseJson(v->value, StoredLimits());
  if (!j.ok() || !j->is_object() || !j->contains("version") ||
      !(*j)["version"].is_number_integer()) {
    return absl::DataLossError("stored value is not a kv entry");
  }
  return std::optional<Entry>(
      Entry{(*j)["value"], (*j)["version"].get<int64_t>()});
}

absl::StatusOr<Reply> Save(Transaction& txn, std::string_view key,
                           const json& value, int64_t version) {
  json stored = {{"value", value}, {"version", version}};
  if (absl::Status s = txn.Put(key, Dump(stored)); !s.ok()) return s;
  return Reply::Json(absl::StatusCode::kOk,
                     Dump({{"key", key}, {"value", value}, {"version", version}}));
}

// Parses the body as a JSON object; nullopt (and *error set) if it is not.
std::optional<json> ParseObject(const Request& req, Reply* error,
                                bool allow_empty = false) {
  if (allow_empty && req.body.empty()) return json::object();
  // Bounded before anything is built: a deeply nested value would overflow
  // the stack when it is printed or compared (framework/json.h).
  absl::StatusOr<json> j = framework::ParseJson(req.body);
  if (!j.ok()) {
    *error = Error(absl::StatusCode::kInvalidArgument,
                   absl::StrCat("request body: ", j.status().message()));
    return std::nullopt;
  }
  if (!j->is_object()) {
    *error = Error(absl::StatusCode::kInvalidArgument,
                   "request body must be a JSON object");
    return std::nullopt;
  }
  return *std::move(j);
}

absl::StatusOr<Reply> HandleGet(const Request& req, Transaction& txn) {
  std::string_view key = req.Param("key");
  auto e = Load(txn, key);
  if (!e.ok()) return e.status();
  if (!*e) return Error(absl::StatusCode::kNotFound, "no such key");
  return Reply::Json(absl::StatusCode::kOk,
                     Dump({{"key", key},
                           {"value", (*e)->value},
                           {"version", (*e)->version}}));
}

absl::StatusOr<Reply> HandlePut(const Request& req, Transaction& txn) {
  Reply error;
  std::optional<json> body = ParseObject(req, &error);
  if (!body) return error;
  if (!body->contains("value")) {
    return Error(absl::StatusCode::kInvalidArgument,
                 "body must have a \"value\"");
  }
  std::string_view key = req.Param("key");
  auto e = Load(txn, key);
  if (!e.ok()) return e.status();
  return Save(txn, key, (*body)["value"], *e ? (*e)->version + 1 : 1);
}

absl::StatusOr<Reply> HandleDelete(const Request& req, Transaction& txn) {
  std::string_view key = req.Param("key");
  auto e = Load(txn, key);
  if (!e.ok()) return e.status();
  if (!*e) return Error(absl::StatusCode::kNotFound, "no such key");
  if (absl::Status s = txn.Delete(key); !s.ok()) return s;
  return Reply::Json(
      absl::StatusCode::kOk,
      Dump({{"key", key}, {"deleted", true}, {"version", (*e)->version}}));
}

absl::StatusOr<Reply> HandleCas(const Request& req, Transaction& txn) {
  Reply error;
  std::optional<json> body = ParseObject(req, &error);
  if (!body) return error;
  if (!body->contains("expected") || !body->contains("value")) {
    return Error(absl::StatusCode::kInvalidArgument,
                 "body must have \"expected\" and \"value\"");
  }
  std::string_view key = req.Param("key");
  auto e = Load(txn, key);
  if (!e.ok()) return e.status();
  const json& expected = (*body)["expected"];
  const json current = *e ? (*e)->value : json(nullptr);
  if ((expected.is_null() && *e) || (!expected.is_null() && current != expected)) {
    return Error(absl::StatusCode::kFailedPrecondition,
                 "current value differs from \"expected\"", &current);
  }
  return Save(txn, key, (*body)["value"], *e ? (*e)->version + 1 : 1);
}

absl::StatusOr<Reply> HandleIncr(const Request& req, Transaction& txn) {
  Reply error;
  std::optional<json> body = ParseObject(req, &error, /*allow_empty=*/true);
  if (!body) return error;
  int64_t by = 1;
  if (body->contains("by")) {
    const json& b = (*body)["by"];
    // An unsigned above INT64_MAX (e.g. 2^64-1) would wrap to a negative
    // step if read as int64_t.
    if (!b.is_number_integer() ||
        (b.is_number_unsigned() &&
         b.get<uint64_t>() >
             static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))) {
      return Error(absl::StatusCode::kInvalidArgument,
                   "\"by\" must be an integer in [-2^63, 2^63-1]");
    }
    by = b.get<int64_t>();
  }
  std::string_view key = req.Param("key");
  auto e = Load(txn, key);
  if (!e.ok()) return e.status();
  int64_t n = 0;
  if (*e) {
    if (!(*e)->value.is_number_integer()) {
      return Error(absl::StatusCode::kFailedPrecondition,
                   "value is not an integer", &(*e)->value);
    }
    n = (*e)->value.get<int64_t>();
  }
  int64_t sum = 0;
  if (__builtin_add_overflow(n, by, &sum)) {
    return Error(absl::StatusCode::kFailedPrecondition,
                 "increment would overflow a 64-bit integer", &(*e)->value);
  }
  return Save(txn, key, sum, *e ? (*e)->version + 1 : 1);
}

absl::StatusOr<Reply> HandleAppend(const Request& req, Transaction& txn) {
  Reply error;
  std::optional<json> body = ParseObject(req, &error);
  if (!body) return error;
  if (!body->contains("value") || !(*body)["value"].is_string()) {
    return Error(absl::StatusCode::kInvalidArgument,
                 "body must have a string \"value\"");
  }
  std::string_view key = req.Param("key");
  auto e = Load(txn, key);
  if (!e.ok()) return e.status();
  std::string s;
  if (*e) {
    if (!(*e)->value.is_string()) {
      return Error(absl::StatusCode::kFailedPrecondition,
                   "value is not a string", &(*e)->value);
    }
    s = (*e)->value.get<std::string>();
  }
  s += (*body)["value"].get<std::string>();
  return Save(txn, key, s, *e ? (*e)->version + 1 : 1);
}

}  // namespace

absl::Status RegisterKvRoutes(framework::Router& router) {
  struct R {
    const char* method;
    const char* pattern;
    framework::HandlerFunction fn;
  };
  const R routes[] = {
      {"GET", "/kv/{key}", HandleGet},
      {"PUT", "/kv/{key}", HandlePut},
      {"DELETE", "/kv/{key}", HandleDelete},
      {"POST", "/kv/{key}/cas", HandleCas},
      {"POST", "/kv/{key}/incr", HandleIncr},
      {"POST", "/kv/{key}/append", HandleAppend},
  };
  for (const R& r : routes) {
    if (absl::Status s = router.Add(r.method, r.pattern, MakeHandler(r.fn));
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace baton::kvservice

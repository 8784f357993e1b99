// The sample key-value service: handlers on the public framework API only.
//
// Routes (JSON bodies and replies; values are any JSON value):
//   GET    /kv/{key}          -> {"key":k,"value":v,"version":n}, 404 if absent
//   PUT    /kv/{key}          {"value":v}                 -> {"key","value","version"}
//   DELETE /kv/{key}          -> {"key":k,"deleted":true,"version":n}, 404 if absent
//   POST   /kv/{key}/cas      {"expected":e,"value":v}    -> 412 if current != e
//                             (e = null: the key must be absent)
//   POST   /kv/{key}/incr     {"by":n} (default 1)        -> the new integer
//   POST   /kv/{key}/append   {"value":"s"}               -> the new string
// "version" counts the writes of the key since it was created (kept in the
// value, so a reply can carry it before the commit assigns a revision).
// Malformed JSON or fields -> 400; a value of the wrong type for incr/append
// -> 412; keys in the framework's reserved space -> 400.
//
// The operations themselves work on plain values (KvGet ... KvAppend below);
// the HTTP routes here and the gRPC methods (kv_grpc.h) are thin adapters
// over them, so both forms answer alike.
#ifndef BATON_SAMPLES_KVSERVICE_KV_SERVICE_H_
#define BATON_SAMPLES_KVSERVICE_KV_SERVICE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "framework/http_server.h"
#include "framework/transaction.h"
#include "nlohmann/json.hpp"

namespace baton::kvservice {

// Adds the routes above to `router`. Errors: those of Router::Add.
[[nodiscard]] absl::Status RegisterKvRoutes(framework::Router& router);

// A key after an operation.
struct KvEntry {
  std::string key;
  nlohmann::json value;  // Null after a delete.
  int64_t version = 0;   // Writes of the key since it was created.
  bool deleted = false;
};

// An operation's refusal: an answer, not a failure (HTTP 404/412/400).
struct KvError {
  // kNotFound, kFailedPrecondition (CAS mismatch, wrong type, overflow) or
  // kInvalidArgument.
  absl::StatusCode code = absl::StatusCode::kInvalidArgument;
  std::string message;
  // The key's current value, for precondition failures.
  std::optional<nlohmann::json> current;
};

using KvOutcome = std::variant<KvEntry, KvError>;

// The operations, in `txn`. A non-OK Status is a store failure or a key in
// the framework's reserved space (kInvalidArgument): the request fails and
// its transaction is discarded.
[[nodiscard]] absl::StatusOr<KvOutcome> KvGet(framework::Transaction& txn,
                                              std::string_view key);
[[nodiscard]] absl::StatusOr<KvOutcome> KvPut(framework::Transaction& txn,
                                              std::string_view key,
                                              const nlohmann::json& value);
[[nodiscard]] absl::StatusOr<KvOutcome> KvDelete(framework::Transaction& txn,
                                                 std::string_view key);
// `expected` null: the key must be absent.
[[nodiscard]] absl::StatusOr<KvOutcome> KvCas(framework::Transaction& txn,
                                              std::string_view key,
                                              const nlohmann::json& expected,
                                              const nlohmann::json& value);
[[nodiscard]] absl::StatusOr<KvOutcome> KvIncr(framework::Transaction& txn,
                                               std::string_view key,
                                               int64_t by);
[[nodiscard]] absl::StatusOr<KvOutcome> KvAppend(framework::Transaction& txn,
                                                 std::string_view key,
                                                 const std::string& suffix);

// The JSON the HTTP routes answer: {"key","value","version"} or
// {"key","deleted":true,"version"}; an error as
// {"error":{"code":"not_found"|"precondition_failed"|"invalid_argument",
// "message":...},"current"?:...} (also the gRPC methods' status message).
nlohmann::json KvEntryJson(const KvEntry& entry);
nlohmann::json KvErrorJson(const KvError& error);
// "not_found", "precondition_failed" or "invalid_argument".
std::string KvErrorName(absl::StatusCode code);

}  // namespace baton::kvservice

#endif  // BATON_SAMPLES_KVSERVICE_KV_SERVICE_H_

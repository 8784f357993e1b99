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
#ifndef BATON_SAMPLES_KVSERVICE_KV_SERVICE_H_
#define BATON_SAMPLES_KVSERVICE_KV_SERVICE_H_

#include "absl/status/status.h"
#include "framework/http_server.h"

namespace baton::kvservice {

// Adds the routes above to `router`. Errors: those of Router::Add.
[[nodiscard]] absl::Status RegisterKvRoutes(framework::Router& router);

}  // namespace baton::kvservice

#endif  // BATON_SAMPLES_KVSERVICE_KV_SERVICE_H_

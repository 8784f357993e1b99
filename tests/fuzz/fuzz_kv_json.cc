// libFuzzer target: JSON request bodies of the kv sample, straight into its
// handlers. The input is the body of PUT, POST .../cas, POST .../incr and
// POST .../append on one key, in that order, each run through the request
// pipeline (a Transaction on an in-memory store), then the key is deleted so
// that every input starts from the same state.
//
// Properties checked besides crashes and sanitizer reports (stack overflow on
// deep nesting included): a handler answers every body with a reply, never an
// error status or an exception; every reply body is JSON; an incr that
// succeeds stores exactly the old value plus "by" (no wrap-around of an
// out-of-range "by").
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/numeric/int128.h"
#include "framework/clock.h"
#include "framework/http_server.h"
#include "framework/pipeline.h"
#include "nlohmann/json.hpp"
#include "samples/kvservice/kv_service.h"
#include "storage/memory/memory_store.h"
#include "tests/fuzz/fuzz_util.h"

namespace baton::fuzz {
namespace {

using json = nlohmann::json;
std::unique_ptr<storage::MemoryStore> OpenStore() {
  auto store = storage::OpenMemoryStore();
  if (!store.ok()) Die("OpenMemoryStore: " + store.status().ToString());
  return *std::move(store);
}

struct Kv {
  Kv() : store(OpenStore()), pipeline(*store, clock) {
    if (absl::Status s = kvservice::RegisterKvRoutes(router); !s.ok()) {
      Die("RegisterKvRoutes: " + s.ToString());
    }
  }

  // Runs `method` on `path` ("/kv/k", "/kv/k/incr") with `body`.
  framework::Reply Call(std::string_view method, std::string_view path,
                        std::string_view body) {
    framework::Router::Match m = router.Find(method, path);
    if (m.result != framework::Router::Match::Result::kFound) {
      Die("no route for " + std::string(method) + " " + std::string(path));
    }
    framework::Request request;
    request.operation = std::string(method) + " " + m.pattern;
    request.path = std::string(path);
    request.params = m.params;
    request.body = std::string(body);
    absl::StatusOr<framework::PipelineResult> result =
        pipeline.Execute(framework::RequestId::None(), request, *m.handler);
    if (!result.ok()) {
      Die(request.operation + " answered a status instead of a reply: " +
          result.status().ToString());
    }
    if (!json::accept(result->reply.body)) {
      Die(request.operation + " replied with a body that is not JSON: " +
          result->reply.body.substr(0, 200));
    }
    return result->reply;
  }

  // The key's current value (nullopt: absent).
  std::optional<json> Value() {
    framework::Reply r = Call("GET", "/kv/k", "");
    if (r.code == absl::StatusCode::kNotFound) return std::nullopt;
    if (r.code != absl::StatusCode::kOk) Die("GET failed: " + r.body);
    return json::parse(r.body).at("value");
  }

  std::unique_ptr<storage::MemoryStore> store;
  framework::SimulatedClock clock;
  framework::RequestPipeline pipeline;
  framework::Router router;
};

absl::int128 ToInt128(const json& j) {
  return j.is_number_unsigned() ? absl::int128(j.get<uint64_t>())
                                : absl::int128(j.get<int64_t>());
}

// An incr of `body` on `before` that succeeded must have stored before + by.
void CheckIncr(std::string_view body, const std::optional<json>& before,
               const framework::Reply& reply, const std::optional<json>& after) {
  if (reply.code != absl::StatusCode::kOk) return;
  json b = json::parse(body.empty() ? std::string_view("{}") : body);
  absl::int128 by = 1;
  if (b.contains("by")) {
    by = ToInt128(b["by"]);
  }
  absl::int128 old = before ? ToInt128(*before) : 0;
  absl::int128 want = old + by;
  Check(after && after->is_number_integer(), "incr succeeded but stored no integer");
  if (ToInt128(*after) != want) {
    Die("incr stored " + after->dump() + " for " + (before ? before->dump() : "absent") +
        " + " + (b.contains("by") ? b["by"].dump() : "1") +
        " (an out-of-range \"by\" wrapped around)");
  }
}

}  // namespace
}  // namespace baton::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace baton::fuzz;
  static Kv* kv = new Kv();
  std::string_view body(reinterpret_cast<const char*>(data), size);
  kv->Call("PUT", "/kv/k", body);
  kv->Call("POST", "/kv/k/cas", body);
  std::optional<json> before = kv->Value();
  baton::framework::Reply incr = kv->Call("POST", "/kv/k/incr", body);
  CheckIncr(body, before, incr, kv->Value());
  kv->Call("POST", "/kv/k/append", body);
  kv->Call("DELETE", "/kv/k", "");
  return 0;
}

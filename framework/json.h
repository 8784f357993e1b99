// Bounded JSON parsing for request bodies and stored values.
//
// nlohmann::json parses without recursion, but printing (dump), comparing and
// copying a value recurse once per nesting level: a 132 KB body of 66,000
// nested arrays parses fine and then overflows the stack of whichever thread
// prints it. Every JSON text that comes from outside (request bodies, gRPC
// fields, stored values) therefore goes through ParseJson, which checks the
// nesting depth and the size on the raw text before anything is built.
//
//   absl::StatusOr<nlohmann::json> body = ParseJson(request.body);
//   if (!body.ok()) return Reply::Json(kInvalidArgument, ...);
//
// Thread safety: stateless; call from any thread.
#ifndef BATON_FRAMEWORK_JSON_H_
#define BATON_FRAMEWORK_JSON_H_

#include <cstddef>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace baton::framework {

struct JsonLimits {
  // Deepest nesting of arrays and objects (a scalar is depth 0, [] is 1).
  // Default: 64.
  int max_depth = 64;
  // Longest text accepted, in bytes. Default: 1 MiB.
  size_t max_bytes = 1024 * 1024;
};

// Checks `text` against `limits` without parsing it into a value: OK, or
// kInvalidArgument naming the limit that was exceeded. Strings (with escapes)
// are skipped, so brackets inside them do not count. Malformed JSON is not
// detected here (ParseJson does that).
[[nodiscard]] absl::Status CheckJsonLimits(std::string_view text,
                                           const JsonLimits& limits = {});

// Parses one JSON value. kInvalidArgument when `text` exceeds `limits`
// (checked first, on the raw text) or is not JSON.
[[nodiscard]] absl::StatusOr<nlohmann::json> ParseJson(
    std::string_view text, const JsonLimits& limits = {});

// Prints `value` compactly; invalid UTF-8 in strings is replaced (U+FFFD)
// instead of throwing. Only for values within the default depth (values from
// ParseJson or built by the caller).
std::string DumpJson(const nlohmann::json& value);

}  // namespace baton::framework

#endif  // BATON_FRAMEWORK_JSON_H_

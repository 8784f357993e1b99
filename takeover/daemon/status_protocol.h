// The status-socket protocol of baton-takeoverd (status_socket.h): the one definition of the
// request and reply that the daemon's server (TakeoverDaemon, status_socket.cc) and the client of
// `baton-takeoverd status` / `drain` (QueryStatus / RequestDrain) exchange. Neither side writes an
// op or field name itself (as agent_link_protocol.h does for the server <-> agent link).
//
// Wire format: the client sends one request line, the daemon answers with one JSON document and
// closes.
//   StatusRequest  ""  or {"op":"status","version":V}
//   DrainRequest   {"op":"drain","version":V,"slot":N|null,"undo":bool}
//   reply          the status document (TakeoverDaemon::StatusJson; docs/takeover.md "Status"),
//                  after a drain with "ok": true; or {"ok": false, "error": "..."}.
// Versions: a request carries the client's kVersion. A request without "version" is version 0
// (the same messages, from a client before versions; scripts that send {"op":"status"} by hand)
// and is served; any other version than 0 or kVersion is refused with
// "status protocol version N from the client, expected M".
//
// Decoding is strict and bounded: a request line longer than kMaxRequestBytes, one that is not a
// JSON object, a missing or mistyped field is kInvalidArgument; an unknown op is kUnimplemented; a
// version mismatch kFailedPrecondition. A reply longer than kMaxReplyBytes or not a JSON object is
// kDataLoss; {"ok": false, ...} is kInvalidArgument with the daemon's error text.
//
// Thread safety: pure functions.
#ifndef BATON_TAKEOVER_DAEMON_STATUS_PROTOCOL_H_
#define BATON_TAKEOVER_DAEMON_STATUS_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace baton::takeover::status_protocol {

// Version 1: requests carry "version" (version 0: the same requests without it).
inline constexpr uint32_t kVersion = 1;
// The longest request line the daemon reads, newline excluded. 4096 bytes.
inline constexpr size_t kMaxRequestBytes = 4096;
// The longest reply a client reads (a status document of the largest pool, 1024 slots, is a few
// hundred kB). 4 MiB.
inline constexpr size_t kMaxReplyBytes = size_t{4} << 20;

struct StatusRequest {
  uint32_t version = kVersion;
};
struct DrainRequest {
  uint32_t version = kVersion;
  std::optional<uint32_t> slot;  // nullopt: every slot
  bool undo = false;             // true: undo an earlier drain
};
using Request = std::variant<StatusRequest, DrainRequest>;

// One request line, without the '\n'.
[[nodiscard]] std::string Encode(const Request& request);
// `line` without its '\n'; blank (spaces, tabs, '\r') is a StatusRequest. Errors as in the file
// comment, the version checked.
[[nodiscard]] absl::StatusOr<Request> DecodeRequest(std::string_view line);

// The reply to a refused request: {"ok": false, "error": <error>}.
[[nodiscard]] nlohmann::json ErrorReply(std::string_view error);
// A reply as the client reads it (the whole text up to EOF). The status document; errors as in the
// file comment.
[[nodiscard]] absl::StatusOr<nlohmann::json> DecodeReply(std::string_view text);

}  // namespace baton::takeover::status_protocol

#endif  // BATON_TAKEOVER_DAEMON_STATUS_PROTOCOL_H_

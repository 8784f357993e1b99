// The protocol between a baton server and its supervised take-over agent: the one definition of
// the messages that the server side (takeover/daemon/agent_process.cc, for
// framework/agent_supervisor.cc's AgentSupervisor) and takeover/daemon/parent_link.cc (agent
// side, `baton-takeoverd --parent-fd N`) exchange over
// their socketpair. Neither side writes a message name or field name itself; both encode and
// decode through this file (as takeover/core/wire.h does for the peer messages).
//
// Wire format: one JSON object per line ('\n'-terminated), both ways; "op" names a message of
// the server, "ev" one of the agent.
//   server -> agent: Config        {"op":"config","version":V,"yaml":"<takeover: section>"}
//                                  first line, exactly once
//                    Health        {"op":"health","healthy":bool}    every liveness/6 (keepalive)
//                    Drain         {"op":"drain","slot":N|null,"drain":bool}  operator drain/undo
//                    StatusRequest {"op":"status","id":N}
//                    Shutdown      {"op":"shutdown"}                 graceful hand-over, then exit
//                    Closed        {"op":"closed","id":N}            connections on the address
//                                                                    of Releasing N are closed
//   agent -> server: Started       {"ev":"started","version":V}      the daemon started (once)
//                    SlotChange    {"ev":"slot","slot":N,"address":"a.b.c.d","held":bool,"epoch":E}
//                    StatusReply   {"ev":"status","id":N,"status":{...}}  TakeoverDaemon::StatusJson
//                    Releasing     {"ev":"releasing","id":N,"slot":S,"address":"a.b.c.d","epoch":E}
//                                  a planned release of held slot S: the server closes its
//                                  connections there and answers Closed; the address stays until
//                                  then (at most the daemon's close_timeout)
//
// Versions: Config and Started carry the sender's kVersion; each side refuses another one with
// CheckVersion's message ("agent protocol version N from the server, expected M"). The protocol
// before versions were exchanged counts as version 0 (no "version" field). Server and agent come
// from one build (the server runs the baton-takeoverd beside it), so there is no negotiation:
// a mismatch is an installation error, reported as such.
//
// Decoding is strict and bounded: a line longer than kMaxLineBytes, a line that is not a JSON
// object, a missing field or a field of the wrong type is kInvalidArgument; a well-formed
// message whose "op"/"ev" this version does not know is kUnimplemented (the receiver logs and
// ignores it).
//
// Thread safety: pure functions.
#ifndef BATON_TAKEOVER_DAEMON_AGENT_LINK_PROTOCOL_H_
#define BATON_TAKEOVER_DAEMON_AGENT_LINK_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace baton::takeover::agent_link {

// Version 1: Config and Started carry "version" (version 0: the same messages without it).
inline constexpr uint32_t kVersion = 1;
// The longest line either side accepts, newline excluded (a status document of the largest
// pool, 1024 slots, is a few hundred kB). Default: 4 MiB.
inline constexpr size_t kMaxLineBytes = size_t{4} << 20;

// --- server -> agent -----------------------------------------------------------------------
struct Config {
  uint32_t version = kVersion;
  std::string yaml;  // the `takeover:` section, as the server read it
};
struct Health {
  bool healthy = true;  // the store answers and the server's event loop makes progress
};
struct Drain {
  std::optional<uint32_t> slot;  // nullopt: every slot
  bool drain = true;             // false: undo
};
struct StatusRequest {
  uint64_t id = 0;  // echoed by the StatusReply
};
struct Shutdown {};
struct Closed {
  uint64_t id = 0;  // the Releasing answered
};
using ServerMessage = std::variant<Config, Health, Drain, StatusRequest, Shutdown, Closed>;

// --- agent -> server -----------------------------------------------------------------------
struct Started {
  uint32_t version = kVersion;
};
// A slot taken (held) or removed here (TakeoverDaemon's SlotEvent).
struct SlotChange {
  uint32_t slot = 0;
  std::string address;
  bool held = false;
  uint64_t epoch = 0;
};
struct StatusReply {
  uint64_t id = 0;
  nlohmann::json status;  // a JSON object
};
struct Releasing {
  uint64_t id = 0;
  uint32_t slot = 0;
  std::string address;
  uint64_t epoch = 0;
};
using AgentMessage = std::variant<Started, SlotChange, StatusReply, Releasing>;

// One line, '\n'-terminated.
[[nodiscard]] std::string Encode(const ServerMessage& message);
[[nodiscard]] std::string Encode(const AgentMessage& message);

// `line` without its '\n'. Errors as in the file comment.
[[nodiscard]] absl::StatusOr<ServerMessage> DecodeServerMessage(std::string_view line);
[[nodiscard]] absl::StatusOr<AgentMessage> DecodeAgentMessage(std::string_view line);

// For std::visit over the message variants: Overloaded{[](const Health&) {...}, ...}.
template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

// OkStatus if `version` is kVersion; otherwise kFailedPrecondition "agent protocol version
// <version> from <from>, expected <kVersion>".
[[nodiscard]] absl::Status CheckVersion(uint32_t version, std::string_view from);

}  // namespace baton::takeover::agent_link

#endif  // BATON_TAKEOVER_DAEMON_AGENT_LINK_PROTOCOL_H_

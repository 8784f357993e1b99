// The status socket of baton-takeoverd (config status_socket, `--status-socket`): both of its
// ends in one place -- the daemon's server (TakeoverDaemon::StartStatusSocket, in
// status_socket.cc) and the client of `baton-takeoverd status` / `drain` below.
//
// Protocol (its one definition, typed and versioned: status_protocol.h): the client connects,
// sends one request line, and reads one JSON document until EOF -- the status document
// (TakeoverDaemon::StatusJson), after a drain with "ok": true, or {"ok": false, "error": "..."}.
// A client that sends nothing for 200 ms (or shuts its side down) gets the status. A request
// line is at most 4096 bytes. The socket is owner-only (base/unix_socket.h): it accepts drains.
//
// Thread safety: the client functions block the calling thread; any thread.
#ifndef BATON_TAKEOVER_DAEMON_STATUS_SOCKET_H_
#define BATON_TAKEOVER_DAEMON_STATUS_SOCKET_H_

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace baton::takeover {

// The client side of `baton-takeoverd status`: connects to `socket_path`, returns the JSON.
// kUnavailable if nothing listens there.
absl::StatusOr<nlohmann::json> QueryStatus(const std::string& socket_path);
// The client side of `baton-takeoverd drain [--slot N] [--undo]`: asks the daemon to drain slot
// `slot` (nullopt: every slot) or to undo it; returns the daemon's answer (the status document
// after the request was applied, with "ok"). kUnavailable if nothing listens there,
// kInvalidArgument if the daemon refused the request (e.g. slot out of range).
absl::StatusOr<nlohmann::json> RequestDrain(const std::string& socket_path,
                                            std::optional<uint32_t> slot, bool undo);
// Human-readable rendering of a status document (one line per slot).
std::string FormatStatus(const nlohmann::json& status);

}  // namespace baton::takeover

#endif  // BATON_TAKEOVER_DAEMON_STATUS_SOCKET_H_

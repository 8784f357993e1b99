// The take-over core's persistent state (takeover/core/node.h, PersistentState: membership and
// per-slot epoch floors) on disk, for baton-takeoverd's `state_file`.
//
// Why: the core requires TakeStateToPersist() to be durable before the messages of the same call
// leave, and to be passed to Node::Create after a restart; without it, group shrink
// (Timing::shrink_after > 0) is unsafe and epochs could repeat after a whole-group restart.
//
// Format: a small text file, one record per line, ending with a checksum line over everything
// before it (FNV-1a 64), so that a torn or edited file is detected rather than half-used:
//   baton-takeoverd-state 2
//   membership <version>
//   members <id> <id> ...
//   old_members <id> ...
//   epochs <epoch>:<owner> ...        (owner 4294967295 = none)
//   ballots <round>:<node> <round>:<node>   (promised, accepted: the membership agreement)
//   checksum <16 hex digits>
// Version 1 files (written before the ballots existed: no ballots line) are still read, with
// both ballots (0, 0).
//
// Errors: kDataLoss for a corrupt file (bad header, syntax or checksum); kPermissionDenied /
// kUnavailable when the file cannot be read or written. A missing file is not an error for
// LoadPersistentState (first start).
//
// Thread-safety: free functions without shared state.
#ifndef BATON_TAKEOVER_DAEMON_STATE_FILE_H_
#define BATON_TAKEOVER_DAEMON_STATE_FILE_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "takeover/core/node.h"

namespace baton::takeover {

// The file's text for `state` (see the format above).
std::string EncodePersistentState(const PersistentState& state);
// Parses EncodePersistentState's output. kDataLoss (naming what is wrong) otherwise.
absl::StatusOr<PersistentState> DecodePersistentState(std::string_view text);

// Reads `path`: nullopt if it does not exist; kDataLoss if corrupt (never ignored: the caller
// must refuse to start, a node that forgot its membership could help form a stale majority);
// kPermissionDenied / kUnavailable if it exists but cannot be read.
absl::StatusOr<std::optional<PersistentState>> LoadPersistentState(const std::string& path);

// Writes `state` to `path` atomically and durably: a temporary file next to it, fsync, rename
// over `path`, fsync of the directory. On error `path` keeps its previous content.
// kPermissionDenied / kUnavailable with the failing step and errno text.
[[nodiscard]] absl::Status SavePersistentState(const std::string& path,
                                               const PersistentState& state);

}  // namespace baton::takeover

#endif  // BATON_TAKEOVER_DAEMON_STATE_FILE_H_

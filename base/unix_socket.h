// A listening unix stream socket that only its owner can connect to, created so that there is no
// instant at which the path exists with a looser mode.
//
// bind() creates the socket's file with mode 0777 & ~umask; a chmod after it leaves a window in
// which anyone may connect (the status socket answers drain requests). Changing the umask around
// bind() is not an option in a threaded embedder (the umask is per process). Instead the socket is
// bound in a fresh 0700 directory next to `path` (mkdtemp), set to 0600 there, and renamed onto
// `path`: the name appears already owner-only, atomically, replacing whatever file was there.
//
// Thread-safety: a free function; safe to call from any thread.
#ifndef BATON_BASE_UNIX_SOCKET_H_
#define BATON_BASE_UNIX_SOCKET_H_

#include <string>

#include "absl/status/statusor.h"

namespace baton {

// Creates, binds and listens (`backlog`) on a unix stream socket at `path` with mode 0600, never
// visible there with another mode. Returns the listening descriptor (close-on-exec; the caller
// owns it). An existing file at `path` is replaced (check first that no live process uses it).
// Errors: kInvalidArgument (path empty, or its directory plus "/.btkXXXXXX/s" -- the temporary
// name -- longer than a unix socket path, 107 bytes); a failed system call's errno as
// base/errno_status.h converts it (kPermissionDenied: the directory is not writable; kNotFound:
// it does not exist; kUnavailable and others: socket or bind failed).
absl::StatusOr<int> ListenUnixOwnerOnly(const std::string& path, int backlog);

}  // namespace baton

#endif  // BATON_BASE_UNIX_SOCKET_H_

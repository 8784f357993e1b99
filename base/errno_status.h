// errno -> absl::Status: the one place where a failed system call becomes a status.
//
// The code is Abseil's (absl::ErrnoToStatusCode): ENOENT/ENODEV/ENXIO/ESRCH kNotFound,
// EACCES/EPERM/EROFS kPermissionDenied, EEXIST kAlreadyExists, EINVAL kInvalidArgument,
// ENOSPC/ENOMEM/ENOBUFS/EMFILE kResourceExhausted, EAGAIN/EINTR/ECONNREFUSED/ENETDOWN
// kUnavailable, EBUSY/EPIPE/EADDRINUSE kFailedPrecondition, ... with one baton rule on top: an
// errno that Abseil leaves as kUnknown (EIO, EMSGSIZE, any value it does not list) becomes
// kUnavailable. In baton, kUnknown means "the outcome of a commit is unknown" (storage/
// stable_store.h); a failed system call is instead a failure the caller may retry later.
//
// Callers that give an errno a meaning of their own add it around this function, never a table
// of their own: e.g. the address driver reads EADDRNOTAVAIL from RTM_DELADDR as "no such
// address" (kNotFound) and adds a hint about CAP_NET_ADMIN to kPermissionDenied.
//
// Thread-safety: pure functions; safe from any thread (std::strerror is not called: Abseil's
// message uses the thread-safe strerror_r).
#ifndef BATON_BASE_ERRNO_STATUS_H_
#define BATON_BASE_ERRNO_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace baton {

// The status code for `err` (a positive errno value) by the rules above; 0 gives kOk.
absl::StatusCode ErrnoToStatusCode(int err);

// A status with ErrnoToStatusCode(err) and the message "<what>: <strerror(err)>".
// err == 0 gives an OK status (and drops `what`).
[[nodiscard]] absl::Status ErrnoToStatus(int err, absl::string_view what);

}  // namespace baton

#endif  // BATON_BASE_ERRNO_STATUS_H_

#include "base/errno_status.h"

namespace baton {

absl::StatusCode ErrnoToStatusCode(int err) {
  const absl::StatusCode code = absl::ErrnoToStatusCode(err);
  return code == absl::StatusCode::kUnknown ? absl::StatusCode::kUnavailable : code;
}

absl::Status ErrnoToStatus(int err, absl::string_view what) {
  if (err == 0) return absl::OkStatus();
  // Abseil's message ("<what>: <strerror>"), with the code by baton's rule.
  const absl::Status s = absl::ErrnoToStatus(err, what);
  return absl::Status(ErrnoToStatusCode(err), s.message());
}

}  // namespace baton

// The one place where a rocksdb::Status becomes an absl::Status (see
// storage/stable_store.h for what each code means to a caller).
#ifndef BATON_STORAGE_ROCKSDB_ROCKSDB_STATUS_H_
#define BATON_STORAGE_ROCKSDB_ROCKSDB_STATUS_H_

#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "rocksdb/status.h"

namespace baton::storage::rocksdb_internal {

// Debian's abseil keeps its own absl::string_view (not std::string_view), so
// std::string_view arguments to abseil functions go through this.
inline absl::string_view ToAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

// Maps `s` to the contract's codes; `what` names the operation for the
// message ("commit", "open /var/lib/x"). OK maps to OK.
//   disk full (IOError NoSpace)                  -> kUnavailable
//   other I/O and background errors, Busy,
//   TryAgain, TimedOut, ShutdownInProgress, ...  -> kUnavailable
//   Corruption                                   -> kDataLoss
//   InvalidArgument                              -> kInvalidArgument
//   NotFound                                     -> kNotFound
//   NotSupported                                 -> kUnimplemented
[[nodiscard]] absl::Status FromRocksDb(const rocksdb::Status& s,
                                       std::string_view what);

}  // namespace baton::storage::rocksdb_internal

#endif  // BATON_STORAGE_ROCKSDB_ROCKSDB_STATUS_H_

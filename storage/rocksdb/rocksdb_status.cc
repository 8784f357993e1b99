#include "storage/rocksdb/rocksdb_status.h"

#include "absl/strings/str_cat.h"

namespace baton::storage::rocksdb_internal {

absl::Status FromRocksDb(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  const std::string detail = s.ToString();
  if (s.IsNoSpace()) {
    return absl::UnavailableError(absl::StrCat(
        ToAbsl(what), ": disk full; retry after space is freed (", detail, ")"));
  }
  if (s.IsCorruption()) {
    return absl::DataLossError(
        absl::StrCat(ToAbsl(what), ": corruption detected (", detail, ")"));
  }
  if (s.IsInvalidArgument()) {
    return absl::InvalidArgumentError(absl::StrCat(ToAbsl(what), ": ", detail));
  }
  if (s.IsNotFound()) {
    return absl::NotFoundError(absl::StrCat(ToAbsl(what), ": ", detail));
  }
  if (s.IsNotSupported()) {
    return absl::UnimplementedError(absl::StrCat(ToAbsl(what), ": ", detail));
  }
  // I/O errors, background errors that stopped writes, Busy, TryAgain,
  // TimedOut, ShutdownInProgress, lock contention on open: RocksDB applied
  // nothing, and the condition may pass (space freed, Resume() succeeded), so
  // the caller may retry later.
  return absl::UnavailableError(absl::StrCat(
      ToAbsl(what), ": store unavailable; retry later (", detail, ")"));
}

}  // namespace baton::storage::rocksdb_internal

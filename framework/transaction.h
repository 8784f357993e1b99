// The transaction a request handler runs in: reads of the inter-request state
// (kept in the stable store) and buffered writes, committed by the request
// pipeline together with the request's completion record, atomically.
//
// Reads record the version they saw; the commit succeeds only if none of them
// changed in the meantime (optimistic concurrency). When one did, the
// pipeline discards the transaction and runs the handler again on a fresh one,
// so a handler must not act outside its transaction (no side effects
// elsewhere that a re-run would repeat).
//
// Reads may be stale on the pipeline's first run of a request (a replicated
// store's member may lag; storage::ReadConsistency::kMayBeStale): the commit
// checks every version read, and a stale one makes the pipeline run the
// handler again on latest reads, so a handler never has to care. A reply or
// error built on stale reads is never sent: it is confirmed or discarded.
//
// Reads see the transaction's own buffered writes. A Scan records the versions
// of the keys it returned; a key inserted under the prefix by a concurrent
// request is not detected (no phantom protection).
//
// Keys starting with storage::kReservedPrefix belong to the framework:
// Get/Scan/Put/Delete on them return kInvalidArgument.
//
// Values are bounded: Put of a value longer than the pipeline's
// PipelineOptions::max_value_bytes (default 1 MiB) returns kResourceExhausted
// naming the limit, and the pipeline then commits nothing for the request and
// answers that error, whatever the handler returns.
//
// Errors: kInvalidArgument (reserved or malformed key), kResourceExhausted
// (value over max_value_bytes), kUnavailable (store cannot serve, or a read
// whose outcome was unknown; the pipeline answers 503 if the handler returns
// it), other store codes as documented in storage/stable_store.h.
//
// Thread safety: not thread-safe; one handler invocation uses it on one thread.
#ifndef BATON_FRAMEWORK_TRANSACTION_H_
#define BATON_FRAMEWORK_TRANSACTION_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/stable_store.h"

namespace baton::framework {

// The version Get() reports for a key this transaction has written (put) but
// not yet committed.
inline constexpr uint64_t kUncommittedVersion =
    std::numeric_limits<uint64_t>::max();

class Transaction {
 public:
  virtual ~Transaction() = default;

  // The value and version of `key` ({"", 0} when absent), from the store or
  // from this transaction's own buffered writes.
  [[nodiscard]] virtual absl::StatusOr<storage::Versioned> Get(
      std::string_view key) = 0;

  // Present keys starting with `prefix`, in key order, after `start_after`
  // (exclusive; empty: from the start), at most `limit` of them
  // (default 1000). Buffered writes are merged in.
  [[nodiscard]] virtual absl::StatusOr<std::vector<storage::KeyValue>> Scan(
      std::string_view prefix, std::string_view start_after = {},
      size_t limit = 1000) = 0;

  // Buffer a write; nothing reaches the store before the commit. A value
  // over max_value_bytes: kResourceExhausted, nothing buffered.
  [[nodiscard]] virtual absl::Status Put(std::string_view key,
                                         std::string_view value) = 0;
  [[nodiscard]] virtual absl::Status Delete(std::string_view key) = 0;
};

}  // namespace baton::framework

#endif  // BATON_FRAMEWORK_TRANSACTION_H_

// The stable-store contract: the one place where baton keeps state between
// requests. Every backend (embedded RocksDB, replicated etcd) implements it,
// and the framework's request pipeline is written against it alone.
//
// Model
//   Keys and values are byte strings. Every present key has a version > 0;
//   version 0 means "absent". A version is the store-wide revision of the
//   commit that last wrote the key, so versions only grow: a key deleted and
//   written again gets a version larger than any it had before.
//
// Durability
//   Commit() returns OK only after its writes are durable: fsync'd to the
//   local write-ahead log (embedded backend) or committed by a quorum
//   (replicated backend). Nothing acknowledged is lost by a process crash.
//
// Error codes (absl::Status, gRPC's codes)
//   kAborted            a commit condition failed (conflict). The key that
//                       failed is in ConflictKey(status).
//   kUnknown            the commit's outcome is unknown (e.g. a timeout after
//                       the request was sent). The caller resolves it by
//                       reading, never by blindly re-executing.
//   kUnavailable        the store cannot serve now (closed, disk full, peer
//                       unreachable). Nothing was written; retry later.
//   kDataLoss           corruption detected.
//   kInvalidArgument    malformed call (e.g. a key too large for the backend).
//   kResourceExhausted  a backend limit (request size, operations per commit).
//
// Reserved key space
//   Keys that start with kReservedPrefix belong to the framework (completion
//   records, fencing epochs, client watermarks). The framework refuses
//   application keys in that space, so applications cannot collide with it.
//
// Thread safety: implementations are thread-safe; any number of threads may
// call any method concurrently.
#ifndef BATON_STORAGE_STABLE_STORE_H_
#define BATON_STORAGE_STABLE_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace baton::storage {

// Every key that starts with this byte is reserved for the framework.
inline constexpr std::string_view kReservedPrefix = "\xff";

inline bool IsReservedKey(std::string_view key) {
  return key.substr(0, kReservedPrefix.size()) == kReservedPrefix;
}

// A value together with its version. version == 0 means the key is absent
// (and value is empty).
struct Versioned {
  std::string value;
  uint64_t version = 0;

  bool present() const { return version != 0; }
};

struct KeyValue {
  std::string key;
  std::string value;
  uint64_t version = 0;
};

// A commit succeeds only if `key` currently has `expected_version`
// (0: the key must be absent).
struct Condition {
  std::string key;
  uint64_t expected_version = 0;
};

struct Write {
  enum class Kind { kPut, kDelete };
  Kind kind = Kind::kPut;
  std::string key;
  std::string value;  // Empty for kDelete.

  static Write Put(std::string key, std::string value) {
    return Write{Kind::kPut, std::move(key), std::move(value)};
  }
  static Write Delete(std::string key) {
    return Write{Kind::kDelete, std::move(key), {}};
  }
};

struct ScanOptions {
  // Only keys that start with this prefix.
  std::string prefix;
  // Resume after this key (exclusive); empty: start at the prefix.
  std::string start_after;
  // At most this many entries. Default: 1000.
  size_t limit = 1000;
};

// A number an operator watches (statistics page, Prometheus metrics).
struct StoreStatistic {
  // snake_case, unique within a backend, e.g. "commits"; exported as the
  // metric baton_store_<name> (counters get a _total suffix).
  std::string name;
  double value = 0;
  std::string help;
  bool counter = true;  // false: a gauge (may go down).
};

// How fresh a read must be.
enum class ReadConsistency {
  // Linearizable: the read reflects every commit acknowledged before the call
  // started (what Get() always does).
  kLatest,
  // May reflect an older committed state (e.g. a replica's local copy that
  // has not applied the newest commits yet). Never shows uncommitted data:
  // every (value, version) it returns is one the key really had, so a caller
  // that puts the versions it read into a later commit's conditions learns
  // at commit time whether they were current (a stale one fails the
  // condition). Cheaper than kLatest on replicated backends (etcd: no
  // round of the leader's read index); the same read on the embedded one.
  kMayBeStale,
};

struct ReadOptions {
  // Default: kLatest.
  ReadConsistency consistency = ReadConsistency::kLatest;
};

class StableStore {
 public:
  virtual ~StableStore() = default;

  // The current value and version of `key`; {"" , 0} when absent.
  [[nodiscard]] virtual absl::StatusOr<Versioned> Get(std::string_view key) = 0;

  // Reads several keys in one call (one round trip on a remote backend):
  // result[i] is keys[i]'s value and version ({"", 0} when absent), with the
  // freshness `options` asks for. With kLatest every result is at least as
  // new as a Get() started with this call. The results need not come from
  // one snapshot (a backend may read in several steps; etcd reads up to
  // max_txn_ops keys in one snapshot). Errors: those of Get(). The default
  // calls Get() for each key (kLatest satisfies both consistencies).
  [[nodiscard]] virtual absl::StatusOr<std::vector<Versioned>> GetMany(
      const std::vector<std::string>& keys, const ReadOptions& options) {
    (void)options;
    std::vector<Versioned> out;
    out.reserve(keys.size());
    for (const std::string& key : keys) {
      absl::StatusOr<Versioned> v = Get(key);
      if (!v.ok()) return v.status();
      out.push_back(*std::move(v));
    }
    return out;
  }

  // Present keys in key order, per `options`.
  [[nodiscard]] virtual absl::StatusOr<std::vector<KeyValue>> Scan(
      const ScanOptions& options) = 0;

  // Atomically: if every condition holds, apply every write. All or nothing;
  // durable before OK is returned. Returns the revision assigned to the
  // writes (the new version of every written key). A commit with no writes
  // only checks its conditions and returns the current revision.
  [[nodiscard]] virtual absl::StatusOr<uint64_t> Commit(
      const std::vector<Condition>& conditions,
      const std::vector<Write>& writes) = 0;

  // Called once with a commit's outcome (what Commit() would return).
  using CommitCallback = absl::AnyInvocable<void(absl::StatusOr<uint64_t>)>;

  // Commit() without parking the calling thread: `done` is called exactly
  // once with the result, after the writes are durable (same guarantees and
  // error codes as Commit()). `done` may run on the calling thread before
  // CommitAsync returns (e.g. a refused commit, or a backend without native
  // asynchronous commits) or on a store thread; it must be short and must
  // not block (hand longer work to an executor). The default runs Commit()
  // inline, so it blocks like Commit(); see CommitsAsynchronously().
  virtual void CommitAsync(std::vector<Condition> conditions,
                           std::vector<Write> writes, CommitCallback done) {
    done(Commit(conditions, writes));
  }

  // True when CommitAsync() returns without waiting for the disk or the
  // network (Get and Scan are then also expected to be fast, local reads),
  // so callers may run whole requests on event-loop threads. Default: false.
  virtual bool CommitsAsynchronously() const { return false; }

  // True when GetMany with ReadConsistency::kMayBeStale is cheaper than a
  // latest read (a replicated store answering from a member's local state).
  // The request pipeline reads stale-allowed, and skips reads that its
  // commit conditions make redundant, only then; on a store whose reads are
  // local anyway it keeps its latest reads. Default: false.
  virtual bool StaleReadsAreCheaper() const { return false; }

  // OK when the store can currently accept commits. Cheap; used by health
  // checks (e.g. the take-over agent stops campaigning when this fails).
  [[nodiscard]] virtual absl::Status Ping() = 0;

  // Which backend this is ("rocksdb", "etcd", "memory"), for status pages.
  virtual std::string Kind() const { return "unknown"; }

  // The most conditions, and the most writes, that one Commit() accepts
  // (a commit over it is refused with kResourceExhausted); 0 = no limit.
  // Callers that batch their own work (e.g. the pipeline's garbage
  // collection) size their commits to it. Default: 0.
  virtual size_t MaxCommitOps() const { return 0; }

  // The backend's counters and gauges, for operators. Cheap (no I/O).
  // Default: none.
  virtual std::vector<StoreStatistic> Statistics() const { return {}; }
};

// Conflicts: a kAborted status whose payload names the key that failed.
inline constexpr std::string_view kConflictKeyPayload =
    "type.baton.dev/conflict-key";

// Debian's abseil is built with its own absl::string_view (not an alias of
// std::string_view), hence the explicit conversions below.
inline absl::string_view ToAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

inline absl::Status ConflictError(std::string_view key) {
  absl::Status s = absl::AbortedError(absl::StrCat(
      "commit condition failed on key \"", absl::CHexEscape(ToAbsl(key)), "\""));
  s.SetPayload(ToAbsl(kConflictKeyPayload), absl::Cord(ToAbsl(key)));
  return s;
}

inline bool IsConflict(const absl::Status& s) {
  return s.code() == absl::StatusCode::kAborted;
}

// The key named by a conflict status, if any.
inline std::optional<std::string> ConflictKey(const absl::Status& s) {
  absl::optional<absl::Cord> p = s.GetPayload(ToAbsl(kConflictKeyPayload));
  if (!p) return std::nullopt;
  return std::string(*p);
}

}  // namespace baton::storage

#endif  // BATON_STORAGE_STABLE_STORE_H_

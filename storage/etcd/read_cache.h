// EtcdStore's cache for kMayBeStale reads: what this process last saw of a
// key it reads (from etcd, or from its own later commits of that key), with
// the revision at which it saw it. A stale-allowed read that finds every key here needs no
// round trip to etcd.
//
// Why this is safe: kMayBeStale promises only that each (value, version)
// returned is one the key really had (storage/stable_store.h). Every entry
// is such a state: it came from an etcd response or from a commit etcd
// acknowledged. Callers put the versions they read into their commit
// conditions, so a stale entry costs a failed condition, never a wrong
// write; the store forgets the key that failed, and the caller's latest
// re-read (Get / GetMany kLatest) refreshes it.
//
// Bounded: entries are evicted least recently used first once the bytes of
// keys and values (plus kEntryOverheadBytes each) exceed the capacity. An
// observation older than the one held (smaller revision) is ignored, so a
// slow read cannot replace what a later commit wrote.
//
// Thread-safe (one mutex; every operation is O(1) expected).
#ifndef BATON_STORAGE_ETCD_READ_CACHE_H_
#define BATON_STORAGE_ETCD_READ_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "storage/stable_store.h"

namespace baton::storage::etcd_internal {

class ReadCache {
 public:
  // Bookkeeping charged per entry on top of its key and value.
  static constexpr size_t kEntryOverheadBytes = 96;

  // capacity_bytes == 0: the cache holds nothing (every Lookup misses).
  explicit ReadCache(size_t capacity_bytes) : capacity_(capacity_bytes) {}
  ReadCache(const ReadCache&) = delete;
  ReadCache& operator=(const ReadCache&) = delete;

  // What the key was when last seen ({"", 0}: absent), or nullopt when it is
  // not cached. Marks it most recently used.
  std::optional<Versioned> Lookup(std::string_view key);

  // The key had `value` at revision `as_of` (value.version == 0: absent).
  // Ignored when the cache already holds an observation at a newer revision,
  // or when the entry alone exceeds the capacity.
  void Observe(std::string_view key, const Versioned& value, uint64_t as_of);

  // Observe() for a key the cache already holds; nothing otherwise. For what
  // this process writes: a key it has not read (a completion record, an
  // index entry) would only take the place of one it reads.
  void Refresh(std::string_view key, const Versioned& value, uint64_t as_of);

  // Drops the key (its state is unknown, or known to differ).
  void Forget(std::string_view key);

  size_t bytes() const;
  size_t entries() const;

 private:
  struct Entry {
    std::string key;
    Versioned value;
    uint64_t as_of = 0;
    size_t Charge() const { return key.size() + value.value.size() + kEntryOverheadBytes; }
  };
  using List = std::list<Entry>;

  // Observe (insert) or Refresh (!insert).
  void Put(std::string_view key, const Versioned& value, uint64_t as_of, bool insert);
  void EraseLocked(List::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t capacity_;
  mutable absl::Mutex mu_;
  List lru_ ABSL_GUARDED_BY(mu_);  // front: most recently used
  // Keys view the list nodes' own strings (list nodes never move).
  absl::flat_hash_map<std::string_view, List::iterator> index_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace baton::storage::etcd_internal

#endif  // BATON_STORAGE_ETCD_READ_CACHE_H_

#include "storage/etcd/read_cache.h"

#include <utility>

namespace baton::storage::etcd_internal {

std::optional<Versioned> ReadCache::Lookup(std::string_view key) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (it == index_.end()) return std::nullopt;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->value;
}

void ReadCache::Observe(std::string_view key, const Versioned& value, uint64_t as_of) {
  Put(key, value, as_of, /*insert=*/true);
}

void ReadCache::Refresh(std::string_view key, const Versioned& value, uint64_t as_of) {
  Put(key, value, as_of, /*insert=*/false);
}

void ReadCache::Put(std::string_view key, const Versioned& value, uint64_t as_of, bool insert) {
  const size_t charge = key.size() + value.value.size() + kEntryOverheadBytes;
  absl::MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (it != index_.end()) {
    if (it->second->as_of > as_of) return;
    EraseLocked(it->second);
  } else if (!insert) {
    return;
  }
  if (charge > capacity_) return;
  while (bytes_ + charge > capacity_ && !lru_.empty()) EraseLocked(std::prev(lru_.end()));
  lru_.push_front(Entry{std::string(key), value, as_of});
  index_.emplace(lru_.front().key, lru_.begin());
  bytes_ += charge;
}

void ReadCache::Forget(std::string_view key) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (it != index_.end()) EraseLocked(it->second);
}

void ReadCache::EraseLocked(List::iterator it) {
  bytes_ -= it->Charge();
  index_.erase(std::string_view(it->key));
  lru_.erase(it);
}

size_t ReadCache::bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

size_t ReadCache::entries() const {
  absl::MutexLock lock(&mu_);
  return lru_.size();
}

}  // namespace baton::storage::etcd_internal

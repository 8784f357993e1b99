// Internal to the etcd backend: how many commits per second an etcd
// database quota holds for a given record retention (pure arithmetic, for
// the store's capacity warning and its sustainable_commit_rate statistic;
// docs/etcd.md "Capacity planning").
//
// Model: every commit leaves about bytes_per_commit in etcd's database for
// `retention` (the framework's completion record and its index entry live
// that long when clients never acknowledge) plus, once overwritten or
// deleted, as history until compaction removes it (`history`: up to two
// compaction intervals with the store's compaction). Only
// kUsableQuotaFraction of the quota is counted on: etcd's database file
// (bbolt) reuses freed pages but never shrinks without a defragmentation,
// so the live data must leave room for fragmentation and bursts.
#ifndef BATON_STORAGE_ETCD_CAPACITY_H_
#define BATON_STORAGE_ETCD_CAPACITY_H_

#include <cstdint>

namespace baton::storage::etcd_internal {

inline constexpr double kUsableQuotaFraction = 0.5;
// etcd database bytes per byte of keys and values committed: measured with
// the kv service on etcd 3.4 (197 B of keys and values per request took
// 412 B of database: bbolt pages, revision keys, the key index).
inline constexpr double kDbBytesPerWrittenByte = 2.1;
// Assumed before any commit was seen: the kv service's 412 B, rounded up.
inline constexpr double kAssumedBytesPerCommit = 512;

// Database bytes per commit from what a store wrote: `written_bytes` of keys
// and values over `commits` commits (kAssumedBytesPerCommit when none).
inline double BytesPerCommit(uint64_t written_bytes, uint64_t commits) {
  if (commits == 0 || written_bytes == 0) return kAssumedBytesPerCommit;
  return kDbBytesPerWrittenByte * static_cast<double>(written_bytes) /
         static_cast<double>(commits);
}

// Commits per second the quota holds with records kept `retention_s` and
// history kept `history_s` (0 when the inputs make no sense).
inline double SustainableCommitRate(uint64_t quota_bytes, double retention_s, double history_s,
                                    double bytes_per_commit) {
  const double lifetime_s = retention_s + history_s;
  if (lifetime_s <= 0 || bytes_per_commit <= 0) return 0;
  return kUsableQuotaFraction * static_cast<double>(quota_bytes) / (lifetime_s * bytes_per_commit);
}

}  // namespace baton::storage::etcd_internal

#endif  // BATON_STORAGE_ETCD_CAPACITY_H_

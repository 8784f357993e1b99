#include "storage/etcd/commit_queue.h"

#include <algorithm>
#include <string_view>

#include "absl/container/flat_hash_set.h"

namespace baton::storage::etcd_internal {

CommitQueue::CommitQueue(Options options) : options_(options) {}

std::vector<CommitBatch> CommitQueue::Add(PendingCommit* commit, int64_t now_ns) {
  queue_.push_back(commit);
  return Release(now_ns);
}

std::vector<CommitBatch> CommitQueue::Done(uint64_t id, int64_t now_ns) {
  in_flight_.erase(std::remove_if(in_flight_.begin(), in_flight_.end(),
                                  [id](const Sent& s) { return s.id == id; }),
                   in_flight_.end());
  return Release(now_ns);
}

std::vector<CommitBatch> CommitQueue::Tick(int64_t now_ns) { return Release(now_ns); }

std::optional<int64_t> CommitQueue::NextTick() const {
  if (queue_.empty() || options_.stuck_after_ns <= 0) return std::nullopt;
  if (in_flight_.size() >= std::max<size_t>(options_.max_in_flight, 1) + kMaxStuckBatches) {
    return std::nullopt;  // only an answer frees a place now
  }
  size_t stuck = 0;
  for (const Sent& s : in_flight_) stuck += s.stuck ? 1 : 0;
  std::optional<int64_t> next;
  for (const Sent& s : in_flight_) {
    if (s.stuck) continue;
    const int64_t at = s.sent_ns + StuckAfter(stuck);
    if (!next || at < *next) next = at;
  }
  return next;
}

int64_t CommitQueue::StuckAfter(size_t stuck) const {
  return options_.stuck_after_ns << std::min<size_t>(stuck, 20);
}

size_t CommitQueue::Unstuck(int64_t now_ns) {
  size_t stuck = 0;
  for (const Sent& s : in_flight_) stuck += s.stuck ? 1 : 0;
  size_t n = 0;
  // In the order they were sent (oldest first).
  for (Sent& s : in_flight_) {
    if (!s.stuck && options_.stuck_after_ns > 0 && now_ns - s.sent_ns >= StuckAfter(stuck)) {
      s.stuck = true;
      ++stuck;
      ++stuck_batches_;
    }
    if (!s.stuck) ++n;
  }
  return n;
}

std::vector<CommitBatch> CommitQueue::Release(int64_t now_ns) {
  std::vector<CommitBatch> out;
  const size_t max_in_flight = std::max<size_t>(options_.max_in_flight, 1);
  while (!queue_.empty() && in_flight_.size() < max_in_flight + kMaxStuckBatches &&
         Unstuck(now_ns) < max_in_flight) {
    CommitBatch b = Pick();
    in_flight_.push_back(Sent{b.id, now_ns, false});
    out.push_back(std::move(b));
  }
  return out;
}

CommitBatch CommitQueue::Pick() {
  CommitBatch batch;
  batch.id = next_id_++;
  // Keys the batch writes, and every key it compares or writes (see the
  // batching rule in the header).
  absl::flat_hash_set<std::string_view> written, touched;
  size_t bytes = 0;
  // etcd checks a nested Txn against max_txn_ops minus the ops of the Txn
  // around it: members + the largest member's ops must stay within it.
  size_t max_ops = 0;
  const size_t max_members = std::max<size_t>(options_.max_members, 1);
  std::vector<bool> taken(queue_.size(), false);
  auto hits = [](const std::vector<std::string>& keys,
                 const absl::flat_hash_set<std::string_view>& set) {
    for (const std::string& k : keys) {
      if (set.contains(k)) return true;
    }
    return false;
  };
  for (size_t i = 0; i < queue_.size() && batch.members.size() < max_members; ++i) {
    PendingCommit* p = queue_[i];
    const size_t ops = OpsOf(*p);
    if (!batch.members.empty()) {
      if (batch.members.size() + 1 + std::max(max_ops, ops) > max_members) continue;
      if (bytes + p->bytes + kNestingBytes > options_.byte_budget) continue;
      if (hits(p->written, touched) || hits(p->compared, written)) continue;
    }
    batch.members.push_back(p);
    taken[i] = true;
    bytes += p->bytes + kNestingBytes;
    max_ops = std::max(max_ops, ops);
    for (const std::string& k : p->written) {
      written.insert(k);
      touched.insert(k);
    }
    for (const std::string& k : p->compared) touched.insert(k);
  }
  std::deque<PendingCommit*> rest;
  for (size_t i = 0; i < queue_.size(); ++i) {
    if (!taken[i]) rest.push_back(queue_[i]);
  }
  queue_.swap(rest);
  return batch;
}

}  // namespace baton::storage::etcd_internal

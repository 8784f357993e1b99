// Internal to the etcd backend: the group-commit queue's decisions, without
// I/O or clocks (the store drives it, passing the time in). Which waiting
// commits go together in one Txn, and when the next batch may go out.
//
// Batching rule: etcd evaluates every compare of a Txn, nested ones
// included, on the state before any of its writes. A commit therefore joins
// a batch only if it writes no key that an earlier member compares or
// writes, and compares no key that an earlier member writes; otherwise it
// waits for a later batch. A batch is then equivalent to its members run one
// after another in queue order, and etcd's refusal of a key written twice in
// one Txn never triggers. A batch stops at byte_budget, and when its
// members plus the largest member's ops (OpsOf) would pass max_members:
// etcd allows a nested Txn max_txn_ops minus the ops of the Txn around it.
//
// Release rule: a batch goes out while fewer than max_in_flight batches are
// in flight and not stuck. A batch in flight for stuck_after_ns or longer is
// stuck: it no longer holds the commits behind it back, so one Txn that
// etcd holds until its deadline (a proposal lost with a dead leader) does
// not stall every commit of the process. Each batch already stuck doubles
// the time the next needs to count as stuck (stuck_after_ns, then 2x, 4x,
// ...), and at most kMaxStuckBatches are in flight besides: a member
// without a leader for a while gets a few probing batches, not a flood, and
// one sent after its new leader arrived gets through. Batches in flight
// together are separate Txns, each atomic on its own.
//
// Thread-compatible: the owner serializes calls (the store holds a mutex).
#ifndef BATON_STORAGE_ETCD_COMMIT_QUEUE_H_
#define BATON_STORAGE_ETCD_COMMIT_QUEUE_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

namespace baton::storage::etcd_internal {

// A commit as the queue sees it; the owner derives its own type from it and
// keeps ownership.
struct PendingCommit {
  virtual ~PendingCommit() = default;
  // etcd keys (prefixed) the commit compares and writes.
  std::vector<std::string> compared;
  std::vector<std::string> written;
  // Encoded size of its Txn.
  size_t bytes = 0;
};

// The ops etcd counts for a commit's own Txn against --max-txn-ops: the
// larger of its compares (each with a Range in the failure branch) and its
// writes.
inline size_t OpsOf(const PendingCommit& c) {
  return std::max(c.compared.size(), c.written.size());
}

// Commits to send together, as one Txn (one member: its own Txn).
struct CommitBatch {
  uint64_t id = 0;
  std::vector<PendingCommit*> members;
};

class CommitQueue {
 public:
  // Stuck batches allowed in flight besides max_in_flight.
  static constexpr size_t kMaxStuckBatches = 8;
  // A nested Txn costs its own encoding plus this much in the outer one
  // (tag, length and the RequestOp around it).
  static constexpr size_t kNestingBytes = 16;

  struct Options {
    // Batches in flight that are not stuck. At least 1.
    size_t max_in_flight = 1;
    // 0: a batch is never stuck.
    int64_t stuck_after_ns = 0;
    // etcd's --max-txn-ops: a batch of n members whose largest has k ops
    // needs n + k <= max_members (one commit alone: any size). At least 1.
    size_t max_members = 128;
    // Encoded bytes of one batch's Txn.
    size_t byte_budget = 1 << 20;
  };

  explicit CommitQueue(Options options);

  // Queues `commit` at time `now_ns`; returns the batches to send now, in
  // order.
  std::vector<CommitBatch> Add(PendingCommit* commit, int64_t now_ns);
  // Batch `id` was answered; returns the batches that may go now.
  std::vector<CommitBatch> Done(uint64_t id, int64_t now_ns);
  // Time passed; returns the batches that may go because others got stuck.
  std::vector<CommitBatch> Tick(int64_t now_ns);
  // When Tick() may next release a batch (commits are waiting and an
  // in-flight batch will become stuck then); nullopt: not by time.
  std::optional<int64_t> NextTick() const;

  size_t waiting() const { return queue_.size(); }
  size_t in_flight() const { return in_flight_.size(); }
  // Batches that became stuck so far.
  uint64_t stuck_batches() const { return stuck_batches_; }

 private:
  struct Sent {
    uint64_t id = 0;
    int64_t sent_ns = 0;
    bool stuck = false;
  };
  // How long a batch must be in flight to be stuck, with `stuck` others so.
  int64_t StuckAfter(size_t stuck) const;
  // Marks batches stuck as of now_ns; the number not stuck.
  size_t Unstuck(int64_t now_ns);
  std::vector<CommitBatch> Release(int64_t now_ns);
  // The waiting commits that go with the front one (removed from queue_).
  CommitBatch Pick();

  const Options options_;
  std::deque<PendingCommit*> queue_;
  std::vector<Sent> in_flight_;
  uint64_t next_id_ = 1;
  uint64_t stuck_batches_ = 0;
};

}  // namespace baton::storage::etcd_internal

#endif  // BATON_STORAGE_ETCD_COMMIT_QUEUE_H_

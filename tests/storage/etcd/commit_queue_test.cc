// The etcd store's group-commit queue (storage/etcd/commit_queue.h) without
// etcd: which waiting commits share a batch, and when a batch may go out --
// in particular that a batch stuck in flight stops holding back the commits
// behind it after stuck_after_ns, on a simulated clock. Also the health
// probe's verdicts and the capacity arithmetic, which are pure functions.
#include "storage/etcd/commit_queue.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "storage/etcd/capacity.h"
#include "storage/etcd/etcd_client.h"

namespace baton::storage::etcd_internal {
namespace {

constexpr int64_t kMs = 1000000;

std::unique_ptr<PendingCommit> Commit(std::vector<std::string> compared,
                                      std::vector<std::string> written, size_t bytes = 100) {
  auto c = std::make_unique<PendingCommit>();
  c->compared = std::move(compared);
  c->written = std::move(written);
  c->bytes = bytes;
  return c;
}

CommitQueue::Options Opts(int64_t stuck_after_ns) {
  CommitQueue::Options o;
  o.max_in_flight = 1;
  o.stuck_after_ns = stuck_after_ns;
  o.max_members = 128;
  o.byte_budget = 1 << 20;
  return o;
}

TEST(CommitQueueTest, FirstCommitGoesAtOnceAndLaterOnesShareTheNextBatch) {
  CommitQueue q(Opts(0));
  auto a = Commit({"a"}, {"a"});
  auto b = Commit({"b"}, {"b"});
  auto c = Commit({"c"}, {"c"});
  std::vector<CommitBatch> out = q.Add(a.get(), 0);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].members, std::vector<PendingCommit*>{a.get()});
  EXPECT_TRUE(q.Add(b.get(), 1).empty()) << "one batch in flight at a time";
  EXPECT_TRUE(q.Add(c.get(), 2).empty());
  out = q.Done(out[0].id, 3);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].members, (std::vector<PendingCommit*>{b.get(), c.get()}));
}

TEST(CommitQueueTest, CommitsThatTouchAnEarlierMembersWritesWaitForTheNextBatch) {
  CommitQueue q(Opts(0));
  auto first = Commit({"x"}, {"x"});
  std::vector<CommitBatch> out = q.Add(first.get(), 0);
  auto w = Commit({}, {"k"});         // writes k
  auto r = Commit({"k"}, {"r"});      // compares k: must see w's write
  auto w2 = Commit({}, {"k"});        // writes k again
  auto other = Commit({"o"}, {"o"});  // independent
  for (PendingCommit* p : {w.get(), r.get(), w2.get(), other.get()}) {
    EXPECT_TRUE(q.Add(p, 0).empty());
  }
  out = q.Done(out[0].id, 1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].members, (std::vector<PendingCommit*>{w.get(), other.get()}));
  out = q.Done(out[0].id, 2);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].members, std::vector<PendingCommit*>{r.get()})
      << "w2 writes the key r compares: kept apart (the rule is conservative)";
  out = q.Done(out[0].id, 3);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].members, std::vector<PendingCommit*>{w2.get()});
}

TEST(CommitQueueTest, BatchStopsAtItsMemberAndByteLimits) {
  CommitQueue::Options o = Opts(0);
  o.max_members = 3;  // two one-op members: 2 + 1
  o.byte_budget = 1000;
  CommitQueue q(o);
  auto first = Commit({}, {"f"});
  std::vector<CommitBatch> out = q.Add(first.get(), 0);
  auto a = Commit({}, {"a"}, 600);
  auto b = Commit({}, {"b"}, 600);  // a + b > budget
  auto c = Commit({}, {"c"}, 100);
  auto d = Commit({}, {"d"}, 100);
  for (PendingCommit* p : {a.get(), b.get(), c.get(), d.get()}) q.Add(p, 0);
  out = q.Done(out[0].id, 1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].members, (std::vector<PendingCommit*>{a.get(), c.get()}));
  out = q.Done(out[0].id, 2);
  EXPECT_EQ(out[0].members, (std::vector<PendingCommit*>{b.get(), d.get()}));
}

// etcd checks a nested Txn against max_txn_ops minus the outer Txn's ops:
// 128 one-op commits in one batch were refused ("too many operations in
// txn request") and came back kResourceExhausted.
TEST(CommitQueueTest, MembersAndTheLargestMembersOpsFitMaxTxnOps) {
  CommitQueue::Options o = Opts(0);
  o.max_members = 128;
  CommitQueue q(o);
  auto first = Commit({}, {"f"});
  std::vector<CommitBatch> out = q.Add(first.get(), 0);
  std::vector<std::unique_ptr<PendingCommit>> small;
  for (int i = 0; i < 200; ++i) {
    small.push_back(Commit({"c" + std::to_string(i)}, {"w" + std::to_string(i)}));
    q.Add(small.back().get(), 0);
  }
  out = q.Done(out[0].id, 1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].members.size(), 127u);  // 127 + 1 op each = 128

  // A member with 100 ops leaves room for 27 others.
  CommitQueue q2(o);
  out = q2.Add(first.get(), 0);
  std::vector<std::string> many;
  for (int i = 0; i < 100; ++i) many.push_back("m" + std::to_string(i));
  auto big = Commit({}, many);
  q2.Add(big.get(), 0);
  for (int i = 0; i < 50; ++i) q2.Add(small[static_cast<size_t>(i)].get(), 0);
  out = q2.Done(out[0].id, 1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].members.size(), 28u);  // big + 27: 28 + 100 = 128
  EXPECT_EQ(out[0].members[0], big.get());
  size_t largest = 0;
  for (PendingCommit* p : out[0].members) largest = std::max(largest, OpsOf(*p));
  EXPECT_LE(out[0].members.size() + largest, 128u);
}

// The regression: a batch that etcd does not answer (a proposal lost with a
// dead leader waits for its deadline) held every later commit of the
// process. After stuck_after_ns it no longer counts against max_in_flight.
TEST(CommitQueueTest, StuckBatchStopsHoldingBackTheCommitsBehindIt) {
  CommitQueue q(Opts(100 * kMs));
  auto stuck = Commit({}, {"s"});
  std::vector<CommitBatch> out = q.Add(stuck.get(), 0);
  ASSERT_EQ(out.size(), 1u);
  const uint64_t stuck_id = out[0].id;
  auto next = Commit({}, {"n"});
  EXPECT_TRUE(q.Add(next.get(), 10 * kMs).empty());
  ASSERT_EQ(q.NextTick(), std::optional<int64_t>(100 * kMs))
      << "the owner must be woken when the batch in flight turns stuck";
  EXPECT_TRUE(q.Tick(99 * kMs).empty());
  out = q.Tick(100 * kMs);
  ASSERT_EQ(out.size(), 1u) << "the commit behind a stuck batch goes out";
  EXPECT_EQ(out[0].members, std::vector<PendingCommit*>{next.get()});
  EXPECT_EQ(q.stuck_batches(), 1u);
  EXPECT_EQ(q.in_flight(), 2u);

  // The stuck one answers late: nothing else waits, nothing breaks.
  EXPECT_TRUE(q.Done(stuck_id, 5000 * kMs).empty());
  EXPECT_EQ(q.in_flight(), 1u);
}

// While nothing is answered (a member without a leader), each further
// batch waits twice as long as the one before to count as stuck, and their
// number is bounded.
TEST(CommitQueueTest, StuckBatchesBackOffAndAreBounded) {
  CommitQueue q(Opts(10 * kMs));
  std::vector<std::unique_ptr<PendingCommit>> commits;
  std::vector<int64_t> sent_at;
  // All write one key: one commit per batch.
  for (int i = 0; i < 64; ++i) commits.push_back(Commit({}, {"k"}));
  size_t next = 0;
  auto note = [&](const std::vector<CommitBatch>& out, int64_t now) {
    for (size_t i = 0; i < out.size(); ++i) sent_at.push_back(now);
  };
  note(q.Add(commits[next++].get(), 0), 0);
  while (next < commits.size()) q.Add(commits[next++].get(), 0);  // all waiting
  for (int i = 0; i < 1000 && q.NextTick(); ++i) {
    const int64_t now = *q.NextTick();
    note(q.Tick(now), now);
  }
  ASSERT_EQ(sent_at.size(), 1 + CommitQueue::kMaxStuckBatches);
  EXPECT_EQ(q.in_flight(), 1 + CommitQueue::kMaxStuckBatches);
  int64_t gap = 10 * kMs;
  for (size_t i = 1; i < sent_at.size(); ++i, gap *= 2) {
    EXPECT_EQ(sent_at[i] - sent_at[i - 1], gap) << "batch " << i;
  }
  EXPECT_FALSE(q.NextTick().has_value()) << "full: only an answer frees a place";
}

TEST(CommitQueueTest, WithoutStuckAfterABatchHoldsTheNextUntilAnswered) {
  CommitQueue q(Opts(0));
  auto a = Commit({}, {"a"});
  auto b = Commit({}, {"b"});
  std::vector<CommitBatch> out = q.Add(a.get(), 0);
  q.Add(b.get(), 0);
  EXPECT_FALSE(q.NextTick().has_value());
  EXPECT_TRUE(q.Tick(3600000 * kMs).empty());
  EXPECT_EQ(q.Done(out[0].id, 3600000 * kMs).size(), 1u);
}

// ------------------------------------------------------------- probe ----

TEST(ProbeVerdictTest, DeadLeaderlessAndNewTermAreTold) {
  MemberHealth h;
  EXPECT_EQ(JudgeProbe(h, 0), ProbeVerdict::kFailed) << "no answer";
  h.answered = true;
  h.leader = 0;
  h.term = 3;
  EXPECT_EQ(JudgeProbe(h, 3), ProbeVerdict::kFailed) << "no leader";
  h.leader = 7;
  EXPECT_EQ(JudgeProbe(h, 3), ProbeVerdict::kHealthy);
  EXPECT_EQ(JudgeProbe(h, 0), ProbeVerdict::kHealthy) << "first probe: nothing to compare";
  h.term = 4;
  EXPECT_EQ(JudgeProbe(h, 3), ProbeVerdict::kLeaderChanged);
}

TEST(ProbeVerdictTest, PreferredMemberTakesOverOnlyOnceCaughtUp) {
  MemberHealth in_use;
  in_use.answered = true;
  in_use.leader = 1;
  in_use.raft_index = 1000;
  MemberHealth first = in_use;
  first.applied_index = 990;
  EXPECT_FALSE(CaughtUp(first, in_use)) << "still applying the log";
  first.applied_index = 1000;
  EXPECT_TRUE(CaughtUp(first, in_use));
  first.leader = 0;
  EXPECT_FALSE(CaughtUp(first, in_use)) << "no leader";
}

// -------------------------------------------- where a call goes next ----

TEST(MemberRankTest, ProbesAndCallFailuresRankAMember) {
  const int64_t silent_after = 150 * kMs;
  const int64_t now = 10000 * kMs;
  MemberView m;
  EXPECT_EQ(RankMember(m, now, silent_after), MemberRank::kUnknown) << "never probed";
  m.answered = true;
  m.answered_ns = now - 50 * kMs;
  m.has_leader = true;
  EXPECT_EQ(RankMember(m, now, silent_after), MemberRank::kReady);
  m.has_leader = false;
  EXPECT_EQ(RankMember(m, now, silent_after), MemberRank::kNoLeader);
  m.has_leader = true;
  m.call_failed_ns = now - 10 * kMs;
  EXPECT_EQ(RankMember(m, now, silent_after), MemberRank::kSuspect)
      << "a call failed after its last answer";
  m.answered_ns = now - 5 * kMs;
  EXPECT_EQ(RankMember(m, now, silent_after), MemberRank::kReady) << "heard from again";
  m.probe_sent_ns = now - 100 * kMs;
  EXPECT_EQ(RankMember(m, now, silent_after), MemberRank::kReady) << "probe still young";
  m.probe_sent_ns = now - 151 * kMs;
  EXPECT_EQ(RankMember(m, now, silent_after), MemberRank::kSilent)
      << "probe unanswered for longer than silent_after (a crashed host)";
  m.probe_sent_ns = 0;
  m.probe_failed = true;
  EXPECT_EQ(RankMember(m, now, silent_after), MemberRank::kSilent) << "probe got no answer";
  m.probe_failed = false;
  m.marked_failed = true;
  EXPECT_EQ(RankMember(m, now, silent_after), MemberRank::kSilent)
      << "failed the probe of the member in use";
}

// The etcd-leader crash: the host's own member (listed first) refused the
// call (its leader died); the dead leader is listed second and its probe
// went unanswered; the third answers. The call must go to the third, not
// wait on the dead member (the old walk went on in list order: 0, 1, 2).
TEST(MemberRankTest, CallSkipsASilentMemberAndPrefersOnesWithALeader) {
  using R = MemberRank;
  EXPECT_EQ(NextMember({R::kReady, R::kSilent, R::kReady}, {true, false, false}), 2u);
  EXPECT_EQ(NextMember({R::kReady, R::kSilent, R::kNoLeader}, {true, false, false}), 2u)
      << "a member without a leader refuses at once; the silent one is not tried";
  EXPECT_EQ(NextMember({R::kReady, R::kSilent, R::kNoLeader}, {true, false, true}),
            std::nullopt)
      << "only a silent member left: the call ends (unavailable) instead of waiting on it";
  EXPECT_EQ(NextMember({R::kSuspect, R::kNoLeader, R::kReady}, {false, false, false}), 2u)
      << "those that answered with a leader first";
  EXPECT_EQ(NextMember({R::kUnknown, R::kSuspect, R::kUnknown}, {false, true, false}), 0u)
      << "equal ranks: list order (the host's own member first)";
  EXPECT_EQ(NextMember({R::kSilent, R::kSilent, R::kSilent}, {true, false, false}), 1u)
      << "every member silent: nothing is known, each is tried in turn";
  EXPECT_EQ(NextMember({R::kReady, R::kReady}, {true, true}), std::nullopt);
}

// ---------------------------------------------------------- capacity ----

TEST(CapacityTest, QuotaRetentionAndRateAgree) {
  // The figures: 412 B per request, 24 h, 2 GiB: about 60/s at the
  // full quota, so about 30/s at the usable half.
  const double rate = SustainableCommitRate(2ull << 30, 86400, 0, 412);
  EXPECT_NEAR(rate, 0.5 * (2ull << 30) / (86400.0 * 412), 1e-9);
  EXPECT_GT(rate, 29);
  EXPECT_LT(rate, 31);
  EXPECT_EQ(SustainableCommitRate(2ull << 30, 0, 0, 412), 0);
  EXPECT_EQ(BytesPerCommit(0, 0), kAssumedBytesPerCommit);
  EXPECT_DOUBLE_EQ(BytesPerCommit(197 * 1000, 1000), 197 * kDbBytesPerWrittenByte);
}

}  // namespace
}  // namespace baton::storage::etcd_internal

// The embedded take-over agent's liveness judgement (framework/agent_liveness.h)
// on simulated rounds: progress, a hang, a server waiting on its store, a
// store stuck beyond its bound, a starved server, the loop's own stall.
#include "framework/agent_liveness.h"

#include <optional>
#include <vector>

#include "gtest/gtest.h"

namespace baton::framework {
namespace {

using takeover::CpuWaitSample;

constexpr absl::Duration kRound = absl::Milliseconds(50);  // 300 ms / 6

// Rounds of the liveness loop, back to back, on simulated time.
class Rounds {
 public:
  Rounds() : judge_(LivenessJudge::Options{}, t_) {}

  // One round without progress, `store_wait` into a wait on the store.
  LivenessJudge::Verdict Silent(absl::Duration store_wait = absl::ZeroDuration(),
                                std::optional<CpuWaitSample> sample = std::nullopt) {
    return Next(false, store_wait, sample);
  }
  LivenessJudge::Verdict Progress() { return Next(true, absl::ZeroDuration(), {}); }
  // The loop's own thread did not run for `d`.
  void Stall(absl::Duration d) { t_ += d; }
  absl::Duration elapsed() const { return t_ - start_; }
  int samples() const { return samples_; }
  const LivenessJudge& judge() const { return judge_; }

 private:
  LivenessJudge::Verdict Next(bool progress, absl::Duration store_wait,
                              std::optional<CpuWaitSample> sample) {
    LivenessJudge::Round r;
    r.began = t_;
    t_ += kRound;
    r.ended = t_;
    r.progress = progress;
    r.store_wait = store_wait;
    return judge_.Judge(r, [&] {
      ++samples_;
      return sample;
    });
  }

  const absl::Time start_ = absl::FromUnixSeconds(1'700'000'000);
  absl::Time t_ = start_;
  LivenessJudge judge_;
  int samples_ = 0;
};

TEST(LivenessJudgeTest, ARoundWithProgressIsLiveAndSendsTheKeepalive) {
  Rounds r;
  EXPECT_EQ(r.judge().interval(), kRound);
  for (int i = 0; i < 10; ++i) {
    const LivenessJudge::Verdict v = r.Progress();
    EXPECT_TRUE(v.live);
    EXPECT_TRUE(v.keepalive);
    EXPECT_FALSE(v.on_store);
  }
}

// A stopped server (the sample says so: nullopt) is hung after `liveness`,
// and no keepalive goes out during its silence.
TEST(LivenessJudgeTest, ASilenceWithNothingWaitingIsAHangAfterTheLiveness) {
  Rounds r;
  r.Progress();
  std::optional<absl::Duration> hung_after;
  for (int i = 0; i < 20 && !hung_after; ++i) {
    const LivenessJudge::Verdict v = r.Silent();
    EXPECT_FALSE(v.keepalive);
    if (!v.live) hung_after = v.silence;
  }
  ASSERT_TRUE(hung_after.has_value());
  EXPECT_EQ(*hung_after, absl::Milliseconds(300));
}

// The soak's false moves (issue 14): an etcd stall of a few hundred ms held
// every event-loop thread in a store read, the probe could not run, and the
// agent gave the addresses away -- to peers on the same store. While
// requests wait on the store, the silence is the store's: live, and the
// keepalive goes on.
TEST(LivenessJudgeTest, ASilenceWhileRequestsWaitOnTheStoreIsNotAHang) {
  Rounds r;
  r.Progress();
  for (int i = 1; i <= 11; ++i) {  // 550 ms of store wait
    const LivenessJudge::Verdict v = r.Silent(i * kRound);
    EXPECT_TRUE(v.live) << "round " << i;
    EXPECT_TRUE(v.keepalive) << "round " << i;
    EXPECT_TRUE(v.on_store) << "round " << i;
  }
  EXPECT_EQ(r.samples(), 0) << "the CPU is not sampled for a store wait";
  const LivenessJudge::Verdict v = r.Progress();
  EXPECT_TRUE(v.live);
  EXPECT_FALSE(v.on_store);
}

// Longer than a stall (an etcd election, or a store slow only from this
// host): at health_check.liveness_store (600 ms by default) the silence is
// the server's again, judged on all of it.
TEST(LivenessJudgeTest, AStoreWaitAtTheStoreBoundIsAHang) {
  Rounds r;
  r.Progress();
  std::optional<absl::Duration> hung_at_wait;
  for (int i = 1; i <= 100 && !hung_at_wait; ++i) {
    const LivenessJudge::Verdict v = r.Silent(i * kRound);
    if (!v.live) {
      hung_at_wait = i * kRound;
      EXPECT_FALSE(v.keepalive);
      EXPECT_FALSE(v.on_store);
      EXPECT_EQ(v.silence, i * kRound);
    }
  }
  ASSERT_TRUE(hung_at_wait.has_value());
  EXPECT_EQ(*hung_at_wait, absl::Milliseconds(600));
}

// The store answered, but the loop still does not run the probe: a hang,
// judged on the silence since the last progress (not from the store's
// answer on).
TEST(LivenessJudgeTest, ASilenceThatOutlastsTheStoreWaitIsJudgedWhole) {
  Rounds r;
  r.Progress();
  for (int i = 1; i <= 8; ++i) EXPECT_TRUE(r.Silent(i * kRound).live);
  const LivenessJudge::Verdict v = r.Silent();  // nothing waits any more
  EXPECT_FALSE(v.live);
  EXPECT_EQ(v.silence, 9 * kRound);
}

// Reads that overlap back to back keep the store "busy" far longer than any
// silence (the lossy-link runs saw 4.4 s): the silence is what is bounded.
TEST(LivenessJudgeTest, ALongBusyStoreStillExcusesAShortSilenceOnly) {
  Rounds r;
  r.Progress();
  const absl::Duration busy = absl::Seconds(5);
  for (int i = 1; i <= 11; ++i) EXPECT_TRUE(r.Silent(busy).live) << "round " << i;
  EXPECT_FALSE(r.Silent(busy).live);
}

// A starved server (a runnable thread) is excused up to liveness_starved.
TEST(LivenessJudgeTest, AStarvedServerIsExcusedUpToLivenessStarved) {
  Rounds r;
  r.Progress();
  CpuWaitSample runnable;
  runnable.runnable = 1;
  std::optional<absl::Duration> hung_after;
  for (int i = 0; i < 60 && !hung_after; ++i) {
    const LivenessJudge::Verdict v = r.Silent(absl::ZeroDuration(), runnable);
    if (!v.live) hung_after = v.silence;
  }
  ASSERT_TRUE(hung_after.has_value());
  EXPECT_EQ(*hung_after, absl::Milliseconds(1500));
  EXPECT_GT(r.samples(), 0);
}

// The loop's own thread not running says nothing about the event loop.
TEST(LivenessJudgeTest, TheLoopsOwnStallIsNotCounted) {
  Rounds r;
  r.Progress();
  r.Stall(absl::Seconds(2));
  for (int i = 0; i < 4; ++i) {  // 200 ms more: below the liveness
    EXPECT_TRUE(r.Silent().live) << "round " << i;
  }
}

}  // namespace
}  // namespace baton::framework

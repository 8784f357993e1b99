// The supervised agent's timing (takeover/daemon/supervisor_schedule.h) on a SimulatedClock: when
// a server restarts its dead agent process, when a child that does not hand over or lingers is
// SIGKILLed, when a child that never says it started fails the start. No process, no sleep.
#include "takeover/daemon/supervisor_schedule.h"

#include <chrono>

#include "gtest/gtest.h"

namespace baton::takeover {
namespace {

using Deadline = SupervisorSchedule::Deadline;

// The delay from now to `d`, in milliseconds.
int64_t InMs(const SimulatedClock& clock, Deadline d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d - clock.MonotonicNow()).count();
}

TEST(SupervisorScheduleTest, CrashLoopBacksOffDoublingUpToTheCap) {
  SimulatedClock clock;
  SupervisorSchedule schedule(clock, SupervisorScheduleOptions{});  // 100 ms .. 5 s
  std::vector<int64_t> delays;
  for (int i = 0; i < 9; ++i) {
    schedule.ChildSpawned();
    clock.Advance(absl::Milliseconds(50));  // dies soon after each start
    const Deadline at = schedule.ChildEnded();
    delays.push_back(InMs(clock, at));
    EXPECT_FALSE(schedule.Due(at));
    clock.Advance(absl::FromChrono(schedule.Until(at)));
    EXPECT_TRUE(schedule.Due(at));
    EXPECT_EQ(schedule.Until(at), std::chrono::nanoseconds(0));
  }
  EXPECT_EQ(delays, (std::vector<int64_t>{100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000}));
}

TEST(SupervisorScheduleTest, ChildThatLivedThirtySecondsIsRestartedAfterTheFirstBackoff) {
  SimulatedClock clock;
  SupervisorSchedule schedule(clock, SupervisorScheduleOptions{});
  for (int i = 0; i < 4; ++i) {  // a crash loop: 100, 200, 400, 800 ms; next 1.6 s
    schedule.ChildSpawned();
    clock.Advance(absl::FromChrono(schedule.Until(schedule.ChildEnded())));
  }
  EXPECT_EQ(schedule.next_backoff(), absl::Milliseconds(1600));
  // A child that lived just under 30 s does not reset it ...
  schedule.ChildSpawned();
  clock.Advance(absl::Seconds(30) - absl::Milliseconds(1));
  EXPECT_EQ(InMs(clock, schedule.ChildEnded()), 1600);
  // ... one that lived 30 s does.
  schedule.ChildSpawned();
  clock.Advance(absl::Seconds(30));
  EXPECT_EQ(InMs(clock, schedule.ChildEnded()), 100);
  EXPECT_EQ(schedule.next_backoff(), absl::Milliseconds(200));
}

TEST(SupervisorScheduleTest, FailedSpawnsKeepDoubling) {
  SimulatedClock clock;
  SupervisorScheduleOptions options;
  options.restart_backoff = absl::Milliseconds(10);
  options.max_restart_backoff = absl::Milliseconds(35);
  SupervisorSchedule schedule(clock, options);
  schedule.ChildSpawned();
  clock.Advance(absl::Hours(1));
  EXPECT_EQ(InMs(clock, schedule.ChildEnded()), 10);
  EXPECT_EQ(InMs(clock, schedule.SpawnFailed()), 20);
  EXPECT_EQ(InMs(clock, schedule.SpawnFailed()), 35);
  EXPECT_EQ(InMs(clock, schedule.SpawnFailed()), 35);
}

TEST(SupervisorScheduleTest, KillDeadlines) {
  SimulatedClock clock;
  SupervisorSchedule schedule(clock, SupervisorScheduleOptions{});
  EXPECT_EQ(InMs(clock, schedule.StartDeadline()), 10'000);
  EXPECT_EQ(InMs(clock, schedule.ShutdownKillDeadline()), 10'000);
  EXPECT_EQ(InMs(clock, schedule.LingerDeadline()), 2'000);
  const Deadline kill = schedule.ShutdownKillDeadline();
  clock.Advance(absl::Milliseconds(9'999));
  EXPECT_FALSE(schedule.Due(kill));
  EXPECT_EQ(schedule.Until(kill), std::chrono::milliseconds(1));
  clock.Advance(absl::Milliseconds(1));
  EXPECT_TRUE(schedule.Due(kill));
}

// The old supervisor measured its deadlines and a child's age on the wall clock (Clock::Now()):
// an NTP step forward SIGKILLed a child in the middle of its hand-over, a step back kept a crash
// loop at its short back-off. Only monotonic time counts.
TEST(SupervisorScheduleTest, WallClockStepsMoveNoDeadline) {
  SimulatedClock clock;
  SupervisorSchedule schedule(clock, SupervisorScheduleOptions{});
  const Deadline kill = schedule.ShutdownKillDeadline();
  clock.Set(clock.Now() + absl::Minutes(5));  // NTP steps the wall clock forward
  EXPECT_FALSE(schedule.Due(kill));
  EXPECT_EQ(schedule.Until(kill), std::chrono::seconds(10));

  schedule.ChildSpawned();
  clock.Advance(absl::Seconds(1));
  clock.Set(clock.Now() + absl::Hours(1));  // a child that lived 1 s is no stable child
  EXPECT_EQ(InMs(clock, schedule.ChildEnded()), 100);
  schedule.ChildSpawned();
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(InMs(clock, schedule.ChildEnded()), 200);  // still doubling
}

}  // namespace
}  // namespace baton::takeover

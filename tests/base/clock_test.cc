// base/clock.h: the one clock of every module -- the simulated clock that tests drive and the
// real clock's time lines.
#include "base/clock.h"

#include <chrono>

#include <gtest/gtest.h>

#include "absl/time/clock.h"

namespace baton {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

TEST(ClockTest, SimulatedClockMovesBothTimeLinesOnlyWhenTold) {
  SimulatedClock clock(absl::FromUnixSeconds(1000), seconds(5));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(1000));
  EXPECT_EQ(clock.MonotonicNow(), seconds(5));
  clock.Advance(absl::Milliseconds(250));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(1000) + absl::Milliseconds(250));
  EXPECT_EQ(clock.MonotonicNow(), seconds(5) + milliseconds(250));
  clock.SleepFor(absl::Seconds(1));  // returns at once, time moved
  EXPECT_EQ(clock.MonotonicNow(), seconds(6) + milliseconds(250));
  clock.Advance(nanoseconds(7));
  EXPECT_EQ(clock.MonotonicNow(), seconds(6) + milliseconds(250) + nanoseconds(7));
  EXPECT_EQ(clock.WallNow(), seconds(1001) + milliseconds(250) + nanoseconds(7));
}

// An NTP step moves the wall clock only; monotonic time never goes backwards.
TEST(ClockTest, WallStepsNeverMoveMonotonicTime) {
  SimulatedClock clock(seconds(100), seconds(1'700'000'000));
  const nanoseconds mono = clock.MonotonicNow();
  clock.SetWall(clock.WallNow() - std::chrono::hours(1));
  EXPECT_EQ(clock.WallNow(), seconds(1'700'000'000) - std::chrono::hours(1));
  clock.Set(absl::FromUnixSeconds(5));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(5));
  clock.Advance(absl::Seconds(-3));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(2));
  EXPECT_EQ(clock.MonotonicNow(), mono);
}

// The real monotonic time is steady_clock's, so asio::steady_timer deadlines computed from it hold.
TEST(ClockTest, RealMonotonicTimeIsOnTheSteadyClockTimeLine) {
  const nanoseconds before = std::chrono::duration_cast<nanoseconds>(
      std::chrono::steady_clock::now().time_since_epoch());
  const nanoseconds mono = RealClock().MonotonicNow();
  const nanoseconds after = std::chrono::duration_cast<nanoseconds>(
      std::chrono::steady_clock::now().time_since_epoch());
  EXPECT_LE(before, mono);
  EXPECT_LE(mono, after);
  EXPECT_LT(absl::AbsDuration(RealClock().Now() - absl::Now()), absl::Seconds(5));
}

}  // namespace
}  // namespace baton

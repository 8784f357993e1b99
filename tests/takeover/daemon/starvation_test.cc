// CPU starvation is not a hang (issue 14 item 8): the judgement on simulated samples, and the
// kernel figures it is fed with (a real process: schedstat run_delay, /proc state).
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "takeover/daemon/health_check.h"

namespace baton::takeover {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;

constexpr milliseconds kLiveness{300};
constexpr milliseconds kMax{1500};

TEST(StarvationExcuseTest, SilenceBelowLivenessIsAlwaysExcused) {
  StarvationExcuse e(kLiveness, kMax);
  EXPECT_TRUE(e.Excused(milliseconds(150), std::nullopt));
  EXPECT_TRUE(e.Excused(milliseconds(299), milliseconds(0)));
}

TEST(StarvationExcuseTest, StarvedServerKeepsItsAddressesUntilTheCap) {
  StarvationExcuse e(kLiveness, kMax);
  // Runnable but waiting for a CPU half of the time (a CPU quota spent by a neighbour).
  ASSERT_TRUE(e.Excused(milliseconds(150), milliseconds(1000)));
  EXPECT_TRUE(e.Excused(milliseconds(300), milliseconds(1075)));
  EXPECT_TRUE(e.Excused(milliseconds(350), milliseconds(1100)));
  EXPECT_TRUE(e.Excused(milliseconds(1450), milliseconds(1650)));
  // Silent for the cap: given up however starved.
  EXPECT_FALSE(e.Excused(milliseconds(1500), milliseconds(1680)));
}

TEST(StarvationExcuseTest, HungServerIsGivenUpAtLiveness) {
  StarvationExcuse e(kLiveness, kMax);
  // A deadlock: its threads sleep, they do not wait for a CPU (a few ms of scheduling noise).
  ASSERT_TRUE(e.Excused(milliseconds(150), milliseconds(1000)));
  EXPECT_FALSE(e.Excused(milliseconds(300), milliseconds(1010)));
}

TEST(StarvationExcuseTest, StoppedOrUnknownIsGivenUpAtLiveness) {
  StarvationExcuse stopped(kLiveness, kMax);
  ASSERT_TRUE(stopped.Excused(milliseconds(150), milliseconds(1000)));
  EXPECT_FALSE(stopped.Excused(milliseconds(300), std::nullopt));  // SIGSTOP: no figure
  StarvationExcuse unknown(kLiveness, kMax);
  ASSERT_TRUE(unknown.Excused(milliseconds(150), std::nullopt));
  EXPECT_FALSE(unknown.Excused(milliseconds(300), milliseconds(5000)));  // no window start
}

TEST(StarvationExcuseTest, NoWindowBeforeLivenessIsNoExcuse) {
  StarvationExcuse e(kLiveness, kMax);
  EXPECT_FALSE(e.Excused(milliseconds(300), milliseconds(1000)));
}

TEST(StarvationExcuseTest, StarvationMustLast) {
  StarvationExcuse e(kLiveness, kMax);
  ASSERT_TRUE(e.Excused(milliseconds(150), milliseconds(1000)));
  ASSERT_TRUE(e.Excused(milliseconds(300), milliseconds(1100)));
  // The CPU is there again but no progress: hung after all.
  EXPECT_FALSE(e.Excused(milliseconds(350), milliseconds(1101)));
}

TEST(StarvationExcuseTest, ProgressStartsANewSilence) {
  StarvationExcuse e(kLiveness, kMax);
  ASSERT_TRUE(e.Excused(milliseconds(150), milliseconds(1000)));
  ASSERT_TRUE(e.Excused(milliseconds(300), milliseconds(1100)));
  e.Progress();
  // The old window is gone: the next silence needs its own start.
  EXPECT_FALSE(e.Excused(milliseconds(300), milliseconds(2000)));
}

TEST(StarvationExcuseTest, CapBelowLivenessIsLiveness) {
  StarvationExcuse e(kLiveness, milliseconds(100));
  ASSERT_TRUE(e.Excused(milliseconds(150), milliseconds(0)));
  EXPECT_FALSE(e.Excused(milliseconds(300), milliseconds(1000)));
}

// Two busy threads on one CPU: each waits for it about half the time, and the process's CPU wait
// (the sum over its threads) grows by about the elapsed time.
TEST(ProcessCpuWaitTest, GrowsWhileThreadsWaitForACpu) {
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
  int cpu = 0;
  while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &allowed)) ++cpu;
  ASSERT_LT(cpu, CPU_SETSIZE);
  absl::StatusOr<nanoseconds> before = ProcessCpuWait(::getpid());
  ASSERT_TRUE(before.ok()) << before.status();
  std::atomic<bool> stop{false};
  std::vector<std::thread> busy;
  for (int i = 0; i < 2; ++i) {
    busy.emplace_back([&stop, cpu] {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
      while (!stop.load(std::memory_order_relaxed)) {
      }
    });
  }
  std::this_thread::sleep_for(milliseconds(400));
  // Read while they run: an exited thread's figures leave /proc with it.
  absl::StatusOr<nanoseconds> after = ProcessCpuWait(::getpid());
  stop = true;
  for (std::thread& t : busy) t.join();
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_GE(*after - *before, milliseconds(100));
}

TEST(ProcessCpuWaitTest, NoSuchProcess) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  EXPECT_EQ(ProcessCpuWait(child).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(ProcessStopped(child));
}

TEST(ProcessStoppedTest, SeesSigstop) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    for (;;) ::pause();
  }
  EXPECT_FALSE(ProcessStopped(child));
  ASSERT_EQ(::kill(child, SIGSTOP), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, WUNTRACED), child);
  ASSERT_TRUE(WIFSTOPPED(status));
  EXPECT_TRUE(ProcessStopped(child));
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
}

}  // namespace
}  // namespace baton::takeover

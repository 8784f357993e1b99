// CPU starvation is not a hang (issue 14 item 8): the judgement on simulated samples, and the
// kernel figures it is fed with (a real process: schedstat run_delay, thread states).
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

CpuWaitSample Waited(milliseconds waited, int runnable = 0) { return {waited, runnable}; }

TEST(StarvationExcuseTest, SilenceBelowLivenessIsAlwaysExcused) {
  StarvationExcuse e(kLiveness, kMax);
  EXPECT_TRUE(e.Excused(milliseconds(150), std::nullopt));
  EXPECT_TRUE(e.Excused(milliseconds(299), Waited(milliseconds(0))));
}

TEST(StarvationExcuseTest, ServerWaitingForACpuKeepsItsAddressesUntilTheCap) {
  StarvationExcuse e(kLiveness, kMax);
  // Waiting for a CPU (a CPU quota spent by a neighbour) half of the time since the first look.
  ASSERT_TRUE(e.Excused(milliseconds(150), Waited(milliseconds(1000))));
  EXPECT_TRUE(e.Excused(milliseconds(300), Waited(milliseconds(1075))));
  EXPECT_TRUE(e.Excused(milliseconds(350), Waited(milliseconds(1080))));  // 80 of 200 ms
  EXPECT_TRUE(e.Excused(milliseconds(1450), Waited(milliseconds(1650))));
  // Silent for the cap: given up however starved.
  EXPECT_FALSE(e.Excused(milliseconds(1500), Waited(milliseconds(1680), 3)));
}

TEST(StarvationExcuseTest, RunnableThreadsAreStarvedEvenBeforeTheirWaitIsCounted) {
  // The kernel adds a wait to run_delay only when the thread gets the CPU: during a long
  // throttle the figure stands still, but the threads are runnable.
  StarvationExcuse e(kLiveness, kMax);
  ASSERT_TRUE(e.Excused(milliseconds(150), Waited(milliseconds(1000), 2)));
  EXPECT_TRUE(e.Excused(milliseconds(300), Waited(milliseconds(1000), 2)));
  EXPECT_FALSE(e.Excused(milliseconds(350), Waited(milliseconds(1000), 0)));
}

TEST(StarvationExcuseTest, HungServerIsGivenUpAtLiveness) {
  StarvationExcuse e(kLiveness, kMax);
  // A deadlock: its threads sleep, none is runnable, they do not wait for a CPU (a few ms of
  // scheduling noise).
  ASSERT_TRUE(e.Excused(milliseconds(150), Waited(milliseconds(1000))));
  EXPECT_FALSE(e.Excused(milliseconds(300), Waited(milliseconds(1010))));
}

TEST(StarvationExcuseTest, StoppedOrUnreadableIsGivenUpAtLiveness) {
  StarvationExcuse e(kLiveness, kMax);
  ASSERT_TRUE(e.Excused(milliseconds(150), Waited(milliseconds(1000), 1)));
  EXPECT_FALSE(e.Excused(milliseconds(300), std::nullopt));  // SIGSTOP: no sample
}

TEST(StarvationExcuseTest, NoStartBeforeLivenessNeedsRunnableThreads) {
  StarvationExcuse idle(kLiveness, kMax);
  EXPECT_FALSE(idle.Excused(milliseconds(300), Waited(milliseconds(1000))));
  StarvationExcuse busy(kLiveness, kMax);
  EXPECT_TRUE(busy.Excused(milliseconds(300), Waited(milliseconds(1000), 1)));
}

TEST(StarvationExcuseTest, ProgressStartsANewSilence) {
  StarvationExcuse e(kLiveness, kMax);
  ASSERT_TRUE(e.Excused(milliseconds(150), Waited(milliseconds(1000))));
  ASSERT_TRUE(e.Excused(milliseconds(300), Waited(milliseconds(1100))));
  e.Progress();
  // The old start is gone: 1000 ms of wait before this silence do not count for it.
  ASSERT_TRUE(e.Excused(milliseconds(150), Waited(milliseconds(2000))));
  EXPECT_FALSE(e.Excused(milliseconds(300), Waited(milliseconds(2001))));
}

TEST(StarvationExcuseTest, CapBelowLivenessIsLiveness) {
  StarvationExcuse e(kLiveness, milliseconds(100));
  ASSERT_TRUE(e.Excused(milliseconds(150), Waited(milliseconds(0))));
  EXPECT_FALSE(e.Excused(milliseconds(300), Waited(milliseconds(1000), 1)));
}

// Two busy threads on one CPU: each waits for it about half the time; the process's wait (the sum
// over its threads) grows by about the elapsed time, and they are runnable.
TEST(SampleCpuWaitTest, SeesThreadsWaitingForACpu) {
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
  int cpu = 0;
  while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &allowed)) ++cpu;
  ASSERT_LT(cpu, CPU_SETSIZE);
  absl::StatusOr<CpuWaitSample> before = SampleCpuWait(::getpid(), ::gettid());
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
  absl::StatusOr<CpuWaitSample> after = SampleCpuWait(::getpid(), ::gettid());
  stop = true;
  for (std::thread& t : busy) t.join();
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_GE(after->waited - before->waited, milliseconds(100));
  EXPECT_GE(after->runnable, 2);
}

TEST(SampleCpuWaitTest, SleepingProcessHasNoRunnableThread) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    for (;;) ::pause();
  }
  std::this_thread::sleep_for(milliseconds(50));
  absl::StatusOr<CpuWaitSample> s = SampleCpuWait(child);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->runnable, 0);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
}

TEST(SampleCpuWaitTest, StoppedProcess) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    for (;;) ::pause();
  }
  ASSERT_EQ(::kill(child, SIGSTOP), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, WUNTRACED), child);
  ASSERT_TRUE(WIFSTOPPED(status));
  EXPECT_EQ(SampleCpuWait(child).status().code(), absl::StatusCode::kFailedPrecondition);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
}

TEST(SampleCpuWaitTest, NoSuchProcess) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  EXPECT_EQ(SampleCpuWait(child).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace baton::takeover

// Time for the framework, injected: the request pipeline stamps completion
// records and decides their retention through a Clock, so tests can move time
// by hand (SimulatedClock) instead of sleeping.
//
// Thread safety: implementations are thread-safe.
#ifndef BATON_FRAMEWORK_CLOCK_H_
#define BATON_FRAMEWORK_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace baton::framework {

class Clock {
 public:
  virtual ~Clock() = default;

  // Wall-clock time. Completion records store it; garbage collection compares
  // it with the retention. It may jump (NTP); a jump only makes GC collect a
  // record a little earlier or later.
  virtual absl::Time Now() const = 0;
};

// The process's real clock (the platform layer: the one place that reads the
// system time). Never destroyed.
Clock& RealClock();

// A clock that moves only when told to; for tests.
class SimulatedClock : public Clock {
 public:
  explicit SimulatedClock(absl::Time start = absl::FromUnixSeconds(1'700'000'000))
      : now_(start) {}

  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }
  void Set(absl::Time t) {
    absl::MutexLock lock(&mu_);
    now_ = t;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace baton::framework

#endif  // BATON_FRAMEWORK_CLOCK_H_

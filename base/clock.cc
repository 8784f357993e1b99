#include "base/clock.h"

#include <thread>

#include "absl/time/clock.h"

namespace baton {

// The platform layer: the only place in baton that reads the system's clocks.
absl::Time SystemClock::Now() const { return absl::Now(); }

std::chrono::nanoseconds SystemClock::MonotonicNow() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::steady_clock::now().time_since_epoch());
}

void SystemClock::SleepFor(absl::Duration d) {
  if (d > absl::ZeroDuration()) std::this_thread::sleep_for(absl::ToChronoNanoseconds(d));
}

SystemClock& SystemClock::Get() {
  static SystemClock* clock = new SystemClock();
  return *clock;
}

Clock& RealClock() { return SystemClock::Get(); }

}  // namespace baton

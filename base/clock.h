// Time, injected: the one clock interface of every module (framework, take-over drivers and
// daemon, the retrying client), with the real clock (the platform layer: the only place that
// reads the system's clocks) and a simulated one for tests.
//
// Two time lines, because they answer different questions:
//   MonotonicNow()  never goes backwards; origin arbitrary. Leases, timeouts, intervals,
//                   latencies. The real clock's is std::chrono::steady_clock's time line (and so
//                   boost::asio::steady_timer's): a deadline `d` on it is waited for with
//                   `timer.expires_after(d - clock.MonotonicNow())`.
//   Now()           wall-clock time (absl::Time); may step (NTP). Completion-record stamps and
//                   retention, a transport incarnation, the UDP freshness window -- never a lease.
// SleepFor() blocks the caller on the real clock and only moves time on the simulated one.
//
// Thread-safety: every method of every class here is thread-safe. Clocks are never destroyed
// while in use: RealClock() lives for the process; a SimulatedClock is owned by its test.
#ifndef BATON_BASE_CLOCK_H_
#define BATON_BASE_CLOCK_H_

#include <atomic>
#include <chrono>
#include <cstdint>

#include "absl/time/time.h"

namespace baton {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time; may step in either direction.
  virtual absl::Time Now() const = 0;
  // Monotonic time; never goes backwards. Origin arbitrary.
  virtual std::chrono::nanoseconds MonotonicNow() const = 0;
  // Waits `d` (nothing if d <= 0) on this clock's time.
  virtual void SleepFor(absl::Duration d) = 0;

  // Now() as nanoseconds since the Unix epoch (the form the UDP transport puts on the wire).
  std::chrono::nanoseconds WallNow() const {
    return std::chrono::nanoseconds(absl::ToUnixNanos(Now()));
  }
};

// The real clocks: steady_clock for MonotonicNow(), the system clock for Now(), a real sleep.
class SystemClock final : public Clock {
 public:
  absl::Time Now() const override;
  std::chrono::nanoseconds MonotonicNow() const override;
  void SleepFor(absl::Duration d) override;
  // The process-wide instance (the class has no state). Never destroyed.
  static SystemClock& Get();
};

// The process's real clock: SystemClock::Get().
Clock& RealClock();

// A clock that moves only when told: Advance() and SleepFor() move both time lines at once (and
// return at once); Set()/SetWall() step only the wall clock (an NTP step, also backwards).
class SimulatedClock final : public Clock {
 public:
  // Wall clock at `wall_start`, monotonic clock at `monotonic_start`.
  // Defaults: 2023-11-14T22:13:20Z and 1000 s.
  explicit SimulatedClock(absl::Time wall_start = absl::FromUnixSeconds(1'700'000'000),
                          std::chrono::nanoseconds monotonic_start = std::chrono::seconds(1000))
      : monotonic_(monotonic_start.count()), wall_(absl::ToUnixNanos(wall_start)) {}
  // The take-over drivers' form: monotonic start first, wall as nanoseconds since the epoch.
  explicit SimulatedClock(std::chrono::nanoseconds monotonic_start,
                          std::chrono::nanoseconds wall_start = std::chrono::seconds(1'700'000'000))
      : monotonic_(monotonic_start.count()), wall_(wall_start.count()) {}

  absl::Time Now() const override { return absl::FromUnixNanos(wall_.load()); }
  std::chrono::nanoseconds MonotonicNow() const override {
    return std::chrono::nanoseconds(monotonic_.load());
  }
  void SleepFor(absl::Duration d) override { Advance(d); }

  // Moves both clocks by `d`; a negative `d` moves only the wall clock back (monotonic time
  // never goes backwards).
  void Advance(absl::Duration d) { Advance(absl::ToChronoNanoseconds(d)); }
  void Advance(std::chrono::nanoseconds d) {
    if (d.count() > 0) monotonic_ += d.count();
    wall_ += d.count();
  }
  // Steps the wall clock to `t` (monotonic time unchanged).
  void Set(absl::Time t) { wall_ = absl::ToUnixNanos(t); }
  void SetWall(std::chrono::nanoseconds since_epoch) { wall_ = since_epoch.count(); }

 private:
  std::atomic<int64_t> monotonic_;
  std::atomic<int64_t> wall_;
};

}  // namespace baton

#endif  // BATON_BASE_CLOCK_H_

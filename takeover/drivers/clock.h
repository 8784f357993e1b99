// The platform clock of the take-over drivers and daemon.
//
// `Clock::Now()` is the monotonic time that the take-over core measures leases
// with (`baton::takeover::Time`, origin arbitrary, never steps). `WallNow()` is
// the real-time clock (nanoseconds since the Unix epoch, may step); it is used
// only to pick a fresh transport incarnation at start-up and for the optional
// freshness window of the UDP transport, never for lease timing.
//
// SteadyClock (in clock.cc) is the only place in baton's take-over code that
// reads std::chrono::steady_clock / system_clock; everything else takes a
// `const Clock&`. FakeClock is for tests.
//
// Thread-safety: every method of every class here is thread-safe.
#ifndef BATON_TAKEOVER_DRIVERS_CLOCK_H_
#define BATON_TAKEOVER_DRIVERS_CLOCK_H_

#include <atomic>
#include <chrono>
#include <cstdint>

namespace baton::takeover {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time; never goes backwards. Origin arbitrary (SteadyClock: the
  // steady_clock epoch, usually boot).
  virtual std::chrono::nanoseconds Now() const = 0;
  // Real (wall-clock) time since the Unix epoch; may step in either direction.
  virtual std::chrono::nanoseconds WallNow() const = 0;
};

// The real clocks: steady_clock for Now(), system_clock for WallNow().
// Now() is on the same time line as std::chrono::steady_clock (and therefore
// boost::asio::steady_timer), so a deadline `d` from Now() can be waited for
// with `timer.expires_after(d - clock.Now())`.
class SteadyClock final : public Clock {
 public:
  std::chrono::nanoseconds Now() const override;
  std::chrono::nanoseconds WallNow() const override;
  // A process-wide instance (the class has no state).
  static const SteadyClock& Get();
};

// A clock that moves only when told. Starts at `start` (monotonic) and
// `wall_start` (wall). Advance() moves both; SetWall() steps only the wall
// clock (to simulate an NTP step, including backwards).
class FakeClock final : public Clock {
 public:
  explicit FakeClock(std::chrono::nanoseconds start = std::chrono::seconds(1000),
                     std::chrono::nanoseconds wall_start = std::chrono::seconds(1'700'000'000))
      : now_(start.count()), wall_(wall_start.count()) {}
  std::chrono::nanoseconds Now() const override {
    return std::chrono::nanoseconds(now_.load());
  }
  std::chrono::nanoseconds WallNow() const override {
    return std::chrono::nanoseconds(wall_.load());
  }
  // Moves both clocks forward by `d` (d >= 0).
  void Advance(std::chrono::nanoseconds d) {
    now_ += d.count();
    wall_ += d.count();
  }
  void SetWall(std::chrono::nanoseconds wall) { wall_ = wall.count(); }

 private:
  std::atomic<int64_t> now_;
  std::atomic<int64_t> wall_;
};

}  // namespace baton::takeover

#endif  // BATON_TAKEOVER_DRIVERS_CLOCK_H_

#include "takeover/drivers/clock.h"

namespace baton::takeover {

std::chrono::nanoseconds SteadyClock::Now() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::steady_clock::now().time_since_epoch());
}

std::chrono::nanoseconds SteadyClock::WallNow() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::system_clock::now().time_since_epoch());
}

const SteadyClock& SteadyClock::Get() {
  static const SteadyClock clock;
  return clock;
}

}  // namespace baton::takeover

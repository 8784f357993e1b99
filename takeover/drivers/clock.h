// The take-over drivers' and daemon's clock is base/clock.h's: the core measures leases on
// Clock::MonotonicNow() (`baton::takeover::Time`, origin arbitrary, never steps); the wall clock
// (Clock::Now(), or WallNow() in nanoseconds) only picks a fresh transport incarnation at
// start-up and bounds the UDP transport's optional freshness window, never lease timing.
// These names are kept for one release; new code uses baton::Clock, baton::SystemClock and
// baton::SimulatedClock directly.
#ifndef BATON_TAKEOVER_DRIVERS_CLOCK_H_
#define BATON_TAKEOVER_DRIVERS_CLOCK_H_

#include "base/clock.h"

namespace baton::takeover {

using Clock = ::baton::Clock;
using SteadyClock = ::baton::SystemClock;
using FakeClock = ::baton::SimulatedClock;

}  // namespace baton::takeover

#endif  // BATON_TAKEOVER_DRIVERS_CLOCK_H_

// The framework's clock is base/clock.h's: the request pipeline stamps completion records and
// decides their retention with Clock::Now() (wall time), so tests move time by hand
// (SimulatedClock) instead of sleeping. These names are kept for one release; new code uses
// baton::Clock, baton::RealClock() and baton::SimulatedClock directly.
#ifndef BATON_FRAMEWORK_CLOCK_H_
#define BATON_FRAMEWORK_CLOCK_H_

#include "base/clock.h"

namespace baton::framework {

using ::baton::Clock;
using ::baton::RealClock;
using ::baton::SimulatedClock;

}  // namespace baton::framework

#endif  // BATON_FRAMEWORK_CLOCK_H_

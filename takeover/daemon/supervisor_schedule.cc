#include "takeover/daemon/supervisor_schedule.h"

#include <algorithm>

namespace baton::takeover {

SupervisorSchedule::SupervisorSchedule(Clock& clock, SupervisorScheduleOptions options)
    : clock_(clock), options_(options), backoff_(options.restart_backoff) {}

void SupervisorSchedule::ChildSpawned() { spawned_ = clock_.MonotonicNow(); }

SupervisorSchedule::Deadline SupervisorSchedule::ChildEnded() {
  if (spawned_ && clock_.MonotonicNow() - *spawned_ >=
                      absl::ToChronoNanoseconds(options_.stable_after)) {
    backoff_ = options_.restart_backoff;
  }
  spawned_.reset();
  return Backoff();
}

SupervisorSchedule::Deadline SupervisorSchedule::SpawnFailed() { return Backoff(); }

SupervisorSchedule::Deadline SupervisorSchedule::Backoff() {
  const Deadline at = After(backoff_);
  backoff_ = std::min(backoff_ * 2, options_.max_restart_backoff);
  return at;
}

std::chrono::nanoseconds SupervisorSchedule::Until(Deadline deadline) const {
  return std::max(deadline - clock_.MonotonicNow(), std::chrono::nanoseconds(0));
}

}  // namespace baton::takeover

// When a server's supervisor of its take-over agent process acts (framework/embedded_agent.h
// AgentSupervisor; the process and its link: agent_process.h): the timing policy alone, no
// process, no socket, no timer, time from an injected Clock, so that every decision is tested on a
// SimulatedClock (tests/takeover/daemon/supervisor_schedule_test.cc).
//
//   - restart: a dead child is restarted after a back-off, restart_backoff doubling up to
//     max_restart_backoff; a child that lived stable_after or longer resets it (a crash a day is
//     restarted at once, a crash loop slows down); a failed spawn keeps doubling;
//   - start: the first child has start_timeout to say it started;
//   - shutdown: a child asked to hand over has shutdown_grace to exit, then it is SIGKILLed;
//   - linger: once one half of a child's end is seen (its link closed, or it exited), the other
//     half has linger_grace (the child lingering is SIGKILLed; a link held open by somebody else
//     is closed).
//
// Deadlines are points on clock.MonotonicNow()'s time line (never on the wall clock: an NTP step
// must neither SIGKILL a child that is handing over nor reset a crash loop's back-off); a timer
// waits for one with `timer.expires_after(schedule.Until(deadline))` (base/clock.h).
//
// Thread safety: none; one owner (the supervisor's io_context thread).
#ifndef BATON_TAKEOVER_DAEMON_SUPERVISOR_SCHEDULE_H_
#define BATON_TAKEOVER_DAEMON_SUPERVISOR_SCHEDULE_H_

#include <chrono>
#include <optional>

#include "absl/time/time.h"
#include "base/clock.h"

namespace baton::takeover {

struct SupervisorScheduleOptions {
  // Back-off before restarting a dead child: the first, then doubled up to the max.
  // Defaults: 100 ms, 5 s.
  absl::Duration restart_backoff = absl::Milliseconds(100);
  absl::Duration max_restart_backoff = absl::Seconds(5);
  // A child that lived at least this long resets the back-off to restart_backoff. Default: 30 s.
  absl::Duration stable_after = absl::Seconds(30);
  // From spawning the first child to its "started" message, at most. Default: 10 s.
  absl::Duration start_timeout = absl::Seconds(10);
  // From the shutdown request to SIGKILL of a child that has not exited. Default: 10 s.
  absl::Duration shutdown_grace = absl::Seconds(10);
  // From one half of a child's end (link closed, or process exited) to forcing the other
  // (SIGKILL, or closing the link). Default: 2 s.
  absl::Duration linger_grace = absl::Seconds(2);
};

class SupervisorSchedule {
 public:
  // A point on clock.MonotonicNow()'s time line.
  using Deadline = std::chrono::nanoseconds;

  // `clock` must outlive the schedule.
  SupervisorSchedule(Clock& clock, SupervisorScheduleOptions options);

  // A child was spawned now (its age counts from here).
  void ChildSpawned();
  // The child is gone (exited and its link closed): when to spawn the next one. A child that
  // lived stable_after or longer resets the back-off first; every call doubles the back-off
  // that follows (up to max_restart_backoff).
  [[nodiscard]] Deadline ChildEnded();
  // A spawn failed: when to try again (the back-off keeps doubling).
  [[nodiscard]] Deadline SpawnFailed();

  // Now + start_timeout, shutdown_grace, linger_grace.
  [[nodiscard]] Deadline StartDeadline() const { return After(options_.start_timeout); }
  [[nodiscard]] Deadline ShutdownKillDeadline() const { return After(options_.shutdown_grace); }
  [[nodiscard]] Deadline LingerDeadline() const { return After(options_.linger_grace); }

  // True once `deadline` is reached.
  [[nodiscard]] bool Due(Deadline deadline) const { return clock_.MonotonicNow() >= deadline; }
  // What is left until `deadline` (zero once due): a timer's expires_after.
  [[nodiscard]] std::chrono::nanoseconds Until(Deadline deadline) const;

  // The back-off the next restart waits.
  absl::Duration next_backoff() const { return backoff_; }
  const SupervisorScheduleOptions& options() const { return options_; }

 private:
  Deadline After(absl::Duration d) const {
    return clock_.MonotonicNow() + absl::ToChronoNanoseconds(d);
  }
  Deadline Backoff();

  Clock& clock_;
  SupervisorScheduleOptions options_;
  absl::Duration backoff_;
  std::optional<Deadline> spawned_;  // when the current child was spawned
};

}  // namespace baton::takeover

#endif  // BATON_TAKEOVER_DAEMON_SUPERVISOR_SCHEDULE_H_

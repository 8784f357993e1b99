#include "framework/agent_liveness.h"

#include <algorithm>

namespace baton::framework {

LivenessJudge::LivenessJudge(const Options& options, absl::Time start)
    : options_(options),
      interval_(std::max(options.liveness / 6, absl::Milliseconds(5))),
      last_progress_(start),
      prev_end_(start),
      excuse_(absl::ToChronoNanoseconds(options.liveness),
              absl::ToChronoNanoseconds(
                  std::max(options.starved_max, options.liveness))) {}

LivenessJudge::Verdict LivenessJudge::Judge(
    const Round& round,
    absl::FunctionRef<std::optional<takeover::CpuWaitSample>()> sample) {
  // The loop's own thread did not run for half the liveness (starved, or
  // the host stalled): that time says nothing about the event loop, which
  // is judged from here on.
  if (round.began - prev_end_ > options_.liveness / 2) {
    last_progress_ = std::max(last_progress_, round.began - interval_);
    excuse_.Progress();
  }
  prev_end_ = round.ended;
  Verdict v;
  if (round.progress) {
    last_progress_ = round.ended;
    excuse_.Progress();
    v.keepalive = true;
    v.silence = absl::ZeroDuration();
    return v;
  }
  v.silence = round.ended - last_progress_;
  if (round.store_wait > absl::ZeroDuration() &&
      v.silence < options_.store_max) {
    // Blocked in the store's calls, not hung. (The silence keeps counting
    // from the last progress: past store_max, or when the waits end
    // without progress, the server is judged on the whole of it.)
    v.on_store = true;
    v.keepalive = true;
    return v;
  }
  v.live = v.silence < options_.liveness;
  if (v.silence >= options_.liveness / 2) {
    v.live = excuse_.Excused(absl::ToChronoNanoseconds(v.silence), sample());
  }
  return v;
}

}  // namespace baton::framework

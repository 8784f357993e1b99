// LivenessJudge: whether a server whose take-over agent is embedded
// (framework/embedded_agent.h) is alive -- the judgement of the agent's
// liveness loop (agent_loops.cc), pure: the loop reads the clock, runs the
// probe and samples /proc, and feeds the results in. Implementation header
// of the embedded agent, not part of the server API.
//
// Each round the loop posts a probe to the server's request event loop and
// waits at most one interval (liveness / 6) for it to run. A round whose probe
// ran is progress, and the agent sends its keepalive. A silence (rounds
// without progress) is:
//   - nothing yet below `liveness` (300 ms);
//   - the store's, not the server's, while requests wait on store reads
//     (RequestPipeline::StoreWaitTime, framework/store_wait.h), up to
//     `store_max` of silence (health_check.liveness_store, 600 ms): the
//     event loop is blocked in the store's calls (an etcd stall: a slow
//     fsync or apply), and a peer would use the same store. The keepalive
//     goes on meanwhile. A longer silence is handed over: an etcd election,
//     or a store slow only from this host (a lossy link), where a peer may
//     serve;
//   - excused while the process is starved of CPU, up to `starved_max`
//     (takeover/daemon/health_check.h StarvationExcuse);
//   - else a hang: the agent gives the service addresses away.
// Time when the loop's own thread did not run (more than liveness / 2
// between rounds) says nothing about the event loop and is not counted.
//
// Thread safety: not thread-safe (the liveness loop's thread owns it).
#ifndef BATON_FRAMEWORK_AGENT_LIVENESS_H_
#define BATON_FRAMEWORK_AGENT_LIVENESS_H_

#include <optional>

#include "absl/functional/function_ref.h"
#include "absl/time/time.h"
#include "takeover/daemon/health_check.h"

namespace baton::framework {

class LivenessJudge {
 public:
  struct Options {
    // The silence that means hung (health_check.liveness). Default: 300 ms.
    absl::Duration liveness = absl::Milliseconds(300);
    // The longest silence a starved server is excused
    // (health_check.liveness_starved, >= liveness). Default: 1.5 s.
    absl::Duration starved_max = absl::Milliseconds(1500);
    // The longest silence excused while requests wait on the store
    // (health_check.liveness_store, at most health_check.timeout x fall,
    // >= liveness). Default: 600 ms.
    absl::Duration store_max = absl::Milliseconds(600);
  };

  // One round of the loop.
  struct Round {
    absl::Time began;  // before the probe was posted
    absl::Time ended;  // after it ran or its wait ended
    bool progress = false;  // the probe ran on the event loop
    // RequestPipeline::StoreWaitTime() at `ended` (zero: nothing waits; only
    // whether it is zero counts, the length is for the logs).
    absl::Duration store_wait = absl::ZeroDuration();
  };

  struct Verdict {
    bool live = true;        // the server counts as alive
    bool keepalive = false;  // send a keepalive after this round
    bool on_store = false;   // the silence is excused as the store's
    absl::Duration silence;  // since the last progress
  };

  // `start`: when the loop began (counts as progress).
  LivenessJudge(const Options& options, absl::Time start);

  // The probe's wait and the pause between rounds.
  absl::Duration interval() const { return interval_; }

  // Judges one round. `sample` is called at most once, and only during a
  // silence of liveness / 2 or more that the store does not excuse: the
  // server's CPU wait (nullopt when it is stopped or cannot be read).
  Verdict Judge(const Round& round,
                absl::FunctionRef<std::optional<takeover::CpuWaitSample>()>
                    sample);

 private:
  const Options options_;
  const absl::Duration interval_;
  absl::Time last_progress_;
  absl::Time prev_end_;
  takeover::StarvationExcuse excuse_;
};

}  // namespace baton::framework

#endif  // BATON_FRAMEWORK_AGENT_LIVENESS_H_

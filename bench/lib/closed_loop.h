// A closed-loop load: `callers` threads, each issuing its next operation as
// soon as the previous one returned, for a fixed time. The load every
// throughput benchmark drives through the system it measures and through its
// baseline alike.
//
// Thread safety: RunClosedLoop calls `op` from `callers` threads at once;
// `op` must be safe for that (each caller has its own index).
#ifndef BATON_BENCH_LIB_CLOSED_LOOP_H_
#define BATON_BENCH_LIB_CLOSED_LOOP_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

namespace baton::bench {

struct ClosedLoopResult {
  double seconds = 0;     // wall time from the first start to the last join.
  double ops_per_s = 0;   // successful operations / seconds.
  uint64_t errors = 0;    // operations that returned false.
  std::vector<double> latencies_us;  // one per successful operation.
};

// One operation of caller `caller` (0 .. callers-1), its `seq`-th; true on
// success. Failed operations are counted, not timed.
using ClosedLoopOp = std::function<bool(int caller, uint64_t seq)>;

// Runs `op` from `callers` (>= 1) threads until `duration` has passed (no new
// operation starts after it; ones under way finish).
ClosedLoopResult RunClosedLoop(int callers, std::chrono::milliseconds duration,
                               const ClosedLoopOp& op);

}  // namespace baton::bench

#endif  // BATON_BENCH_LIB_CLOSED_LOOP_H_

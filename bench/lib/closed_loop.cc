#include "bench/lib/closed_loop.h"

#include <atomic>
#include <thread>

namespace baton::bench {

// Benchmarks are the measuring layer: they read the monotonic clock directly.
using Clock = std::chrono::steady_clock;

ClosedLoopResult RunClosedLoop(int callers, std::chrono::milliseconds duration,
                               const ClosedLoopOp& op) {
  const auto n = static_cast<size_t>(callers > 0 ? callers : 1);
  std::vector<std::vector<double>> lat(n);
  std::atomic<uint64_t> errors{0};
  const Clock::time_point start = Clock::now();
  const Clock::time_point end = start + duration;
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (size_t c = 0; c < n; ++c) {
    threads.emplace_back([&, c] {
      for (uint64_t seq = 0;; ++seq) {
        const Clock::time_point t0 = Clock::now();
        if (t0 >= end) break;
        if (!op(static_cast<int>(c), seq)) {
          errors.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        lat[c].push_back(
            std::chrono::duration<double, std::micro>(Clock::now() - t0)
                .count());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  ClosedLoopResult r;
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (const std::vector<double>& l : lat) {
    r.latencies_us.insert(r.latencies_us.end(), l.begin(), l.end());
  }
  r.ops_per_s = r.seconds > 0
                    ? static_cast<double>(r.latencies_us.size()) / r.seconds
                    : 0;
  r.errors = errors.load();
  return r;
}

}  // namespace baton::bench

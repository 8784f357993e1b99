// What a benchmark needs to say about the machine it ran on: the load average
// before and after a run, whether the machine was busy (then throughput
// figures are not comparable with a quiet machine's, only ratios and CPU per
// operation are), and the CPU time this process used.
//
// Thread safety: every function is thread-safe (reads /proc or getrusage).
#ifndef BATON_BENCH_LIB_MACHINE_LOAD_H_
#define BATON_BENCH_LIB_MACHINE_LOAD_H_

#include <string>
#include <string_view>

#include "nlohmann/json.hpp"

namespace baton::bench {

struct LoadAverage {
  double one = 0, five = 0, fifteen = 0;  // /proc/loadavg; 0 if unreadable.
};

LoadAverage ReadLoadAverage();

// CPUs this process may run on.
int OnlineCpus();

// CPU seconds (user + system) used so far by this process, all its threads.
double ProcessCpuSeconds();

// True when the one-minute load average exceeds `busy_fraction` × the CPUs:
// runnable work beyond the benchmark's own that takes CPU from it. Default
// fraction 0.5: on a quiet machine a benchmark starts with load well below
// half the CPUs.
bool MachineBusy(const LoadAverage& load, double busy_fraction = 0.5);

// "load average 1.02 0.87 0.66 on 2 CPUs" and, when busy, a warning
// sentence (one line each, no trailing newline on the last).
std::string DescribeLoad(std::string_view when, const LoadAverage& load,
                         double busy_fraction = 0.5);

// The load before and after one measurement. Construct it just before the
// measurement (it reads the load then), call Finish() just after; the JSON
// fields are the ones bench/suite reads.
// Thread safety: one thread uses an instance.
class MachineLoadCheck {
 public:
  // Default fraction 0.5, as MachineBusy's.
  explicit MachineLoadCheck(double busy_fraction = 0.5);

  // Reads the load after the measurement.
  void Finish();

  // DescribeLoad of the load before / after (after: not finished yet reads
  // as zeros).
  std::string DescribeBefore() const;
  std::string DescribeAfter() const;

  // Busy before or (once finished) after.
  bool Busy() const;

  // {"loadavg_before": [1, 5, 15 min], "loadavg_after": [...], "busy": bool,
  //  "cpus": n}, to merge into a benchmark's JSON document.
  nlohmann::json ToJson() const;

 private:
  double busy_fraction_;
  LoadAverage before_;
  LoadAverage after_;
  bool finished_ = false;
};

}  // namespace baton::bench

#endif  // BATON_BENCH_LIB_MACHINE_LOAD_H_

// What a benchmark needs to say about the machine it ran on: the load average
// before and after a run, whether the machine was busy (then throughput
// figures are not comparable with a quiet machine's, only ratios and CPU per
// operation are), and the CPU time this process used.
//
// Thread safety: every function is thread-safe (reads /proc or getrusage).
#ifndef BATON_BENCH_MACHINE_LOAD_H_
#define BATON_BENCH_MACHINE_LOAD_H_

#include <string>
#include <string_view>

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

}  // namespace baton::bench

#endif  // BATON_BENCH_MACHINE_LOAD_H_

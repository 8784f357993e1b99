// Percentiles, medians and latency summaries of benchmark samples: the one
// definition every benchmark and its figures use.
//
// Percentile(p) is the nearest rank on [0, n-1]: the sorted sample at index
// round(p × (n − 1)). The median is therefore the upper middle sample of an
// even count (index n / 2), p = 1 the maximum. An empty sample gives 0 (a
// benchmark prints 0 for "no requests" rather than failing).
//
// Thread safety: pure functions.
#ifndef BATON_BENCH_LIB_STATS_H_
#define BATON_BENCH_LIB_STATS_H_

#include <cstddef>
#include <vector>

namespace baton::bench {

// `sorted` ascending; p is clamped to [0, 1].
double PercentileOfSorted(const std::vector<double>& sorted, double p);

// Sorts its copy of `samples`.
double Percentile(std::vector<double> samples, double p);

double Median(std::vector<double> samples);

// The median of field(run) over `runs` (e.g. the ops/s of each repetition).
template <typename Run, typename Field>
double MedianOf(const std::vector<Run>& runs, Field field) {
  std::vector<double> v;
  v.reserve(runs.size());
  for (const Run& r : runs) v.push_back(static_cast<double>(field(r)));
  return Median(std::move(v));
}

// The figures a benchmark reports of one set of latencies (any unit).
struct LatencySummary {
  size_t count = 0;
  double p50 = 0;
  double p99 = 0;
  double max = 0;
};

LatencySummary SummarizeLatencies(std::vector<double> samples);

}  // namespace baton::bench

#endif  // BATON_BENCH_LIB_STATS_H_

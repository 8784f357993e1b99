#include "bench/lib/stats.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace baton::bench {

double PercentileOfSorted(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double clamped = std::clamp(p, 0.0, 1.0);
  const auto i = static_cast<size_t>(
      std::lround(clamped * static_cast<double>(sorted.size() - 1)));
  return sorted[std::min(i, sorted.size() - 1)];
}

double Percentile(std::vector<double> samples, double p) {
  std::sort(samples.begin(), samples.end());
  return PercentileOfSorted(samples, p);
}

double Median(std::vector<double> samples) {
  return Percentile(std::move(samples), 0.5);
}

LatencySummary SummarizeLatencies(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  LatencySummary s;
  s.count = samples.size();
  s.p50 = PercentileOfSorted(samples, 0.5);
  s.p99 = PercentileOfSorted(samples, 0.99);
  s.max = PercentileOfSorted(samples, 1.0);
  return s;
}

}  // namespace baton::bench

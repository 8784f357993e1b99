#include "bench/lib/alternating.h"

#include <algorithm>
#include <utility>

#include "bench/lib/stats.h"

namespace baton::bench {

std::vector<int> AlternatingOrder(int systems, int rep) {
  std::vector<int> order;
  order.reserve(static_cast<size_t>(std::max(systems, 0)));
  for (int k = 0; k < systems; ++k) order.push_back((k + rep) % systems);
  return order;
}

absl::StatusOr<std::vector<std::vector<double>>> RunAlternating(
    int systems, int reps, const RunFigure& run) {
  std::vector<std::vector<double>> figures(
      static_cast<size_t>(std::max(systems, 0)));
  for (int rep = 0; rep < reps; ++rep) {
    for (int system : AlternatingOrder(systems, rep)) {
      absl::StatusOr<double> figure = run(system, rep);
      if (!figure.ok()) return figure.status();
      figures[static_cast<size_t>(system)].push_back(*figure);
    }
  }
  return figures;
}

PairedRatios PairRatios(const std::vector<double>& a,
                        const std::vector<double>& b) {
  PairedRatios p;
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    if (b[i] > 0) p.ratios.push_back(a[i] / b[i]);
  }
  if (!p.ratios.empty()) p.median_ratio = Median(p.ratios);
  return p;
}

absl::StatusOr<PairedRuns> RunPaired(int reps, const RunFigure& run) {
  absl::StatusOr<std::vector<std::vector<double>>> figures =
      RunAlternating(2, reps, run);
  if (!figures.ok()) return figures.status();
  PairedRuns out;
  out.a = std::move((*figures)[0]);
  out.b = std::move((*figures)[1]);
  out.paired = PairRatios(out.a, out.b);
  return out;
}

}  // namespace baton::bench

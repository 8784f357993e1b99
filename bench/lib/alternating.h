// Repetitions of several systems alternated so that the machine's drift
// (load from other work, a warming cache, a growing store) falls on every
// system alike, and ratios of runs taken seconds apart: the way every
// benchmark compares baton with its baseline (bench/README.md: "every claim is
// a ratio against a baseline measured in the same run").
//
// Thread safety: the functions call `run` on the calling thread, in order.
#ifndef BATON_BENCH_LIB_ALTERNATING_H_
#define BATON_BENCH_LIB_ALTERNATING_H_

#include <functional>
#include <vector>

#include "absl/status/statusor.h"

namespace baton::bench {

// The systems in the order repetition `rep` runs them: each repetition starts
// one system later than the one before (two systems: A B, B A, A B, ...;
// three: A B C, B C A, C A B, ...). `systems` > 0, `rep` >= 0.
std::vector<int> AlternatingOrder(int systems, int rep);

// One figure (e.g. ops/s) of one run of `system` in repetition `rep`, or an
// error that stops the whole measurement.
using RunFigure = std::function<absl::StatusOr<double>(int system, int rep)>;

// Runs `reps` repetitions of `systems` systems in AlternatingOrder and
// returns figures[system][rep]. The first error of `run` is returned as is.
absl::StatusOr<std::vector<std::vector<double>>> RunAlternating(
    int systems, int reps, const RunFigure& run);

// Ratios of paired runs: ratios[i] = a[i] / b[i] for the repetitions where
// both ran and b[i] > 0; median_ratio is their median, -1 when there is none.
struct PairedRatios {
  std::vector<double> ratios;
  double median_ratio = -1;
};

PairedRatios PairRatios(const std::vector<double>& a,
                        const std::vector<double>& b);

// `reps` pairs of runs of system a (0) and its baseline b (1), alternating
// which one goes first, and the ratios of each pair's figures.
struct PairedRuns {
  std::vector<double> a;  // a's figure in each repetition.
  std::vector<double> b;  // b's figure in each repetition.
  PairedRatios paired;
};

absl::StatusOr<PairedRuns> RunPaired(int reps, const RunFigure& run);

}  // namespace baton::bench

#endif  // BATON_BENCH_LIB_ALTERNATING_H_

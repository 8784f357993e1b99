// Parsing of `redis-benchmark --csv` output, shared by the benchmarks that
// put Redis (appendfsync always) beside baton.
#ifndef BATON_BENCH_REDIS_BENCHMARK_CSV_H_
#define BATON_BENCH_REDIS_BENCHMARK_CSV_H_

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace baton::bench {

struct RedisBenchmarkRow {
  double ops_per_s = 0;
  double p50_us = 0;
  double p99_us = 0;
};

// One line of `redis-benchmark --csv`:
//   "SET","rps","avg","min","p50","p95","p99","max" (latencies in ms).
// The row when the line is the one of `test_upper` (e.g. "SET", "GET"),
// else nullopt (headers, other tests, noise).
inline std::optional<RedisBenchmarkRow> ParseRedisBenchmarkCsvLine(
    std::string_view line, std::string_view test_upper) {
  const std::string quoted = "\"" + std::string(test_upper) + "\"";
  if (line.substr(0, quoted.size()) != quoted) return std::nullopt;
  std::vector<std::string> cols =
      absl::StrSplit(absl::string_view(line.data(), line.size()), ',');
  auto num = [&](size_t i) {
    double d = 0;
    if (i < cols.size()) {
      std::string c = cols[i];
      c.erase(std::remove(c.begin(), c.end(), '"'), c.end());
      c.erase(std::remove(c.begin(), c.end(), '\n'), c.end());
      (void)absl::SimpleAtod(c, &d);
    }
    return d;
  };
  return RedisBenchmarkRow{num(1), num(4) * 1000, num(6) * 1000};
}

}  // namespace baton::bench

#endif  // BATON_BENCH_REDIS_BENCHMARK_CSV_H_

// The benchmarks' shared plumbing (bench/lib): the percentiles every figure
// is read from, the order of alternating runs and the ratios of paired runs
// every claim against a baseline rests on, and the JSON file the suite reads.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "bench/lib/alternating.h"
#include "bench/lib/closed_loop.h"
#include "bench/lib/json_output.h"
#include "bench/lib/machine_load.h"
#include "bench/lib/redis_baseline.h"
#include "bench/lib/stats.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace baton::bench {
namespace {

std::vector<double> OneToHundred() {
  std::vector<double> v(100);
  std::iota(v.begin(), v.end(), 1.0);
  return v;
}

TEST(StatsTest, PercentilesOfKnownSamples) {
  // Shuffled on purpose: Percentile sorts its copy.
  std::vector<double> v = OneToHundred();
  std::swap(v[0], v[99]);
  std::swap(v[10], v[50]);
  EXPECT_EQ(Percentile(v, 0.0), 1);
  EXPECT_EQ(Percentile(v, 0.5), 51);  // index round(49.5) = 50
  EXPECT_EQ(Percentile(v, 0.99), 99);  // index round(98.01) = 98
  EXPECT_EQ(Percentile(v, 1.0), 100);
  EXPECT_EQ(Percentile(v, 2.0), 100);  // clamped
  EXPECT_EQ(Percentile(v, -1.0), 1);
}

TEST(StatsTest, MedianIsTheMiddleOrUpperMiddleSample) {
  EXPECT_EQ(Median({3, 1, 2}), 2);
  EXPECT_EQ(Median({4, 1, 3, 2}), 3);
  EXPECT_EQ(Median({7}), 7);
  EXPECT_EQ(Median({}), 0);
}

TEST(StatsTest, MedianOfAField) {
  struct Run {
    double ops_per_s;
  };
  const std::vector<Run> runs = {{900}, {1200}, {1000}};
  EXPECT_EQ(MedianOf(runs, [](const Run& r) { return r.ops_per_s; }), 1000);
}

TEST(StatsTest, SummarizeLatencies) {
  const LatencySummary s = SummarizeLatencies(OneToHundred());
  EXPECT_EQ(s.count, 100u);
  EXPECT_EQ(s.p50, 51);
  EXPECT_EQ(s.p99, 99);
  EXPECT_EQ(s.max, 100);
  const LatencySummary empty = SummarizeLatencies({});
  EXPECT_EQ(empty.count, 0u);
  EXPECT_EQ(empty.p99, 0);
}

TEST(AlternatingTest, EachRepetitionStartsOneSystemLater) {
  EXPECT_EQ(AlternatingOrder(2, 0), (std::vector<int>{0, 1}));
  EXPECT_EQ(AlternatingOrder(2, 1), (std::vector<int>{1, 0}));
  EXPECT_EQ(AlternatingOrder(2, 2), (std::vector<int>{0, 1}));
  EXPECT_EQ(AlternatingOrder(3, 1), (std::vector<int>{1, 2, 0}));
  EXPECT_EQ(AlternatingOrder(1, 5), (std::vector<int>{0}));
}

TEST(AlternatingTest, RunAlternatingRunsInThatOrderAndKeepsFiguresPerSystem) {
  std::vector<std::pair<int, int>> calls;
  absl::StatusOr<std::vector<std::vector<double>>> figures =
      RunAlternating(2, 3, [&](int system, int rep) -> absl::StatusOr<double> {
        calls.emplace_back(system, rep);
        return 100.0 * system + rep;
      });
  ASSERT_TRUE(figures.ok()) << figures.status();
  EXPECT_EQ(calls, (std::vector<std::pair<int, int>>{
                       {0, 0}, {1, 0}, {1, 1}, {0, 1}, {0, 2}, {1, 2}}));
  EXPECT_EQ((*figures)[0], (std::vector<double>{0, 1, 2}));
  EXPECT_EQ((*figures)[1], (std::vector<double>{100, 101, 102}));
}

TEST(AlternatingTest, AFailedRunStopsTheMeasurement) {
  int calls = 0;
  absl::StatusOr<std::vector<std::vector<double>>> figures =
      RunAlternating(2, 3, [&](int system, int rep) -> absl::StatusOr<double> {
        ++calls;
        if (system == 1 && rep == 1) return absl::UnavailableError("server died");
        return 1.0;
      });
  EXPECT_EQ(figures.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(calls, 3);  // (0,0) (1,0) (1,1): nothing after the failure.
}

TEST(AlternatingTest, PairedRatiosAreOfRunsOfTheSameRepetition) {
  // The machine slows down fourfold over the run; system 0 is twice as fast
  // as its baseline in every repetition but one disturbed one. Each ratio is
  // of two runs of the same repetition, so the slowdown cancels.
  absl::StatusOr<PairedRuns> runs =
      RunPaired(4, [](int system, int rep) -> absl::StatusOr<double> {
        const double machine = 1000.0 / (rep + 1);  // 1000, 500, 333, 250
        return system == 0 ? machine : machine / (rep == 2 ? 4 : 2);
      });
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->paired.ratios.size(), 4u);
  EXPECT_DOUBLE_EQ(runs->paired.ratios[0], 2);
  EXPECT_DOUBLE_EQ(runs->paired.ratios[2], 4);
  EXPECT_DOUBLE_EQ(runs->paired.median_ratio, 2);
}

TEST(AlternatingTest, PairsWithoutABaselineFigureAreLeftOut) {
  PairedRatios p = PairRatios({10, 20, 30}, {5, 0});
  EXPECT_EQ(p.ratios, (std::vector<double>{2}));
  EXPECT_EQ(p.median_ratio, 2);
  EXPECT_EQ(PairRatios({10}, {0}).median_ratio, -1);
  EXPECT_EQ(PairRatios({}, {}).median_ratio, -1);
}

TEST(ClosedLoopTest, EveryCallerRunsUntilTheEndAndFailuresAreCountedNotTimed) {
  std::atomic<uint64_t> calls[3] = {};
  const ClosedLoopResult r = RunClosedLoop(
      3, std::chrono::milliseconds(50), [&](int caller, uint64_t seq) {
        EXPECT_EQ(calls[caller].fetch_add(1), seq);  // seq counts per caller
        return seq % 2 == 0;                         // every other one fails
      });
  uint64_t total = 0;
  for (const auto& c : calls) {
    EXPECT_GT(c.load(), 0u);
    total += c.load();
  }
  EXPECT_EQ(r.latencies_us.size() + r.errors, total);
  EXPECT_GE(r.errors, total / 2 - 3);
  EXPECT_LE(r.errors, total / 2 + 3);
  EXPECT_GE(r.seconds, 0.05);
  EXPECT_NEAR(r.ops_per_s, static_cast<double>(r.latencies_us.size()) / r.seconds,
              1e-6 * r.ops_per_s);
}

class JsonOutputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("bench_lib_test." + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(JsonOutputTest, WrittenFileParsesBackToTheSameDocument) {
  const std::string path = (dir_ / "r.json").string();
  const nlohmann::json j = {{"benchmark", "storage"},
                            {"rows", {{{"writers", 1}, {"store_ops_per_s", 812.5}}}}};
  ASSERT_TRUE(WriteJsonFile(path, j).ok());
  std::ifstream f(path);
  const nlohmann::json back = nlohmann::json::parse(f, nullptr, false);
  ASSERT_FALSE(back.is_discarded());
  EXPECT_EQ(back, j);
}

TEST_F(JsonOutputTest, EmptyPathWritesNothing) {
  EXPECT_TRUE(WriteJsonFile("", {{"a", 1}}).ok());
}

TEST_F(JsonOutputTest, UnwritablePathIsAnError) {
  const absl::Status s =
      WriteJsonFile((dir_ / "no-such-dir" / "r.json").string(), {{"a", 1}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_NE(s.message().find("cannot write"), std::string::npos);
}

TEST_F(JsonOutputTest, OrReportSaysWhetherTheBenchmarkMayExitZero) {
  EXPECT_TRUE(WriteJsonFileOrReport((dir_ / "r.json").string(), {{"a", 1}}));
  EXPECT_TRUE(WriteJsonFileOrReport("", {{"a", 1}}));
  EXPECT_FALSE(
      WriteJsonFileOrReport((dir_ / "no-such-dir" / "r.json").string(), {{"a", 1}}));
}

TEST(MachineLoadTest, JsonHasTheFieldsTheSuiteReads) {
  MachineLoadCheck check(/*busy_fraction=*/1e9);  // never busy
  check.Finish();
  const nlohmann::json j = check.ToJson();
  ASSERT_TRUE(j["loadavg_before"].is_array());
  EXPECT_EQ(j["loadavg_before"].size(), 3u);
  EXPECT_EQ(j["loadavg_after"].size(), 3u);
  EXPECT_EQ(j["busy"], false);
  EXPECT_GE(j["cpus"].get<int>(), 1);
  EXPECT_EQ(check.DescribeBefore().find("WARNING"), std::string::npos);
}

TEST(MachineLoadTest, BusyWhenTheLoadExceedsTheFraction) {
  LoadAverage load;
  load.one = 2.0 * OnlineCpus();
  EXPECT_TRUE(MachineBusy(load, 0.5));
  EXPECT_NE(DescribeLoad("before", load, 0.5).find("WARNING"),
            std::string::npos);
  load.one = 0;
  EXPECT_FALSE(MachineBusy(load, 0.5));
}

TEST(RedisBaselineTest, ParsesTheRowOfItsTestFromRedisBenchmarkCsv) {
  // redis-benchmark --csv: test, rps, avg, min, p50, p95, p99, max (ms).
  const std::string header =
      "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\","
      "\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n";
  const std::string set =
      "\"SET\",\"1234.50\",\"0.800\",\"0.100\",\"0.700\",\"1.500\",\"2.250\",\"9.000\"\n";
  EXPECT_FALSE(ParseRedisBenchmarkCsvLine(header, "SET").has_value());
  EXPECT_FALSE(ParseRedisBenchmarkCsvLine(set, "GET").has_value());
  const std::optional<RedisBenchmarkRow> row = ParseRedisBenchmarkCsvLine(set, "SET");
  ASSERT_TRUE(row.has_value());
  EXPECT_DOUBLE_EQ(row->ops_per_s, 1234.5);
  EXPECT_DOUBLE_EQ(row->p50_us, 700);
  EXPECT_DOUBLE_EQ(row->p99_us, 2250);
}

}  // namespace
}  // namespace baton::bench

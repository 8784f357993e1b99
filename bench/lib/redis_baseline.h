// Redis with appendfsync always, the baseline the throughput benchmarks put
// beside baton's durable writes: a redis-server of its own (appendonly yes,
// appendfsync always, no snapshots) on a free loopback port, data in a
// temporary directory, driven by redis-benchmark.
//
// Thread safety: one thread uses an instance.
#ifndef BATON_BENCH_LIB_REDIS_BASELINE_H_
#define BATON_BENCH_LIB_REDIS_BASELINE_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace baton::bench {

// One test's figures from `redis-benchmark --csv`.
struct RedisBenchmarkRow {
  double ops_per_s = 0;
  double p50_us = 0;
  double p99_us = 0;
};

// One line of `redis-benchmark --csv`:
//   "SET","rps","avg","min","p50","p95","p99","max" (latencies in ms).
// The row when the line is the one of `test_upper` (e.g. "SET", "GET"),
// else nullopt (headers, other tests, noise).
std::optional<RedisBenchmarkRow> ParseRedisBenchmarkCsvLine(
    std::string_view line, std::string_view test_upper);

class RedisBaseline {
 public:
  // Starts redis-server in a new directory under `dir` and waits 500 ms for
  // it to listen. nullptr when redis-server or redis-benchmark is not
  // installed (/usr/bin) or the server cannot be started.
  static std::unique_ptr<RedisBaseline> Start(const std::string& dir);

  // Stops the server (SIGTERM, waits for it) and removes its directory.
  ~RedisBaseline();
  RedisBaseline(const RedisBaseline&) = delete;
  RedisBaseline& operator=(const RedisBaseline&) = delete;

  pid_t pid() const { return pid_; }

  struct Result {
    RedisBenchmarkRow row;
    uint64_t requests = 0;  // what redis-benchmark was told to send.
  };

  // One redis-benchmark run of `test` ("set", "get", "incr") over `clients`
  // connections with values of `value_bytes`, keys drawn from `key_space`
  // random keys, sized to last about `seconds` at `expected_rate` requests/s
  // and at least `min_requests`. nullopt when it printed no row for `test`.
  std::optional<Result> Measure(const std::string& test, int clients,
                                double seconds, size_t value_bytes,
                                double expected_rate, uint64_t min_requests,
                                uint64_t key_space) const;

 private:
  RedisBaseline() = default;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string dir_;
};

}  // namespace baton::bench

#endif  // BATON_BENCH_LIB_REDIS_BASELINE_H_

#include "bench/lib/redis_baseline.h"

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

extern char** environ;

namespace baton::bench {
namespace {

// A loopback TCP port nobody listens on right now (0 if none found).
int FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

constexpr char kServer[] = "/usr/bin/redis-server";
constexpr char kBenchmark[] = "/usr/bin/redis-benchmark";

}  // namespace

std::optional<RedisBenchmarkRow> ParseRedisBenchmarkCsvLine(
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

std::unique_ptr<RedisBaseline> RedisBaseline::Start(const std::string& dir) {
  if (!std::filesystem::exists(kServer) ||
      !std::filesystem::exists(kBenchmark)) {
    return nullptr;
  }
  std::unique_ptr<RedisBaseline> r(new RedisBaseline);
  std::string tmpl = dir + "/bench-redis-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return nullptr;
  r->dir_ = tmpl;
  r->port_ = FreeLoopbackPort();
  std::vector<std::string> args = {
      kServer, "--port", std::to_string(r->port_), "--bind", "127.0.0.1",
      "--dir", r->dir_, "--appendonly", "yes", "--appendfsync", "always",
      "--save", "", "--daemonize", "no", "--logfile", r->dir_ + "/redis.log"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (::posix_spawn(&r->pid_, argv[0], nullptr, nullptr, argv.data(),
                    environ) != 0) {
    r->pid_ = -1;
    return nullptr;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  return r;
}

RedisBaseline::~RedisBaseline() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
  if (!dir_.empty()) std::filesystem::remove_all(dir_);
}

std::optional<RedisBaseline::Result> RedisBaseline::Measure(
    const std::string& test, int clients, double seconds, size_t value_bytes,
    double expected_rate, uint64_t min_requests, uint64_t key_space) const {
  const uint64_t n = std::max<uint64_t>(
      min_requests, static_cast<uint64_t>(expected_rate * seconds));
  const std::string cmd = absl::StrCat(
      kBenchmark, " -h 127.0.0.1 -p ", port_, " -t ", test, " -c ", clients,
      " -n ", n, " -d ", value_bytes, " -r ", key_space, " -q --csv 2>&1");
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) return std::nullopt;
  std::string upper = test;
  for (char& ch : upper) {
    ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  }
  char line[1024];
  std::optional<Result> out;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    std::optional<RedisBenchmarkRow> row = ParseRedisBenchmarkCsvLine(line, upper);
    if (row) out = Result{*row, n};
  }
  ::pclose(f);
  return out;
}

}  // namespace baton::bench

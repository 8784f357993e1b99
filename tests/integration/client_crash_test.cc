// The retrying client across real crashes: client threads (half over HTTP,
// half over gRPC, all through framework/client) send INCRs while
// baton-kvserver is SIGKILLed at seeded random moments and restarted on the
// same data directory and ports. The client library alone does the retrying.
// Then:
//   - no call gave up (every INCR got a final answer within its deadline);
//   - every counter equals the number of acknowledged INCRs on it, and their
//     replies are exactly 1..N (none lost, none applied twice);
//   - requests in flight at a kill were answered after the restart (some
//     took more than one attempt).
// Seed: BATON_SEED (environment) or random; printed.
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "gtest/gtest.h"
#include "samples/kvservice/kv_client.h"
#include "tests/integration/client_server_process.h"

namespace baton {
namespace {

using kvservice::KvClient;
using kvservice::KvProtocol;
using kvservice::KvResult;
using namespace std::chrono_literals;

TEST(ClientCrashTest, KillNineDuringLoadLosesAndDuplicatesNothing) {
  const char* env_seed = std::getenv("BATON_SEED");
  const uint64_t seed = env_seed ? std::strtoull(env_seed, nullptr, 10)
                                 : std::random_device{}();
  SCOPED_TRACE("BATON_SEED=" + std::to_string(seed));
  std::printf("BATON_SEED=%llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);

  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      ("baton_client_crash_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  testing::KvServerProcess server(BATON_KVSERVER_PATH, dir,
                                  {"--worker-threads", "16"});
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;

  constexpr int kClients = 6;
  constexpr int kKeys = 2;
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::map<std::string, std::vector<int64_t>> replies;  // key -> INCR replies
  std::atomic<int> gave_up{0}, retried{0}, calls{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    const KvProtocol p = i % 2 ? KvProtocol::kGrpc : KvProtocol::kHttp;
    const std::string endpoint =
        p == KvProtocol::kHttp ? server.http_endpoint() : server.grpc_endpoint();
    threads.emplace_back([&, p, endpoint, i] {
      framework::client::ClientOptions o;
      o.retry.attempt_timeout = absl::Seconds(1);
      o.retry.deadline = absl::Seconds(30);
      o.retry.max_backoff = absl::Milliseconds(200);
      auto c = KvClient::Connect(p, endpoint, o);
      ASSERT_TRUE(c.ok());
      for (int j = 0; !stop.load(); ++j) {
        const std::string key = "ctr" + std::to_string((i + j) % kKeys);
        KvResult r = (*c)->Incr(key);
        ++calls;
        if (r.call.attempts > 1) ++retried;
        if (!r.ok()) {
          ++gave_up;
          ADD_FAILURE() << "INCR " << key << ": " << r.error;
          continue;
        }
        int64_t v = 0;
        EXPECT_TRUE(absl::SimpleAtoi(r.value_json, &v));
        std::lock_guard<std::mutex> lock(mu);
        replies[key].push_back(v);
      }
    });
  }
  constexpr int kCrashes = 4;
  for (int k = 0; k < kCrashes; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + rng() % 350));
    server.Kill9();
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 100));
    ASSERT_TRUE(server.Start(&error)) << error;
  }
  std::this_thread::sleep_for(300ms);
  stop = true;
  for (auto& t : threads) t.join();

  EXPECT_EQ(gave_up.load(), 0);
  EXPECT_GT(retried.load(), 0) << "no request was caught by a crash";
  auto reader = KvClient::Connect(KvProtocol::kHttp, server.http_endpoint());
  ASSERT_TRUE(reader.ok());
  int64_t total = 0;
  for (auto& [key, vals] : replies) {
    KvResult r = (*reader)->Get(key);
    ASSERT_TRUE(r.ok()) << r.error;
    int64_t stored = 0;
    ASSERT_TRUE(absl::SimpleAtoi(r.value_json, &stored));
    EXPECT_EQ(stored, static_cast<int64_t>(vals.size()))
        << key << ": counter differs from the acknowledged INCRs";
    std::set<int64_t> distinct(vals.begin(), vals.end());
    EXPECT_EQ(distinct.size(), vals.size()) << key << ": a reply seen twice";
    EXPECT_EQ(*distinct.begin(), 1);
    EXPECT_EQ(*distinct.rbegin(), static_cast<int64_t>(vals.size()));
    total += stored;
  }
  std::printf("%d calls, %d retried, %lld acknowledged INCRs over %d crashes\n",
              calls.load(), retried.load(), static_cast<long long>(total),
              kCrashes);
  EXPECT_EQ(server.Terminate(), 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace baton

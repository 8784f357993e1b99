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
// And, over each front end, a crash exactly between commit and send (the
// server SIGKILLs itself right after the completion record is durable): the
// client's retry to the restarted server gets the stored reply, flagged as a
// replay, and the counter moved once.
// Seed: BATON_SEED (environment) or random; printed.
#include <sys/wait.h>

#include <atomic>
#include <csignal>
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

class CrashBetweenCommitAndSendTest
    : public ::testing::TestWithParam<KvProtocol> {};

TEST_P(CrashBetweenCommitAndSendTest, RetryGetsTheStoredReplyAsAReplay) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      ("baton_client_commit_kill_" + std::to_string(::getpid()) + "_" +
       std::to_string(static_cast<int>(GetParam())));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  // Dies right after its 2nd completion record (the INCR below) is durable.
  testing::KvServerProcess server(BATON_KVSERVER_PATH, dir,
                                  {"--test-kill-after-records", "2"});
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  framework::client::ClientOptions o;
  o.retry.attempt_timeout = absl::Seconds(2);
  o.retry.deadline = absl::Seconds(30);
  o.retry.max_backoff = absl::Milliseconds(100);
  auto c = KvClient::Connect(GetParam(),
                             GetParam() == KvProtocol::kHttp
                                 ? server.http_endpoint()
                                 : server.grpc_endpoint(),
                             o);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->Put("a", "1").ok());  // record 1
  std::thread restarter([&] {
    int status = 0;
    ASSERT_TRUE(server.WaitExit(std::chrono::seconds(20), &status))
        << "the server did not kill itself after the commit";
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    server.set_extra_args({});
    std::string e;
    ASSERT_TRUE(server.Start(&e)) << e;
  });
  KvResult r = (*c)->Incr("n", 7);  // record 2: committed, reply never sent
  restarter.join();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_GE(r.call.attempts, 2);
  EXPECT_TRUE(r.replayed()) << "the retry must be answered from the record";
  EXPECT_EQ(r.value_json, "7");
  KvResult g = (*c)->Get("n");
  ASSERT_TRUE(g.ok()) << g.error;
  EXPECT_EQ(g.value_json, "7") << "INCR applied twice or lost";
  EXPECT_EQ(server.Terminate(), 0);
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    BothFrontEnds, CrashBetweenCommitAndSendTest,
    ::testing::Values(KvProtocol::kHttp, KvProtocol::kGrpc),
    [](const ::testing::TestParamInfo<KvProtocol>& i) {
      return std::string(i.param == KvProtocol::kHttp ? "Http" : "Grpc");
    });

}  // namespace
}  // namespace baton

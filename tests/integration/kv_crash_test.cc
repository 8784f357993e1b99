// Process-crash test of the real baton-kvserver binary: several client
// threads send INCRs and PUTs, each with its own Idempotency-Key, while the
// server is killed with SIGKILL at random (seeded) moments and restarted on
// the same data directory. Every request whose reply was not seen is retried
// (same key, same body) until answered. Then:
//   - every counter equals the number of distinct INCRs sent to it, and the
//     replies of those INCRs are exactly 1..N (no INCR applied twice, none
//     lost, no reply invented);
//   - every acknowledged PUT is readable;
//   - re-sending acknowledged requests gets replays and changes nothing.
// Seed: BATON_SEED (environment) or random; printed.
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>  // Before Asio: Boost 1.74 uses std::exchange without it.
#include <vector>

#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/spawn.h"


namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// The server process, restartable on the same data directory.
class Server {
 public:
  explicit Server(std::filesystem::path dir) : dir_(std::move(dir)) {}
  ~Server() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  // Starts the binary and waits until it listens.
  void Start() {
    const std::filesystem::path ready = dir_ / "ready";
    std::filesystem::remove(ready);
    const std::string data = (dir_ / "data").string();
    const std::string log = (dir_ / "server.log").string();
    std::vector<std::string> args = {BATON_KVSERVER_PATH, "--listen",
                                     "127.0.0.1:0", "--data-dir", data,
                                     "--ready-file", ready.string(),
                                     "--log-level", "warn",
                                     "--worker-threads", "16"};
    const int rc = baton::testing::SpawnWithLog(args, log, &pid_);
    ASSERT_EQ(rc, 0) << "cannot start " << args[0];
    const auto deadline = Clock::now() + 15s;
    while (!std::filesystem::exists(ready)) {
      int status = 0;
      ASSERT_EQ(::waitpid(pid_, &status, WNOHANG), 0)
          << "server exited during start-up; see " << log;
      ASSERT_LT(Clock::now(), deadline) << "server did not start; see " << log;
      std::this_thread::sleep_for(10ms);
    }
    std::ifstream f(ready);
    std::string hostport;
    f >> hostport;
    port_.store(static_cast<uint16_t>(
        std::stoi(hostport.substr(hostport.rfind(':') + 1))));
  }

  void Kill9() {
    ASSERT_GT(pid_, 0);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  int Terminate() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  uint16_t port() const { return port_.load(); }

 private:
  std::filesystem::path dir_;
  pid_t pid_ = -1;
  std::atomic<uint16_t> port_{0};
};

struct Reply {
  int status = 0;
  std::string body;
  bool replayed = false;
};

// A keep-alive client connection that reconnects after any failure.
class Client {
 public:
  explicit Client(const Server& server) : server_(server) {}

  // One attempt; nullopt if the connection failed or timed out.
  std::optional<Reply> Try(http::verb method, const std::string& target,
                           const std::string& body, const std::string& key) {
    try {
      if (!socket_ || port_ != server_.port()) Connect();
      http::request<http::string_body> req{method, target, 11};
      req.set(http::field::host, "127.0.0.1");
      if (!key.empty()) req.set("Idempotency-Key", "\"" + key + "\"");
      req.set(http::field::content_type, "application/json");
      req.body() = body;
      req.prepare_payload();
      http::write(*socket_, req);
      http::response<http::string_body> res;
      http::read(*socket_, buffer_, res);
      Reply r{static_cast<int>(res.result_int()), res.body(),
              res["Idempotent-Replayed"] == "true"};
      if (!res.keep_alive()) socket_.reset();
      return r;
    } catch (const std::exception&) {
      socket_.reset();
      return std::nullopt;
    }
  }

  // Retries until a non-retryable answer (not 409/503, not a broken
  // connection) arrives or the deadline passes.
  Reply Call(http::verb method, const std::string& target,
             const std::string& body, const std::string& key,
             Clock::time_point deadline, int* attempts = nullptr) {
    for (int n = 1;; ++n) {
      std::optional<Reply> r = Try(method, target, body, key);
      if (attempts) *attempts = n;
      if (r && r->status != 409 && r->status != 503) return *r;
      if (Clock::now() > deadline) return Reply{};
      std::this_thread::sleep_for(20ms);
    }
  }

 private:
  void Connect() {
    socket_.reset();
    buffer_.clear();
    port_ = server_.port();
    auto s = std::make_unique<tcp::socket>(ioc_);
    s->connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port_));
    // A reply that does not come within 2 s counts as lost (server killed).
    timeval tv{2, 0};
    setsockopt(s->native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(s->native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    socket_ = std::move(s);
  }

  const Server& server_;
  net::io_context ioc_;
  std::unique_ptr<tcp::socket> socket_;
  beast::flat_buffer buffer_;
  uint16_t port_ = 0;
};

struct Op {
  bool incr;
  std::string target;
  std::string body;
  std::string key;
};

TEST(KvCrashTest, KillNineNeverLosesOrDuplicatesAcknowledgedRequests) {
  uint64_t seed = std::random_device()();
  if (const char* s = std::getenv("BATON_SEED")) seed = std::strtoull(s, nullptr, 10);
  std::printf("kv_crash_test seed: %llu (rerun with BATON_SEED=%llu)\n",
              static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed));
  SCOPED_TRACE("seed " + std::to_string(seed));

  char tmpl[] = "/tmp/baton-kvcrash-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::filesystem::path dir(tmpl);
  Server server(dir);
  ASSERT_NO_FATAL_FAILURE(server.Start());

  constexpr int kThreads = 4;
  constexpr int kCounters = 3;
  constexpr int kKills = 5;
  const auto deadline = Clock::now() + 50s;
  std::atomic<bool> stop{false};
  std::atomic<int> lost_replies{0}, replays{0}, failures{0};
  std::mutex mu;
  std::map<std::string, std::vector<int64_t>> incr_replies;  // counter -> values
  std::map<std::string, int> incr_sent;
  std::map<std::string, std::string> puts_acked;  // key -> JSON value
  std::vector<Op> acked_ops;

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed * 1000 + t);
      Client client(server);
      for (int i = 0; !stop.load() && Clock::now() < deadline; ++i) {
        Op op;
        op.key = "t" + std::to_string(t) + "-op" + std::to_string(i);
        op.incr = rng() % 10 < 6;
        if (op.incr) {
          op.target = "/kv/counter" + std::to_string(rng() % kCounters) + "/incr";
          op.body = R"({"by":1})";
        } else {
          op.target = "/kv/put-" + op.key;
          op.body = json{{"value", "v" + std::to_string(rng())}}.dump();
        }
        int attempts = 0;
        Reply r = client.Call(op.incr ? http::verb::post : http::verb::put,
                              op.target, op.body, op.key, deadline, &attempts);
        if (r.status != 200) {
          ++failures;
          ADD_FAILURE() << op.key << " " << op.target << " -> " << r.status
                        << " " << r.body;
          return;
        }
        if (attempts > 1) ++lost_replies;
        if (r.replayed) ++replays;
        json j = json::parse(r.body);
        std::lock_guard<std::mutex> lock(mu);
        if (op.incr) {
          const std::string counter = j["key"];
          incr_replies[counter].push_back(j["value"].get<int64_t>());
        } else {
          puts_acked[j["key"]] = json::parse(op.body)["value"].dump();
        }
        acked_ops.push_back(op);
      }
    });
  }

  std::mt19937_64 rng(seed);
  for (int k = 0; k < kKills && failures.load() == 0; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + rng() % 450));
    server.Kill9();
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 100));
    ASSERT_NO_FATAL_FAILURE(server.Start());
  }
  std::this_thread::sleep_for(300ms);
  stop = true;
  for (auto& th : threads) th.join();
  ASSERT_EQ(failures.load(), 0);

  Client client(server);
  size_t incrs = 0;
  for (auto& [counter, values] : incr_replies) {
    std::sort(values.begin(), values.end());
    incrs += values.size();
    Reply r = client.Call(http::verb::get, "/kv/" + counter, "", "", deadline + 5s);
    ASSERT_EQ(r.status, 200) << counter;
    EXPECT_EQ(json::parse(r.body)["value"].get<int64_t>(),
              static_cast<int64_t>(values.size()))
        << counter << ": an INCR was lost or applied twice";
    for (size_t i = 0; i < values.size(); ++i) {
      ASSERT_EQ(values[i], static_cast<int64_t>(i + 1))
          << counter << ": replies are not exactly 1..N";
    }
  }
  for (const auto& [key, value] : puts_acked) {
    Reply r = client.Call(http::verb::get, "/kv/" + key, "", "", deadline + 5s);
    ASSERT_EQ(r.status, 200) << key << " was acknowledged but is gone";
    EXPECT_EQ(json::parse(r.body)["value"].dump(), value) << key;
  }
  // Acknowledged requests sent again are replays and change nothing.
  std::map<std::string, int64_t> before;
  for (const auto& [counter, values] : incr_replies) before[counter] = values.size();
  for (size_t i = 0; i < acked_ops.size(); i += std::max<size_t>(1, acked_ops.size() / 20)) {
    const Op& op = acked_ops[i];
    Reply r = client.Call(op.incr ? http::verb::post : http::verb::put,
                          op.target, op.body, op.key, deadline + 5s);
    EXPECT_EQ(r.status, 200);
    EXPECT_TRUE(r.replayed) << op.key;
  }
  for (const auto& [counter, n] : before) {
    Reply r = client.Call(http::verb::get, "/kv/" + counter, "", "", deadline + 5s);
    EXPECT_EQ(json::parse(r.body)["value"].get<int64_t>(), n) << counter;
  }

  std::printf(
      "kv_crash_test: %d kills, %zu requests acknowledged (%zu INCRs, %zu "
      "PUTs), %d needed a retry, %d answered as replays\n",
      kKills, acked_ops.size(), incrs, puts_acked.size(), lost_replies.load(),
      replays.load());
  EXPECT_GT(lost_replies.load(), 0) << "no kill hit a request in flight";
  EXPECT_EQ(server.Terminate(), 0) << "clean shutdown on SIGTERM";
  std::filesystem::remove_all(dir);
}

}  // namespace

// baton-kvserver on etcd (config `store: {kind: etcd}`), as a process, with a
// real etcd the test starts on loopback: two servers ("hosts" h1 and h2) share
// the cluster, so an INCR answered by one is seen and replayed by the other;
// every reply names the host that answered (Baton-Node); a config mistake in
// the store section exits 2 naming the key.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <utility>  // Before Asio: Boost 1.74 uses std::exchange without it.

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "storage/etcd/etcd_store.h"
#include "storage/etcd/testing/etcd_launcher.h"
#include "tests/testing/spawn.h"

namespace baton::kvservice {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

struct Answer {
  int status = 0;
  std::string body, node;
  bool replayed = false;
};

Answer Post(const std::string& host_port, const std::string& target,
            const std::string& key, const std::string& body) {
  const size_t colon = host_port.rfind(':');
  net::io_context ioc;
  net::ip::tcp::socket socket(ioc);
  socket.connect({net::ip::make_address(host_port.substr(0, colon)),
                  static_cast<uint16_t>(std::stoi(host_port.substr(colon + 1)))});
  http::request<http::string_body> req(
      body.empty() ? http::verb::get : http::verb::post, target, 11);
  req.set(http::field::host, host_port);
  if (!key.empty()) req.set("Idempotency-Key", "\"" + key + "\"");
  req.body() = body;
  req.prepare_payload();
  http::write(socket, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(socket, buf, res);
  return Answer{static_cast<int>(res.result_int()), res.body(),
                std::string(res["Baton-Node"]),
                res["Idempotent-Replayed"] == "true"};
}

class Server {
 public:
  Server(const std::string& dir, const std::string& name,
         const std::string& yaml)
      : dir_(dir), name_(name) {
    const std::string config = absl::StrCat(dir, "/", name, ".yaml");
    std::ofstream(config) << yaml;
    ready_ = absl::StrCat(dir, "/", name, ".ready");
    log_ = absl::StrCat(dir, "/", name, ".log");
    rc_ = testing::SpawnWithLog(
        {BATON_KVSERVER_PATH, "--config", config, "--ready-file", ready_}, log_,
        &pid_);
  }
  ~Server() { Stop(); }
  // Waits for the ready file; "" if the process exited first (its status in
  // *exit_code).
  std::string WaitReady(int* exit_code = nullptr) {
    if (rc_ != 0) return "";
    for (int i = 0; i < 300; ++i) {
      std::ifstream f(ready_);
      std::string line;
      if (std::getline(f, line) && !line.empty()) return line;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        if (exit_code) *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        return "";
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return "";
  }
  // The operator plane's address: line 3 of the ready file.
  std::string AdminAddress() const {
    std::ifstream f(ready_);
    std::string line;
    for (int i = 0; i < 3 && std::getline(f, line); ++i) {
    }
    return line;
  }
  void Stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  std::string Log() const {
    std::ifstream f(log_);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }

 private:
  std::string dir_, name_, ready_, log_;
  pid_t pid_ = -1;
  int rc_ = 0;
};

class KvEtcdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> binary =
        storage::testing::EtcdCluster::FindBinary();
    if (!binary.ok()) {
      const char* ci = std::getenv("CI");
      if (ci != nullptr && std::string(ci) == "true") {
        FAIL() << binary.status() << " (required under CI=true)";
      }
      GTEST_SKIP() << binary.status();
    }
    auto c = storage::testing::EtcdCluster::Start({});
    ASSERT_TRUE(c.ok()) << c.status();
    etcd_ = *std::move(c);
    dir_ = absl::StrCat(::testing::TempDir(), "/kv-etcd-test-", ::getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    etcd_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  std::string Yaml(const std::string& node, const std::string& extra = "") {
    return absl::StrCat("listen: 127.0.0.1:0\nnode_name: ", node,
                        "\nstore:\n  kind: etcd\n  endpoints: [",
                        absl::StrJoin(etcd_->ClientEndpoints(), ", "),
                        "]\n  key_prefix: kvtest/\n  dial_timeout: 1s\n"
                        "  request_timeout: 3s\n",
                        extra);
  }
  std::unique_ptr<storage::testing::EtcdCluster> etcd_;
  std::string dir_;
};

TEST_F(KvEtcdTest, TwoServersShareTheStoreAndNameThemselves) {
  Server h1(dir_, "h1", Yaml("h1")), h2(dir_, "h2", Yaml("h2"));
  const std::string a1 = h1.WaitReady(), a2 = h2.WaitReady();
  ASSERT_FALSE(a1.empty()) << h1.Log();
  ASSERT_FALSE(a2.empty()) << h2.Log();

  Answer r = Post(a1, "/kv/visits/incr", "i1", "{\"by\":1}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.node, "h1");
  r = Post(a2, "/kv/visits/incr", "i2", "{\"by\":2}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.node, "h2");
  EXPECT_EQ(nlohmann::json::parse(r.body)["value"], 3);
  // The retry of i1 reaches h2 (as after a take-over): the saved reply.
  r = Post(a2, "/kv/visits/incr", "i1", "{\"by\":1}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(r.replayed);
  EXPECT_EQ(nlohmann::json::parse(r.body)["value"], 1);
  EXPECT_EQ(r.node, "h2");
  // Error replies name the host too.
  r = Post(a1, "/nope", "", "");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.node, "h1");

  // Each server counts what it did: h1 executed one INCR and committed it
  // (the failed request made no commit); its store is etcd. The statistics
  // are on the operator plane, never on the service port.
  EXPECT_EQ(Post(a1, "/baton/stats", "", "").status, 404);
  r = Post(h1.AdminAddress(), "/baton/stats", "", "");
  ASSERT_EQ(r.status, 200) << r.body;
  const nlohmann::json stats = nlohmann::json::parse(r.body);
  EXPECT_EQ(stats["pipeline"]["executed"], 1) << r.body;
  EXPECT_EQ(stats["store"]["kind"], "etcd") << r.body;
  EXPECT_GE(stats["store"]["commits"].get<uint64_t>(), 1u) << r.body;
  EXPECT_GE(stats["store"]["commit_txns"].get<uint64_t>(), 1u) << r.body;

  // The data is in etcd under the configured prefix.
  storage::EtcdOptions o;
  o.endpoints = etcd_->ClientEndpoints();
  o.key_prefix = "kvtest/";
  auto store = storage::OpenEtcdStore(o);
  ASSERT_TRUE(store.ok()) << store.status();
  auto v = (*store)->Get("visits");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(nlohmann::json::parse(v->value)["value"], 3) << v->value;
}

TEST_F(KvEtcdTest, StoreMistakesExitTwoNamingTheKey) {
  struct Case {
    std::string yaml, mentions;
  } cases[] = {
      {Yaml("h1", "  bogus: 1\n"), "store.bogus"},
      {"store: {kind: zookeeper}\n", "store.kind"},
      {"store: {kind: etcd, dial_timeout: soon}\n", "store.dial_timeout"},
      {"store: {kind: rocksdb, endpoints: [a:1]}\n", "store.endpoints"},
      {"node_name: \"\"\n", "node_name"},
      {"takeover:\n  node_id: 1\n", "takeover"},
      {"takeover: [1]\n", "takeover"},
  };
  int n = 0;
  for (const Case& c : cases) {
    Server s(dir_, absl::StrCat("bad", n++), c.yaml);
    int code = -2;
    EXPECT_EQ(s.WaitReady(&code), "") << c.yaml;
    EXPECT_EQ(code, 2) << c.yaml << s.Log();
    EXPECT_NE(s.Log().find(c.mentions), std::string::npos)
        << c.yaml << " -> " << s.Log();
  }
}

}  // namespace
}  // namespace baton::kvservice

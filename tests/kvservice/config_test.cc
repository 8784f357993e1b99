// The server config (framework/server.h LoadServerConfig) on baton-kvserver's
// shipped kvservice.yaml, and mistakes: every one is named, none wraps.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "framework/server.h"
#include "gtest/gtest.h"

namespace baton::framework {
namespace {

std::string WriteTemp(const std::string& text) {
  const std::string path =
      std::filesystem::temp_directory_path() /
      ("baton-kvconfig-" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(path) << text;
  return path;
}

absl::StatusOr<ServerConfig> Parse(const std::string& yaml) {
  return ParseServerConfig(yaml, "kvservice");
}

TEST(KvConfigTest, ShippedConfigLoads) {
  auto c = LoadServerConfig(BATON_KVSERVICE_YAML, "kvservice");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->http.address, "127.0.0.1");
  EXPECT_EQ(c->http.port, 8080);
  EXPECT_EQ(c->store.data_dir, "./var/kvdata");
  EXPECT_TRUE(c->store.sync);
  EXPECT_EQ(c->http.max_header_bytes, 8192u);
  EXPECT_EQ(c->http.max_body_bytes, 1048576u);
  EXPECT_EQ(c->pipeline.retention, absl::Hours(24));
  EXPECT_TRUE(c->gc);
  EXPECT_TRUE(c->admin.enabled);
  EXPECT_EQ(c->admin.listen, "127.0.0.1:8081");
  // The shipped file uses the one duration syntax: no deprecation warning.
  EXPECT_TRUE(c->warnings.empty()) << c->warnings.front();
}

TEST(KvConfigTest, MistakesAreNamed) {
  struct Case {
    const char* yaml;
    const char* mentions;
  } cases[] = {
      {"bogus: 1\n", "bogus"},
      {"http:\n  max_body: 3\n", "http.max_body"},
      {"http:\n  worker_threads: many\n", "http.worker_threads"},
      {"listen: nohost\n", "host:port"},
      {"pipeline:\n  retention_hours: -1\n", "retention_hours"},
      {"listen: [1, 2\n", "not valid YAML"},
      // Issue 13: 4294967296 silently became 0 (every request 431).
      {"http:\n  max_header_bytes: 4294967296\n", "http.max_header_bytes"},
      // Issue 13: io_threads 100000000 aborted the process.
      {"http:\n  io_threads: 100000000\n", "http.io_threads"},
      {"http:\n  worker_threads: 0\n", "http.worker_threads"},
      {"http:\n  idle_timeout: 30\n", "http.idle_timeout"},
      {"http:\n  idle_timeout: -5s\n", "http.idle_timeout"},
      {"grpc:\n  max_message_bytes: 99999999999\n", "grpc.max_message_bytes"},
      {"pipeline:\n  max_attempts: 0\n", "pipeline.max_attempts"},
      {"store:\n  kind: etcd\n  max_txn_ops: -1\n", "store.max_txn_ops"},
      {"log_level: loud\n", "log_level"},
      {"takeover_mode: fork\n", "takeover_mode"},
      {"admin:\n  port: 1\n", "admin.port"},
      {"http:\n  tls:\n    cert_file: /x.pem\n", "key_file"},
  };
  for (const Case& c : cases) {
    auto got = Parse(c.yaml);
    ASSERT_FALSE(got.ok()) << c.yaml;
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << c.yaml;
    EXPECT_NE(std::string(got.status().message()).find(c.mentions),
              std::string::npos)
        << c.yaml << " -> " << got.status();
  }
  EXPECT_EQ(LoadServerConfig("/nonexistent/x.yaml", "kvservice").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(KvConfigTest, OldKeysStillWorkWithAWarning) {
  auto c = Parse(
      "http:\n  idle_timeout_ms: 1500\n"
      "pipeline:\n  retention_hours: 2\n  gc_interval_s: 5\n"
      "  in_flight_wait_ms: 250\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->http.idle_timeout, absl::Milliseconds(1500));
  EXPECT_EQ(c->pipeline.retention, absl::Hours(2));
  EXPECT_EQ(c->pipeline.gc_interval, absl::Seconds(5));
  EXPECT_EQ(c->pipeline.in_flight_wait, absl::Milliseconds(250));
  ASSERT_EQ(c->warnings.size(), 4u);
  EXPECT_NE(c->warnings[0].find("http.idle_timeout: 1500ms"), std::string::npos)
      << c->warnings[0];
  auto d = Parse("http:\n  idle_timeout: 1500ms\npipeline:\n  retention: 2h\n");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->http.idle_timeout, absl::Milliseconds(1500));
  EXPECT_TRUE(d->warnings.empty());
}

TEST(KvConfigTest, StoreNodeNameAndTakeover) {
  const std::string path = WriteTemp(
      "node_name: h7\n"
      "store:\n"
      "  kind: etcd\n"
      "  endpoints: [10.0.0.1:2379, 10.0.0.2:2379]\n"
      "  dial_timeout: 500ms\n"
      "  request_timeout: 2s\n"
      "  username: u\n"
      "  group_commits: false\n"
      "  read_cache_bytes: 1048576\n"
      "  wait_for_first_endpoint: 30s\n"
      "  health_probe_interval: 0s\n"
      "  health_probe_silent_after: 400ms\n"
      "  compaction_interval: 10m\n"
      "  quota_backend_bytes: 8589934592\n"
      "takeover:\n"
      "  node_id: 1\n"
      "  service_addresses: [10.78.0.100/24]\n");
  auto c = LoadServerConfig(path, "kvservice");
  std::filesystem::remove(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->node_name, "h7");
  EXPECT_EQ(c->store.kind, StoreConfig::Kind::kEtcd);
  EXPECT_EQ(c->store.etcd.endpoints.size(), 2u);
  EXPECT_EQ(c->store.etcd.dial_timeout, std::chrono::milliseconds(500));
  EXPECT_EQ(c->store.etcd.request_timeout, std::chrono::milliseconds(2000));
  EXPECT_EQ(c->store.etcd.username, "u");
  EXPECT_EQ(c->store.etcd.key_prefix, "kvservice/");
  EXPECT_FALSE(c->store.etcd.group_commits);
  EXPECT_EQ(c->store.etcd.read_cache_bytes, 1048576u);
  EXPECT_EQ(c->store.etcd.wait_for_first_endpoint, std::chrono::milliseconds(30000));
  EXPECT_EQ(c->store.etcd.health_probe_interval, std::chrono::milliseconds(0));
  EXPECT_EQ(c->store.etcd.health_probe_silent_after, std::chrono::milliseconds(400));
  EXPECT_EQ(c->store.etcd.compaction_interval, std::chrono::seconds(600));
  EXPECT_EQ(c->store.etcd.quota_backend_bytes, 8ull << 30);
  EXPECT_NE(c->takeover_yaml.find("10.78.0.100/24"), std::string::npos);

  auto defaults = LoadServerConfig(BATON_KVSERVICE_YAML, "kvservice");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->store.kind, StoreConfig::Kind::kRocksDb);
  EXPECT_FALSE(defaults->node_name.empty());
  EXPECT_TRUE(defaults->takeover_yaml.empty());
}

TEST(GrpcConfigTest, ShippedYamlEnablesGrpcAndMistakesAreNamed) {
  auto c = LoadServerConfig(BATON_KVSERVICE_YAML, "kvservice");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->grpc_enabled);
  EXPECT_EQ(c->grpc.address, "127.0.0.1");
  EXPECT_EQ(c->grpc.port, 9090);
  EXPECT_EQ(c->grpc.worker_threads, 16);
  std::string host;
  uint16_t port = 0;
  EXPECT_FALSE(ParseHostPort("nohost", &host, &port).ok());
  EXPECT_TRUE(ParseHostPort("[::1]:0", &host, &port).ok());
  EXPECT_EQ(host, "::1");
  auto bad = Parse("grpc:\n  workers: 3\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("grpc.workers"), std::string::npos);
}

}  // namespace
}  // namespace baton::framework

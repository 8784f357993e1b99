// baton-kvserver's YAML config: the shipped file loads, mistakes are named.
#include "samples/kvservice/config.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace baton::kvservice {
namespace {

std::string WriteTemp(const std::string& text) {
  const std::string path = std::filesystem::temp_directory_path() /
                           ("baton-kvconfig-" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(path) << text;
  return path;
}

TEST(KvConfigTest, ShippedConfigLoads) {
  auto c = LoadConfig(BATON_KVSERVICE_YAML);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->http.address, "127.0.0.1");
  EXPECT_EQ(c->http.port, 8080);
  EXPECT_EQ(c->data_dir, "./var/kvdata");
  EXPECT_TRUE(c->sync);
  EXPECT_EQ(c->http.max_header_bytes, 8192u);
  EXPECT_EQ(c->http.max_body_bytes, 1048576u);
  EXPECT_EQ(c->pipeline.retention, absl::Hours(24));
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
  };
  for (const Case& c : cases) {
    const std::string path = WriteTemp(c.yaml);
    auto got = LoadConfig(path);
    std::filesystem::remove(path);
    ASSERT_FALSE(got.ok()) << c.yaml;
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << c.yaml;
    EXPECT_NE(std::string(got.status().message()).find(c.mentions),
              std::string::npos)
        << got.status();
  }
  EXPECT_EQ(LoadConfig("/nonexistent/x.yaml").status().code(),
            absl::StatusCode::kNotFound);
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
      "takeover:\n"
      "  node_id: 1\n"
      "  service_addresses: [10.78.0.100/24]\n");
  auto c = LoadConfig(path);
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
  EXPECT_NE(c->takeover_yaml.find("10.78.0.100/24"), std::string::npos);

  auto defaults = LoadConfig(BATON_KVSERVICE_YAML);
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->store.kind, StoreConfig::Kind::kRocksDb);
  EXPECT_FALSE(defaults->node_name.empty());
  EXPECT_TRUE(defaults->takeover_yaml.empty());
}

}  // namespace
}  // namespace baton::kvservice

// The daemon's YAML configuration: a good file yields the documented values and defaults; every
// bad file is refused with a message naming the key (the daemon prints it and exits 2).
#include "takeover/daemon/config.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace baton::takeover {
namespace {

using std::chrono::milliseconds;

constexpr char kGood[] = R"(
node_id: 2
interface: eth0
service_address: 10.78.0.100/24
key_file: /etc/baton/cluster.key
peers:
  - {id: 3, priority: 50, address: 10.78.0.3}
  - {id: 1, priority: 150, address: "10.78.0.1:7000"}
  - {id: 2, priority: 100, address: "[fd78::2]:7001", capacity: 2}
timing: {heartbeat: 10ms, lease: 8, max_drift: 0.01, address_lifetime: 200, shrink_after: 100}
announce: [0ms, 5ms, 1s]
preempt: true
health_check: {tcp: "127.0.0.1:8080", period: 200ms, timeout: 50ms, fall: 2, rise: 1}
status_socket: /tmp/x.sock
state_file: /tmp/x.state
nice: -5
freshness_window: 2s
)";

TEST(DaemonConfigTest, ParsesEveryKey) {
  absl::StatusOr<DaemonConfig> c = ParseDaemonConfig(kGood);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->node_id, 2u);
  ASSERT_EQ(c->service_addresses.size(), 1u);  // the single key is a pool of one
  EXPECT_EQ(c->service_addresses[0].address, "10.78.0.100");
  EXPECT_EQ(c->service_addresses[0].prefix_length, 24);
  EXPECT_FALSE(c->service_addresses[0].ipv6);
  EXPECT_FALSE(c->rebalance);
  ASSERT_EQ(c->peers.size(), 3u);
  EXPECT_EQ(c->peers[0].id, 1u);  // sorted by id
  EXPECT_EQ(c->peers[0].port, 7000);
  EXPECT_EQ(c->peers[2].port, 7946);  // default port
  ASSERT_NE(c->self(), nullptr);
  EXPECT_EQ(c->self()->host, "fd78::2");
  EXPECT_EQ(c->self()->port, 7001);
  EXPECT_EQ(c->self()->capacity, 2);
  EXPECT_EQ(c->heartbeat, milliseconds(10));
  EXPECT_DOUBLE_EQ(c->lease_heartbeats.value_or(0), 8);
  EXPECT_DOUBLE_EQ(c->max_drift, 0.01);
  EXPECT_EQ(c->announce_schedule.size(), 3u);
  EXPECT_TRUE(c->preempt);
  EXPECT_EQ(c->health_check.kind, HealthCheckConfig::Kind::kTcp);
  EXPECT_EQ(c->health_check.tcp_port, 8080);
  EXPECT_EQ(c->health_check.period, milliseconds(200));
  EXPECT_EQ(c->health_check.fall, 2);
  EXPECT_EQ(c->label, "eth0:bt");
  EXPECT_EQ(c->label_suffix(), "bt");
  EXPECT_EQ(c->incarnation_file, "/var/lib/baton/takeoverd-2.incarnation");
  EXPECT_DOUBLE_EQ(c->shrink_after_heartbeats, 100);
  EXPECT_EQ(c->state_file, "/tmp/x.state");
  EXPECT_EQ(c->nice, -5);
  EXPECT_EQ(c->freshness_window, std::chrono::seconds(2));
}

TEST(DaemonConfigTest, DefaultsWhenOptionalKeysAreAbsent) {
  absl::StatusOr<DaemonConfig> c = ParseDaemonConfig(R"(
node_id: 1
interface: eth0
service_address: fd78::100
key_file: k
peers: [{id: 1, priority: 1, address: "::1"}]
)");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->service_addresses.size(), 1u);
  EXPECT_TRUE(c->service_addresses[0].ipv6);
  EXPECT_EQ(c->service_addresses[0].prefix_length, 128);
  EXPECT_EQ(c->heartbeat, milliseconds(100));
  EXPECT_FALSE(c->lease_heartbeats.has_value());
  EXPECT_FALSE(c->preempt);
  EXPECT_EQ(c->health_check.kind, HealthCheckConfig::Kind::kNone);
  EXPECT_EQ(c->status_socket, "/run/baton-takeoverd.sock");
  EXPECT_EQ(c->announce_schedule.size(), 5u);
  EXPECT_DOUBLE_EQ(c->shrink_after_heartbeats, 100);  // group shrink on (issue 17)
  EXPECT_EQ(c->state_file, "/var/lib/baton/takeoverd-1.state");
  EXPECT_EQ(c->nice, -10);
  // A restarted daemon must not accept an old captured datagram: the window is on by default.
  EXPECT_EQ(c->freshness_window, std::chrono::seconds(5));
  // Issue 14: a hung server is handed over within 300 ms; planned releases wait up to 200 ms
  // for the server's connections; a holder that lost its lease twice in 5 s steps back for 2 s.
  EXPECT_EQ(c->health_check.liveness, milliseconds(300));
  EXPECT_EQ(c->close_timeout, milliseconds(200));
  EXPECT_EQ(c->damping.losses, 2);
  EXPECT_EQ(c->damping.window, milliseconds(5000));
  EXPECT_EQ(c->damping.hold, milliseconds(2000));
  // Issue 14 item 8: a busy host keeps its addresses -- the daemon runs SCHED_RR 1, and a silent
  // server that waits for a CPU is given 1.5 s.
  EXPECT_EQ(c->realtime_priority, 1);
  EXPECT_EQ(c->health_check.liveness_starved, milliseconds(1500));
  // A server waiting on its store: twice the liveness.
  EXPECT_EQ(c->health_check.liveness_store, milliseconds(600));
}

TEST(DaemonConfigTest, FailOverKeys) {
  absl::StatusOr<DaemonConfig> c = ParseDaemonConfig(R"(
node_id: 1
interface: eth0
service_address: 10.0.0.1
key_file: k
peers: [{id: 1, priority: 1, address: "127.0.0.1"}]
health_check: {kind: external, liveness: 150ms, liveness_starved: 600ms, liveness_store: 450ms}
damping: {losses: 3, window: 1s, hold: 500ms}
close_timeout: 50ms
realtime_priority: 0
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->health_check.liveness, milliseconds(150));
  EXPECT_EQ(c->health_check.liveness_starved, milliseconds(600));
  EXPECT_EQ(c->health_check.liveness_store, milliseconds(450));
  EXPECT_EQ(c->realtime_priority, 0);
  EXPECT_EQ(c->damping.losses, 3);
  EXPECT_EQ(c->damping.window, milliseconds(1000));
  EXPECT_EQ(c->damping.hold, milliseconds(500));
  EXPECT_EQ(c->close_timeout, milliseconds(50));
  for (const char* bad : {"damping: {losses: -1}", "damping: {lossses: 2}", "damping: 3",
                          "close_timeout: 2m", "health_check: {kind: external, liveness: 5ms}",
                          "health_check: {kind: external, liveness: 300ms, liveness_starved: 200ms}",
                          "health_check: {kind: external, liveness: 300ms, liveness_store: 200ms}",
                          "realtime_priority: 100", "realtime_priority: -1"}) {
    absl::StatusOr<DaemonConfig> b = ParseDaemonConfig(absl::StrCat(
        "node_id: 1\ninterface: eth0\nservice_address: 10.0.0.1\nkey_file: k\n"
        "peers: [{id: 1, priority: 1, address: \"127.0.0.1\"}]\n", bad, "\n"));
    EXPECT_FALSE(b.ok()) << bad;
  }
}

// A witness: grants only. No interface, no health check; its own entry must have capacity 0.
TEST(DaemonConfigTest, WitnessNeedsNoInterfaceAndHoldsNothing) {
  constexpr char kWitness[] = R"(
node_id: 3
witness: true
service_address: 10.78.0.100/24
key_file: k
peers:
  - {id: 1, priority: 150, address: 10.79.0.1}
  - {id: 2, priority: 100, address: 10.79.0.2}
  - {id: 3, priority: 1, capacity: 0, address: 10.79.0.3}
)";
  absl::StatusOr<DaemonConfig> c = ParseDaemonConfig(kWitness);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->witness);
  EXPECT_EQ(c->interface, "");
  EXPECT_EQ(c->self()->capacity, 0);
  std::string holds = kWitness;
  holds.replace(holds.find("capacity: 0, "), 13, "");
  absl::StatusOr<DaemonConfig> bad = ParseDaemonConfig(holds);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("capacity: 0"), std::string::npos) << bad.status();
  bad = ParseDaemonConfig(std::string(kWitness) + "health_check: {tcp: \"127.0.0.1:80\"}\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("health_check"), std::string::npos);
  // Without `witness: true` the interface is required as before.
  std::string host = kWitness;
  host.replace(host.find("witness: true\n"), 14, "");
  bad = ParseDaemonConfig(host);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("interface"), std::string::npos) << bad.status();
}

TEST(DaemonConfigTest, MetricsListenNeedsHostAndPort) {
  std::string yaml = std::string(kGood) + "metrics_listen: \"127.0.0.1:9464\"\n";
  absl::StatusOr<DaemonConfig> c = ParseDaemonConfig(yaml);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->metrics_host, "127.0.0.1");
  EXPECT_EQ(c->metrics_port, 9464);
  c = ParseDaemonConfig(std::string(kGood) + "metrics_listen: \"[::1]:9100\"\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->metrics_host, "::1");
  EXPECT_EQ(ParseDaemonConfig(kGood)->metrics_listen, "");  // off by default
  for (const char* bad : {"127.0.0.1", "::1", "localhost:9464", "127.0.0.1:0"}) {
    absl::StatusOr<DaemonConfig> r =
        ParseDaemonConfig(std::string(kGood) + "metrics_listen: \"" + bad + "\"\n");
    EXPECT_FALSE(r.ok()) << bad;
  }
}

std::string WithLine(const std::string& replace, const std::string& with) {
  std::string s = kGood;
  size_t at = s.find(replace);
  EXPECT_NE(at, std::string::npos) << replace;
  return s.replace(at, replace.size(), with);
}

TEST(DaemonConfigTest, BadConfigsNameTheKey) {
  struct Case {
    std::string yaml;
    std::string key;
  };
  const Case cases[] = {
      {"node_id: [", "not valid YAML"},
      {WithLine("node_id: 2", "node_id: 9"), "not in the peer list"},
      {WithLine("node_id: 2", "node_id: two"), "node_id"},
      {WithLine("node_id: 2\n", ""), "node_id: missing"},
      {WithLine("10.78.0.100/24", "10.78.0.100/33"), "service_address"},
      {WithLine("10.78.0.100/24", "example.com"), "service_address"},
      {WithLine("address: 10.78.0.3", "address: host3"), "peers[0].address"},
      {WithLine("id: 3, priority: 50", "id: 1, priority: 50"), "duplicate id"},
      {WithLine("priority: 50", "priority: 100"), "duplicate priority"},
      {WithLine("heartbeat: 10ms", "heartbeat: fast"), "timing.heartbeat"},
      {WithLine("lease: 8", "lease: 1"), "timing.lease"},
      {WithLine("lease: 8", "lease: 8, leese: 3"), "timing.leese"},
      {WithLine("shrink_after: 100", "shrink_after: -1"), "timing.shrink_after"},
      {WithLine("shrink_after: 100", "shrink_after: soon"), "timing.shrink_after"},
      {WithLine("state_file: /tmp/x.state", "state_file: [a]"), "state_file"},
      {WithLine("preempt: true", "prempt: true"), "prempt: unknown key"},
      {WithLine("nice: -5", "nice: -40"), "nice"},
      {WithLine("freshness_window: 2s", "freshness_window: soon"), "freshness_window"},
      {WithLine("freshness_window: 2s", "freshness_window: 2h"), "freshness_window"},
      {WithLine("fall: 2", "fall: 0"), "health_check.fall"},
      {WithLine("tcp: \"127.0.0.1:8080\"", "tcp: 127.0.0.1"), "health_check.tcp"},
      {WithLine("interface: eth0", "interface: eth0\nlabel: wlan0:x"), "label"},
      {WithLine("preempt: true", "preempt: true\nrebalance: maybe"), "rebalance"},
      {WithLine("tcp: \"127.0.0.1:8080\"", "kind: sometimes"), "health_check.kind"},
      {WithLine("tcp: \"127.0.0.1:8080\"", "kind: external, tcp: \"127.0.0.1:8080\""),
       "health_check.kind"},
      {WithLine("tcp: \"127.0.0.1:8080\"", "kind: command"), "health_check.command"},
      // Both address keys, neither, or a bad pool entry: the message names the key.
      {WithLine("service_address: 10.78.0.100/24",
                "service_address: 10.78.0.100/24\nservice_addresses: [10.78.0.101/24]"),
       "service_addresses"},
      {WithLine("service_address: 10.78.0.100/24\n", ""), "service_address: missing"},
      {WithLine("service_address: 10.78.0.100/24", "service_addresses: []"), "service_addresses"},
      {WithLine("service_address: 10.78.0.100/24", "service_addresses: 10.78.0.100/24"),
       "service_addresses"},
      {WithLine("service_address: 10.78.0.100/24",
                "service_addresses: [10.78.0.100/24, 10.78.0.101/40]"),
       "service_addresses[1]"},
      {WithLine("service_address: 10.78.0.100/24",
                "service_addresses: [10.78.0.100/24, bogus]"),
       "service_addresses[1]"},
      {WithLine("service_address: 10.78.0.100/24",
                "service_addresses: [fd78::1/64, 10.78.0.1/24, \"fd78:0::1\"]"),
       "service_addresses[2]: duplicate"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<DaemonConfig> r = ParseDaemonConfig(c.yaml);
    ASSERT_FALSE(r.ok()) << "accepted a bad config, expected error about " << c.key;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(r.status().message()).find(c.key), std::string::npos)
        << r.status() << " does not mention " << c.key;
  }
}

TEST(DaemonConfigTest, PoolOfAddresses) {
  absl::StatusOr<DaemonConfig> c = ParseDaemonConfig(R"(
node_id: 1
interface: eth0
service_addresses: [10.78.0.100/24, 10.78.0.101, fd78::102/64]
rebalance: true
key_file: k
peers: [{id: 1, priority: 1, address: "::1", capacity: 2}]
)");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->service_addresses.size(), 3u);  // slot i = entry i, in order
  EXPECT_EQ(c->service_addresses[0].address, "10.78.0.100");
  EXPECT_EQ(c->service_addresses[0].prefix_length, 24);
  EXPECT_EQ(c->service_addresses[1].address, "10.78.0.101");
  EXPECT_EQ(c->service_addresses[1].prefix_length, 32);
  EXPECT_EQ(c->service_addresses[2].address, "fd78::102");
  EXPECT_EQ(c->service_addresses[2].prefix_length, 64);
  EXPECT_TRUE(c->service_addresses[2].ipv6);
  EXPECT_TRUE(c->rebalance);
  EXPECT_EQ(c->self()->capacity, 2);
}

// The kv server passes its `takeover:` section as text with the health forced to external.
TEST(DaemonConfigTest, ExternalHealthIsParsed) {
  absl::StatusOr<DaemonConfig> c = ParseDaemonConfig(R"(
node_id: 1
interface: eth0
service_addresses: [10.78.0.100/24]
key_file: k
peers: [{id: 1, priority: 1, address: "::1"}]
health_check: {kind: external}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->health_check.kind, HealthCheckConfig::Kind::kExternal);
  absl::StatusOr<DaemonConfig> tcp = ParseDaemonConfig(R"(
node_id: 1
interface: eth0
service_address: 10.78.0.100/24
key_file: k
peers: [{id: 1, priority: 1, address: "::1"}]
health_check: {kind: tcp, tcp: "127.0.0.1:80"}
)");
  ASSERT_TRUE(tcp.ok()) << tcp.status();
  EXPECT_EQ(tcp->health_check.kind, HealthCheckConfig::Kind::kTcp);
}

TEST(DaemonConfigTest, Durations) {
  EXPECT_EQ(ParseDuration("10ms"), milliseconds(10));
  EXPECT_EQ(ParseDuration("1.5s"), milliseconds(1500));
  EXPECT_EQ(ParseDuration("250us"), std::chrono::microseconds(250));
  EXPECT_EQ(ParseDuration("7"), milliseconds(7));
  EXPECT_FALSE(ParseDuration("ms").has_value());
  EXPECT_FALSE(ParseDuration("-1s").has_value());
  EXPECT_FALSE(ParseDuration("1h").has_value());
}

// The shipped example must stay valid: users copy it.
TEST(DaemonConfigTest, ShippedExampleParses) {
  absl::StatusOr<DaemonConfig> c =
      LoadDaemonConfig(std::string(BATON_SOURCE_DIR) + "/deploy/baton-takeoverd.example.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->peers.size(), 3u);
  EXPECT_EQ(c->health_check.kind, HealthCheckConfig::Kind::kTcp);
  EXPECT_EQ(c->heartbeat, milliseconds(100));
}

// The pair and witness examples too: a pair whose third member is a witness.
TEST(DaemonConfigTest, ShippedPairAndWitnessExamplesParse) {
  absl::StatusOr<DaemonConfig> pair = LoadDaemonConfig(std::string(BATON_SOURCE_DIR) +
                                                       "/deploy/baton-takeoverd-pair.example.yaml");
  ASSERT_TRUE(pair.ok()) << pair.status();
  EXPECT_FALSE(pair->witness);
  ASSERT_EQ(pair->peers.size(), 3u);
  EXPECT_EQ(pair->peers[2].capacity, 0);
  absl::StatusOr<DaemonConfig> witness = LoadDaemonConfig(
      std::string(BATON_SOURCE_DIR) + "/deploy/baton-takeoverd-witness.example.yaml");
  ASSERT_TRUE(witness.ok()) << witness.status();
  EXPECT_TRUE(witness->witness);
  EXPECT_EQ(witness->self()->capacity, 0);
  EXPECT_EQ(witness->service_addresses.size(), pair->service_addresses.size());
}

TEST(DaemonConfigTest, MissingFileIsNotFound) {
  EXPECT_EQ(LoadDaemonConfig("/nonexistent/baton.yaml").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace baton::takeover

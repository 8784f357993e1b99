// The take-over metrics: a status document (as baton-takeoverd's StatusJson produces it) turns into
// the documented Prometheus families, and the daemon's HTTP endpoint serves them. No root.
#include "takeover/daemon/metrics.h"

#include <chrono>
#include <string>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <nlohmann/json.hpp>

#include "gtest/gtest.h"
#include "takeover/daemon/metrics_server.h"

namespace baton::takeover {
namespace {

using nlohmann::json;

// The shape of TakeoverDaemon::StatusJson (docs/takeover.md "Status"), two slots, one held here.
json SampleStatus() {
  return json::parse(R"({
    "node_id": 2, "healthy": true, "draining": false, "capacity": 2, "capacity_used": 1,
    "shed_slots": 0, "role_changes": 7, "state_errors": 0, "fence_errors": 1,
    "view": [1, 2, 3],
    "membership": {"version": 3, "members": [1, 2, 3], "old_members": []},
    "counters": {"takeovers": 4, "releases": 3, "sheds": 1, "drains": 2},
    "slots": [
      {"slot": 0, "address": "10.78.0.100/24", "holder": 2, "epoch": 12, "held_by_me": true,
       "address_here": true, "lease_remaining_ms": 180.5, "assigned": 2, "shed": false,
       "drained": false, "takeovers": 3, "releases": 2, "sheds": 0},
      {"slot": 1, "address": "fd78::101/64", "holder": 1, "epoch": 5, "held_by_me": false,
       "address_here": false, "lease_remaining_ms": 0, "assigned": 1, "shed": false,
       "drained": true, "takeovers": 1, "releases": 1, "sheds": 1}],
    "peers": [{"id": 1, "self": false, "in_view": true}, {"id": 2, "self": true, "in_view": true},
              {"id": 3, "self": false, "in_view": false}],
    "core": {"malformed_messages": 1, "stale_messages": 20, "late_messages": 3},
    "transport": {"sent": 1000, "send_failed": 2, "delivered": 990, "dropped_total": 9,
                  "dropped": {"bad_mac": 4, "replay": 3, "stale": 2, "bad_version": 0}},
    "address": {"errors": 0}
  })");
}

// The line "name{labels} value" must be in the exposition.
void ExpectLine(const std::string& text, const std::string& line) {
  EXPECT_NE(text.find("\n" + line + "\n"), std::string::npos) << "missing: " << line << "\n" << text;
}

TEST(TakeoverMetricsTest, RendersEverySlotAndEveryRejectReason) {
  const std::string text = "\n" + RenderTakeoverMetrics(SampleStatus());
  ExpectLine(text, "# TYPE baton_takeover_slot_held gauge");
  ExpectLine(text, R"(baton_takeover_slot_held{slot="0",address="10.78.0.100/24"} 1)");
  ExpectLine(text, R"(baton_takeover_slot_held{slot="1",address="fd78::101/64"} 0)");
  ExpectLine(text, R"(baton_takeover_slot_epoch{slot="0",address="10.78.0.100/24"} 12)");
  ExpectLine(text, R"(baton_takeover_slot_lease_remaining_seconds{slot="0",address="10.78.0.100/24"} 0.1805)");
  ExpectLine(text, R"(baton_takeover_slot_lease_remaining_seconds{slot="1",address="fd78::101/64"} 0)");
  ExpectLine(text, "# TYPE baton_takeover_slot_takeovers_total counter");
  ExpectLine(text, R"(baton_takeover_slot_takeovers_total{slot="0",address="10.78.0.100/24"} 3)");
  ExpectLine(text, R"(baton_takeover_slot_releases_total{slot="1",address="fd78::101/64"} 1)");
  ExpectLine(text, R"(baton_takeover_slot_sheds_total{slot="1",address="fd78::101/64"} 1)");
  ExpectLine(text, R"(baton_takeover_slot_drained{slot="1",address="fd78::101/64"} 1)");
  ExpectLine(text, "# TYPE baton_takeover_datagrams_rejected_total counter");
  ExpectLine(text, R"(baton_takeover_datagrams_rejected_total{reason="bad_mac"} 4)");
  ExpectLine(text, R"(baton_takeover_datagrams_rejected_total{reason="replay"} 3)");
  ExpectLine(text, R"(baton_takeover_datagrams_rejected_total{reason="stale"} 2)");
  ExpectLine(text, R"(baton_takeover_datagrams_rejected_total{reason="bad_version"} 0)");
  ExpectLine(text, R"(baton_takeover_messages_dropped_total{reason="stale"} 20)");
  ExpectLine(text, R"(baton_takeover_messages_dropped_total{reason="late"} 3)");
  ExpectLine(text, "baton_takeover_datagrams_sent_total 1000");
  ExpectLine(text, "baton_takeover_membership_version 3");
  ExpectLine(text, "baton_takeover_membership_members 3");
  ExpectLine(text, "baton_takeover_membership_changing 0");
  ExpectLine(text, "baton_takeover_healthy 1");
  ExpectLine(text, "baton_takeover_capacity_used 1");
  ExpectLine(text, "baton_takeover_view_peers 3");
  ExpectLine(text, R"(baton_takeover_peer_in_view{peer="3"} 0)");
  ExpectLine(text, "baton_takeover_drains_total 2");
  ExpectLine(text, "baton_takeover_fence_errors_total 1");
  // Every family has one HELP and one TYPE line, however many series.
  size_t types = 0;
  for (size_t at = 0; (at = text.find("# TYPE baton_takeover_slot_held ", at)) != std::string::npos; ++at) {
    ++types;
  }
  EXPECT_EQ(types, 1u);
}

TEST(TakeoverMetricsTest, MissingKeysLeaveMetricsOutAndNothingThrows) {
  EXPECT_TRUE(TakeoverMetricFamilies(json()).empty());
  EXPECT_TRUE(TakeoverMetricFamilies(json::array({1, 2})).empty());
  EXPECT_TRUE(TakeoverMetricFamilies(json{{"error", "stopped"}}).empty());
  json odd = SampleStatus();
  odd["slots"][0]["epoch"] = "twelve";
  odd["transport"]["dropped"]["bad_mac"] = nullptr;
  odd["membership"] = 5;
  const std::string text = "\n" + RenderTakeoverMetrics(odd);
  EXPECT_EQ(text.find("baton_takeover_slot_epoch{slot=\"0\""), std::string::npos);
  EXPECT_EQ(text.find("reason=\"bad_mac\""), std::string::npos);
  EXPECT_EQ(text.find("membership_version"), std::string::npos);
  ExpectLine(text, R"(baton_takeover_slot_epoch{slot="1",address="fd78::101/64"} 5)");
}

// Sends `request` to 127.0.0.1:port and returns everything the server answers until it closes.
std::string Exchange(boost::asio::io_context& io, uint16_t port, const std::string& request,
                     const std::function<void()>& pump) {
  using boost::asio::ip::tcp;
  tcp::socket s(io);
  s.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  boost::asio::write(s, boost::asio::buffer(request));
  std::string answer;
  char buf[4096];
  s.non_blocking(true);
  for (int i = 0; i < 500; ++i) {
    pump();
    boost::system::error_code ec;
    size_t n = s.read_some(boost::asio::buffer(buf), ec);
    answer.append(buf, n);
    if (ec == boost::asio::error::eof) break;
    if (ec && ec != boost::asio::error::would_block) break;
  }
  return answer;
}

TEST(TakeoverMetricsServerTest, ServesMetricsAndRefusesEverythingElse) {
  boost::asio::io_context io;
  int scrapes = 0;
  MetricsServerOptions o;
  o.port = 0;
  absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Create(io, o, [&] {
    ++scrapes;
    return RenderTakeoverMetrics(SampleStatus());
  });
  ASSERT_TRUE(server.ok()) << server.status();
  const uint16_t port = (*server)->port();
  ASSERT_NE(port, 0);
  auto pump = [&] { io.run_for(std::chrono::milliseconds(5)); };

  std::string ok = Exchange(io, port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", pump);
  EXPECT_EQ(ok.rfind("HTTP/1.1 200", 0), 0u) << ok;
  EXPECT_NE(ok.find("text/plain; version=0.0.4"), std::string::npos) << ok;
  EXPECT_NE(ok.find(R"(baton_takeover_slot_held{slot="0",address="10.78.0.100/24"} 1)"),
            std::string::npos);
  EXPECT_EQ(scrapes, 1);

  std::string other = Exchange(io, port, "GET /baton/drain HTTP/1.1\r\nHost: x\r\n\r\n", pump);
  EXPECT_EQ(other.rfind("HTTP/1.1 404", 0), 0u) << other;
  std::string post = Exchange(io, port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", pump);
  EXPECT_EQ(post.rfind("HTTP/1.1 405", 0), 0u) << post;
  std::string huge = Exchange(
      io, port, "GET /metrics HTTP/1.1\r\nHost: x\r\nX: " + std::string(20000, 'a') + "\r\n\r\n", pump);
  EXPECT_EQ(huge.find("200 OK"), std::string::npos) << "an oversized header was answered";
  EXPECT_EQ(scrapes, 1);

  (*server)->Close();
  pump();
}

TEST(TakeoverMetricsServerTest, BadListenAddressIsRefused) {
  boost::asio::io_context io;
  MetricsServerOptions o;
  o.host = "localhost";
  EXPECT_EQ(MetricsServer::Create(io, o, [] { return std::string(); }).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace baton::takeover

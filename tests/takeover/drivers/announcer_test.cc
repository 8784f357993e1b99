// Announcer: frame layout (no root), and against the real kernel across a
// veth pair between two namespaces this test creates (root): the peer
// captures well-formed gratuitous ARP request/reply frames and an unsolicited
// NA, and its neighbour table moves to the announcer's MAC.
#include "takeover/drivers/announcer.h"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "gtest/gtest.h"
#include "takeover/drivers/clock.h"
#include "tests/takeover/drivers/netns_fixture.h"
#include "tests/testing/require_root.h"

namespace baton::takeover {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using testing::EnterNetns;
using testing::ScopedNetns;

const MacAddress kMac = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};

uint8_t B(const std::string& f, size_t i) { return static_cast<uint8_t>(f[i]); }
uint16_t B16(const std::string& f, size_t i) { return static_cast<uint16_t>(B(f, i) << 8 | B(f, i + 1)); }
bool BytesAre(const std::string& f, size_t off, const uint8_t* p, size_t n) {
  return f.size() >= off + n && std::memcmp(f.data() + off, p, n) == 0;
}

// Asserts an ARP frame as RFC 5227 / the header comment describe it.
void ExpectGratuitousArp(const std::string& f, const MacAddress& mac, const char* ip, bool reply) {
  auto ip_bytes = asio::ip::make_address_v4(ip).to_bytes();
  const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  const uint8_t zero[6] = {};
  ASSERT_GE(f.size(), 42u);
  EXPECT_TRUE(BytesAre(f, 0, bcast, 6));
  EXPECT_TRUE(BytesAre(f, 6, mac.data(), 6));
  EXPECT_EQ(B16(f, 12), 0x0806);
  EXPECT_EQ(B16(f, 14), 1);       // Ethernet
  EXPECT_EQ(B16(f, 16), 0x0800);  // IPv4
  EXPECT_EQ(B(f, 18), 6);
  EXPECT_EQ(B(f, 19), 4);
  EXPECT_EQ(B16(f, 20), reply ? 2 : 1);
  EXPECT_TRUE(BytesAre(f, 22, mac.data(), 6));
  EXPECT_TRUE(BytesAre(f, 28, ip_bytes.data(), 4));  // sender IP
  EXPECT_TRUE(BytesAre(f, 32, reply ? mac.data() : zero, 6));
  EXPECT_TRUE(BytesAre(f, 38, ip_bytes.data(), 4));  // target IP = sender IP
}

void ExpectUnsolicitedNa(const std::string& f, const MacAddress& mac, const char* ip) {
  auto ip_bytes = asio::ip::make_address_v6(ip).to_bytes();
  auto all_nodes = asio::ip::make_address_v6("ff02::1").to_bytes();
  const uint8_t mcast_mac[6] = {0x33, 0x33, 0, 0, 0, 1};
  ASSERT_EQ(f.size(), 14u + 40u + 32u);
  EXPECT_TRUE(BytesAre(f, 0, mcast_mac, 6));
  EXPECT_TRUE(BytesAre(f, 6, mac.data(), 6));
  EXPECT_EQ(B16(f, 12), 0x86DD);
  EXPECT_EQ(B(f, 14) >> 4, 6);      // IPv6
  EXPECT_EQ(B16(f, 18), 32);        // payload length
  EXPECT_EQ(B(f, 20), 58);          // ICMPv6
  EXPECT_EQ(B(f, 21), 255);         // hop limit
  EXPECT_TRUE(BytesAre(f, 22, ip_bytes.data(), 16));
  EXPECT_TRUE(BytesAre(f, 38, all_nodes.data(), 16));
  EXPECT_EQ(B(f, 54), 136);         // neighbour advertisement
  EXPECT_EQ(B(f, 55), 0);
  EXPECT_EQ(B(f, 58), 0x20);        // R=0 S=0 O=1
  EXPECT_TRUE(BytesAre(f, 62, ip_bytes.data(), 16));  // target
  EXPECT_EQ(B(f, 78), 2);           // target link-layer address option
  EXPECT_EQ(B(f, 79), 1);           // 8 bytes
  EXPECT_TRUE(BytesAre(f, 80, mac.data(), 6));
  // Checksum over pseudo-header + message (checksum field included) folds to 0xFFFF.
  uint32_t sum = 0;
  for (size_t i = 22; i < 54; i += 2) sum += B16(f, i);  // source and destination
  sum += 32 + 58;
  for (size_t i = 54; i < f.size(); i += 2) sum += B16(f, i);
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  EXPECT_EQ(sum, 0xFFFFu);
}

TEST(AnnouncerFrames, GratuitousArpRequestAndReply) {
  ExpectGratuitousArp(BuildGratuitousArp(kMac, asio::ip::make_address_v4("192.0.2.7"), false),
                      kMac, "192.0.2.7", false);
  ExpectGratuitousArp(BuildGratuitousArp(kMac, asio::ip::make_address_v4("192.0.2.7"), true),
                      kMac, "192.0.2.7", true);
}

TEST(AnnouncerFrames, UnsolicitedNeighbourAdvertisement) {
  ExpectUnsolicitedNa(BuildUnsolicitedNa(kMac, asio::ip::make_address_v6("2001:db8::7")), kMac,
                      "2001:db8::7");
}

MacAddress ParseMac(const std::string& text) {
  MacAddress m{};
  unsigned v[6];
  if (std::sscanf(text.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) ==
      6) {
    for (int i = 0; i < 6; ++i) m[i] = static_cast<uint8_t>(v[i]);
  }
  return m;
}

std::string MacText(const MacAddress& m) {
  char buf[18];
  std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4],
                m[5]);
  return buf;
}

// Namespace "a" (the new holder, interface va) and "b" (a peer on the same
// link, interface vb). b has stale neighbour entries pointing the service
// addresses at an old MAC, as after a host failure.
class AnnouncerKernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BATON_REQUIRE_ROOT();
    testing::SweepStaleNamespaces();
    a_ = std::make_unique<ScopedNetns>();
    b_ = std::make_unique<ScopedNetns>();
    ASSERT_TRUE(a_->ok() && b_->ok()) << a_->error() << b_->error();
    ASSERT_EQ(a_->Ip("link add va type veth peer name vb netns " + b_->name()).exit_code, 0);
    for (const std::string& cmd :
         {std::string("link set va up"), std::string("addr add 10.78.0.10/24 dev va"),
          std::string("addr add 2001:db8:78::10/64 dev va nodad")}) {
      ASSERT_EQ(a_->Ip(cmd).exit_code, 0) << cmd;
    }
    for (const std::string& cmd :
         {std::string("link set vb up"), std::string("addr add 10.78.0.2/24 dev vb"),
          std::string("addr add 2001:db8:78::2/64 dev vb nodad"),
          std::string("neigh replace 10.78.0.10 lladdr 02:00:00:00:00:99 dev vb nud stale"),
          std::string("neigh replace 2001:db8:78::10 lladdr 02:00:00:00:00:99 dev vb nud stale")}) {
      ASSERT_EQ(b_->Ip(cmd).exit_code, 0) << cmd;
    }
    std::string link = a_->Ip("-o link show va").output;
    size_t at = link.find("link/ether ");
    ASSERT_NE(at, std::string::npos) << link;
    mac_ = ParseMac(link.substr(at + 11, 17));
    // Capture socket in b, bound to vb.
    {
      EnterNetns in_b(*b_);
      ASSERT_TRUE(in_b.ok());
      capture_ = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL));
      ASSERT_GE(capture_, 0);
      sockaddr_ll sll{};
      sll.sll_family = AF_PACKET;
      sll.sll_protocol = htons(ETH_P_ALL);
      sll.sll_ifindex = static_cast<int>(if_nametoindex("vb"));
      ASSERT_GT(sll.sll_ifindex, 0);
      ASSERT_EQ(::bind(capture_, reinterpret_cast<sockaddr*>(&sll), sizeof(sll)), 0);
    }
    enter_a_ = std::make_unique<EnterNetns>(*a_);
    ASSERT_TRUE(enter_a_->ok());
  }
  void TearDown() override {
    if (capture_ >= 0) ::close(capture_);
    enter_a_.reset();
    a_.reset();
    b_.reset();
  }

  // Frames received on vb within `window`: ARP and ICMPv6 NA only.
  std::vector<std::string> Capture(milliseconds window) {
    std::vector<std::string> frames;
    auto deadline = std::chrono::steady_clock::now() + window;
    while (true) {
      auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{capture_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[2048];
      sockaddr_ll from{};
      socklen_t len = sizeof(from);
      ssize_t n = ::recvfrom(capture_, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n <= 0 || from.sll_pkttype == PACKET_OUTGOING) continue;
      std::string f(buf, static_cast<size_t>(n));
      if (f.size() < 14) continue;
      uint16_t type = B16(f, 12);
      bool arp = type == 0x0806;
      bool na = type == 0x86DD && f.size() > 54 && B(f, 20) == 58 && B(f, 54) == 136;
      if (arp || na) frames.push_back(f);
    }
    return frames;
  }

  bool NeighbourIs(const std::string& ip, const MacAddress& mac) {
    for (int i = 0; i < 20; ++i) {
      if (b_->Ip("neigh show " + ip + " dev vb").output.find(MacText(mac)) != std::string::npos) {
        return true;
      }
      std::this_thread::sleep_for(milliseconds(50));
    }
    return false;
  }

  std::unique_ptr<ScopedNetns> a_, b_;
  std::unique_ptr<EnterNetns> enter_a_;
  int capture_ = -1;
  MacAddress mac_{};
};

TEST_F(AnnouncerKernelTest, PeerReceivesWellFormedFramesAndMovesItsNeighbourEntries) {
  auto announcer = Announcer::Create();
  ASSERT_TRUE(announcer.ok()) << announcer.status();
  absl::Status v4 = (*announcer)->SendOnce(asio::ip::make_address("10.78.0.10"), "va");
  ASSERT_TRUE(v4.ok()) << v4;
  absl::Status v6 = (*announcer)->SendOnce(asio::ip::make_address("2001:db8:78::10"), "va");
  ASSERT_TRUE(v6.ok()) << v6;
  std::vector<std::string> frames = Capture(milliseconds(300));
  int requests = 0, replies = 0, nas = 0;
  for (const std::string& f : frames) {
    if (B16(f, 12) == 0x0806) {
      bool reply = B16(f, 20) == 2;
      ExpectGratuitousArp(f, mac_, "10.78.0.10", reply);
      (reply ? replies : requests) += 1;
    } else {
      ExpectUnsolicitedNa(f, mac_, "2001:db8:78::10");
      ++nas;
    }
  }
  EXPECT_EQ(requests, 1);
  EXPECT_EQ(replies, 1);
  EXPECT_EQ(nas, 1);
  EXPECT_TRUE(NeighbourIs("10.78.0.10", mac_)) << b_->Ip("neigh").output;
  EXPECT_TRUE(NeighbourIs("2001:db8:78::10", mac_)) << b_->Ip("neigh").output;
  EXPECT_EQ((*announcer)->GetStats().frames_sent, 3u);
}

TEST_F(AnnouncerKernelTest, ScheduleIsFollowedAndCancelStopsIt) {
  AnnouncerOptions options;  // default schedule: 0, 10 ms, 50 ms, 200 ms, 1 s
  auto created = Announcer::Create(options);
  ASSERT_TRUE(created.ok()) << created.status();
  Announcer& an = **created;
  using std::chrono::nanoseconds;
  const nanoseconds t0 = std::chrono::seconds(100);
  const auto v4 = asio::ip::make_address("10.78.0.10");
  const auto v6 = asio::ip::make_address("2001:db8:78::10");
  ASSERT_TRUE(an.Start(v4, "va", t0).ok());
  EXPECT_EQ(an.GetStats().rounds_sent, 1u);  // immediately
  EXPECT_EQ(an.NextDeadline(), t0 + milliseconds(10));
  an.Poll(t0 + milliseconds(9));
  EXPECT_EQ(an.GetStats().rounds_sent, 1u);
  an.Poll(t0 + milliseconds(10));
  EXPECT_EQ(an.GetStats().rounds_sent, 2u);
  EXPECT_EQ(an.NextDeadline(), t0 + milliseconds(50));
  // A late loop: the 50 ms and 200 ms rounds collapse into one.
  an.Poll(t0 + milliseconds(300));
  EXPECT_EQ(an.GetStats().rounds_sent, 3u);
  EXPECT_EQ(an.NextDeadline(), t0 + std::chrono::seconds(1));
  an.Poll(t0 + std::chrono::seconds(1));
  EXPECT_EQ(an.GetStats().rounds_sent, 4u);
  EXPECT_FALSE(an.NextDeadline().has_value());

  ASSERT_TRUE(an.Start(v6, "va", t0).ok());
  EXPECT_EQ(an.GetStats().rounds_sent, 5u);
  an.Cancel(v6);
  EXPECT_FALSE(an.NextDeadline().has_value());
  an.Poll(t0 + std::chrono::seconds(5));
  EXPECT_EQ(an.GetStats().rounds_sent, 5u);
  // v4 rounds are 2 frames, v6 rounds 1; all of them reached the peer.
  EXPECT_EQ(an.GetStats().frames_sent, 4u * 2 + 1);
  EXPECT_EQ(Capture(milliseconds(200)).size(), 9u);

  EXPECT_EQ(an.Start(v4, "nosuchif0", t0).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(an.Start(asio::ip::make_address("0.0.0.0"), "va", t0).code(),
            absl::StatusCode::kInvalidArgument);
}

// The asio driver sends the whole default schedule on a real io_context:
// 5 rounds within about a second, 2 ARP frames each.
TEST_F(AnnouncerKernelTest, AsioDriverRunsTheScheduleOnAnIoContext) {
  auto created = Announcer::Create();
  ASSERT_TRUE(created.ok()) << created.status();
  asio::io_context io;
  AsioAnnouncerDriver driver(io, SteadyClock::Get(), **created);
  ASSERT_TRUE(driver.Start(asio::ip::make_address("10.78.0.10"), "va").ok());
  io.run_for(milliseconds(1500));
  EXPECT_EQ((*created)->GetStats().rounds_sent, 5u);
  EXPECT_FALSE((*created)->NextDeadline().has_value());
  std::vector<std::string> frames = Capture(milliseconds(100));
  EXPECT_EQ(frames.size(), 10u);
  for (const std::string& f : frames) ExpectGratuitousArp(f, mac_, "10.78.0.10", B16(f, 20) == 2);
}

}  // namespace
}  // namespace baton::takeover

// Real-kernel tests of the nftables lease fence (takeover/drivers/nft_fence.h): each test builds
// two namespaces joined by a veth pair -- "host" (holds the service address, runs the fence) and
// "client" -- and checks what a user of the fence relies on: a leased address answers, an
// element expires by itself after its timeout (a frozen daemon stops answering), a refresh keeps
// it, ICMP and ARP for a fenced address get no answer, and a stale table is replaced at start-up.
#include "takeover/drivers/nft_fence.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "takeover/drivers/clock.h"
#include "tests/takeover/drivers/netns_fixture.h"
#include "tests/testing/require_root.h"

namespace baton::takeover {
namespace {

using std::chrono::milliseconds;
using testing::EnterNetns;
using testing::ScopedNetns;
using testing::Sh;

constexpr char kVip[] = "10.91.0.100";
constexpr char kVip6[] = "fd91::100";
constexpr char kTable[] = "baton_fence_test";

class NftFenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BATON_REQUIRE_ROOT();
    testing::SweepStaleNamespaces();
    ASSERT_TRUE(host_.ok()) << host_.error();
    ASSERT_TRUE(client_.ok()) << client_.error();
    const std::string veth = "btf" + std::to_string(::getpid() % 100000);
    ASSERT_EQ(Sh("ip link add " + veth + "a netns " + host_.name() + " type veth peer name " +
                 veth + "b netns " + client_.name()).exit_code, 0);
    ASSERT_EQ(host_.Ip("link set " + veth + "a name eth0 up").exit_code, 0);
    ASSERT_EQ(client_.Ip("link set " + veth + "b name eth0 up").exit_code, 0);
    ASSERT_EQ(host_.Ip("addr add 10.91.0.1/24 dev eth0").exit_code, 0);
    ASSERT_EQ(host_.Ip(std::string("addr add ") + kVip + "/24 dev eth0").exit_code, 0);
    ASSERT_EQ(client_.Ip("addr add 10.91.0.2/24 dev eth0").exit_code, 0);
  }

  // Whether the service address answers an ICMP echo from the client, after forgetting its MAC
  // so that ARP has to succeed too.
  bool Answers() {
    client_.Ip(std::string("neigh flush to ") + kVip);
    return Sh("ip netns exec " + client_.name() + " ping -c1 -W0.3 " + kVip).exit_code == 0;
  }
  std::string HostNft(const std::string& args) {
    return Sh("ip netns exec " + host_.name() + " nft " + args).output;
  }
  bool ElementPresent() {
    return HostNft(std::string("list set inet ") + kTable + " leased4").find(kVip) !=
           std::string::npos;
  }
  absl::StatusOr<std::unique_ptr<NftFence>> MakeFence() {
    EnterNetns in(host_);
    if (!in.ok()) return absl::InternalError("setns failed");
    NftFenceOptions o;
    o.table = kTable;
    o.addresses = {kVip, kVip6};
    return NftFence::Create(clock_, o);
  }
  absl::Status Lease(NftFence& f, milliseconds length, const char* address = kVip) {
    EnterNetns in(host_);
    return f.Lease(address, clock_.MonotonicNow() + length);
  }
  // IPv6 on the veth pair: the host's own fd91::1 and the service address, the client fd91::2
  // (no duplicate address detection: the addresses are usable at once).
  void AddIpv6() {
    for (ScopedNetns* n : {&host_, &client_}) {
      Sh("ip netns exec " + n->name() + " sysctl -qw net.ipv6.conf.all.disable_ipv6=0 " +
         "net.ipv6.conf.eth0.disable_ipv6=0");
    }
    ASSERT_EQ(host_.Ip("addr add fd91::1/64 dev eth0 nodad").exit_code, 0);
    ASSERT_EQ(host_.Ip(std::string("addr add ") + kVip6 + "/64 dev eth0 nodad").exit_code, 0);
    ASSERT_EQ(client_.Ip("addr add fd91::2/64 dev eth0 nodad").exit_code, 0);
  }
  // Neighbour discovery for the IPv6 service address from the client: forget its MAC, ping it.
  bool Answers6() {
    client_.Ip(std::string("-6 neigh flush to ") + kVip6);
    return Sh("ip netns exec " + client_.name() + " ping -6 -c1 -W0.5 " + kVip6).exit_code == 0;
  }

  // A TCP connect from the client to the service address (port 7070, where ListenTcp listens),
  // the client's neighbour entry pinned to the host (as a client whose ARP cache still points
  // to a former holder): "ok", "refused" (a reset) or "timeout" (nothing came back in 0.5 s).
  std::string Connect() {
    const std::string mac =
        Sh("ip -n " + host_.name() + " -o link show eth0 | grep -o 'link/ether [0-9a-f:]*' | "
           "cut -d' ' -f2").output;
    client_.Ip(std::string("neigh replace ") + kVip + " lladdr " +
               mac.substr(0, mac.find('\n')) + " dev eth0 nud permanent");
    return Sh("ip netns exec " + client_.name() +
              " python3 -c \"import socket\n"
              "s = socket.socket(); s.settimeout(0.5)\n"
              "try:\n  s.connect(('" + std::string(kVip) + "', 7070)); print('ok', end='')\n"
              "except ConnectionRefusedError: print('refused', end='')\n"
              "except OSError: print('timeout', end='')\"").output;
  }
  void ListenTcp() {
    ASSERT_EQ(Sh("ip netns exec " + host_.name() +
                 " python3 -c \"import socket,time\n"
                 "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                 "s.bind(('0.0.0.0', 7070)); s.listen(64); time.sleep(5)\" "
                 ">/dev/null 2>&1 & sleep 0.3").exit_code, 0);
  }

  const SteadyClock& clock_ = SteadyClock::Get();
  ScopedNetns host_;
  ScopedNetns client_;
};

TEST_F(NftFenceTest, FencedAddressGetsNoAnswerNeitherIcmpNorArp) {
  ASSERT_TRUE(Answers()) << "the lab itself is broken";
  auto fence = MakeFence();
  ASSERT_TRUE(fence.ok()) << fence.status();
  EXPECT_FALSE(Answers()) << "a fenced address answered";
  // The ARP request for the address was dropped by the arp table, not just the echo.
  EXPECT_EQ(client_.Ip(std::string("neigh show to ") + kVip).output.find("lladdr"),
            std::string::npos);
  const std::string arp = HostNft(std::string("list chain arp ") + kTable + " in");
  EXPECT_EQ(arp.find("packets 0 "), std::string::npos) << arp;
  // The host's own address on the same interface is untouched.
  EXPECT_EQ(Sh("ip netns exec " + client_.name() + " ping -c1 -W0.3 10.91.0.1").exit_code, 0);

  ASSERT_TRUE(Lease(**fence, milliseconds(5000)).ok());
  EXPECT_TRUE(Answers()) << "a leased address did not answer";
  {
    EnterNetns in(host_);
    ASSERT_TRUE((*fence)->Revoke(kVip).ok());
  }
  EXPECT_FALSE(Answers()) << "a revoked address answered";
}

// A client that reaches a fenced host for the address (a stale neighbour entry, a SYN sent in
// the moment between the old holder's removal and the new holder's announcement) is refused with
// a reset and retries at once, instead of waiting out a retransmission timeout; an address being
// released refuses new connections while its lease still runs (RefuseConnections).
TEST_F(NftFenceTest, TcpToAnUnleasedAddressIsRefusedWithAReset) {
  ListenTcp();
  ASSERT_EQ(Connect(), "ok") << "the lab itself is broken";
  auto fence = MakeFence();
  ASSERT_TRUE(fence.ok()) << fence.status();
  EXPECT_EQ(Connect(), "refused") << "a fenced address did not refuse TCP with a reset";
  ASSERT_TRUE(Lease(**fence, milliseconds(5000)).ok());
  EXPECT_EQ(Connect(), "ok") << "a leased address refused TCP";
  {
    EnterNetns in(host_);
    ASSERT_TRUE((*fence)->RefuseConnections(kVip).ok());
  }
  EXPECT_EQ(Connect(), "refused") << "new connections to an address being released were accepted";
  EXPECT_TRUE(Answers()) << "RefuseConnections must leave the lease (other traffic) alone";
  {
    EnterNetns in(host_);
    ASSERT_TRUE((*fence)->RefuseConnections(kVip, false).ok());
  }
  EXPECT_EQ(Connect(), "ok") << "a called-off release still refused connections";
  {
    EnterNetns in(host_);
    ASSERT_TRUE((*fence)->RefuseConnections(kVip).ok());
    ASSERT_TRUE((*fence)->Revoke(kVip).ok());
  }
  EXPECT_EQ(Connect(), "refused");
}

// IPv6's ARP: a neighbour solicitation for a fenced IPv6 service address must not even reach the
// host's neighbour code (which would answer it, and learn the solicitor), and no advertisement
// for it may leave; once leased, the address is resolved and answers.
TEST_F(NftFenceTest, FencedIpv6AddressTakesNoPartInNeighbourDiscovery) {
  AddIpv6();
  ASSERT_TRUE(Answers6()) << "the lab itself is broken";
  auto fence = MakeFence();
  ASSERT_TRUE(fence.ok()) << fence.status();
  host_.Ip("-6 neigh flush dev eth0");
  EXPECT_FALSE(Answers6()) << "a fenced IPv6 address answered";
  // The client never learnt a MAC for it (no advertisement came back) ...
  EXPECT_EQ(client_.Ip(std::string("-6 neigh show to ") + kVip6).output.find("lladdr"),
            std::string::npos);
  // ... and the host's kernel never processed the solicitation: it would have learnt the
  // client's MAC from it (an NS carries the sender's link-layer address).
  EXPECT_EQ(host_.Ip("-6 neigh show to fd91::2").output.find("lladdr"), std::string::npos)
      << host_.Ip("-6 neigh show").output;
  const std::string pre = HostNft(std::string("list chain inet ") + kTable + " pre");
  EXPECT_NE(pre.find("nd-neighbor-solicit"), std::string::npos) << pre;
  // The host's own IPv6 address on the same interface is untouched.
  EXPECT_EQ(Sh("ip netns exec " + client_.name() + " ping -6 -c1 -W0.5 fd91::1").exit_code, 0);

  ASSERT_TRUE(Lease(**fence, milliseconds(5000), kVip6).ok());
  EXPECT_TRUE(Answers6()) << "a leased IPv6 address did not answer";
  EXPECT_NE(client_.Ip(std::string("-6 neigh show to ") + kVip6).output.find("lladdr"),
            std::string::npos);
  {
    EnterNetns in(host_);
    ASSERT_TRUE((*fence)->Revoke(kVip6).ok());
  }
  EXPECT_FALSE(Answers6()) << "a revoked IPv6 address answered";
}

TEST_F(NftFenceTest, ElementExpiresByItselfAfterItsTimeout) {
  auto fence = MakeFence();
  ASSERT_TRUE(fence.ok()) << fence.status();
  const auto t0 = clock_.MonotonicNow();
  ASSERT_TRUE(Lease(**fence, milliseconds(150)).ok());
  EXPECT_TRUE(ElementPresent()) << HostNft("list ruleset");
  // Nobody refreshes (a frozen daemon): the kernel drops the element at 150 ms - margin.
  std::this_thread::sleep_until(std::chrono::steady_clock::time_point(t0 + milliseconds(150)));
  EXPECT_FALSE(ElementPresent()) << "element outlived its lease";
  EXPECT_FALSE(Answers());
}

TEST_F(NftFenceTest, RefreshKeepsTheElementAndShortensOrLengthens) {
  auto fence = MakeFence();
  ASSERT_TRUE(fence.ok()) << fence.status();
  const auto t0 = clock_.MonotonicNow();
  std::vector<double> us;
  for (int i = 0; i < 10; ++i) {   // renewals every 30 ms of a 100 ms lease: 300 ms in all
    const auto a = clock_.MonotonicNow();
    ASSERT_TRUE(Lease(**fence, milliseconds(100)).ok());
    us.push_back(std::chrono::duration<double, std::micro>(clock_.MonotonicNow() - a).count());
    std::this_thread::sleep_for(milliseconds(30));
  }
  // What a renewal costs the daemon's thread (one nftables transaction); for the record.
  std::sort(us.begin(), us.end());
  std::printf("Lease() transaction: median %.0f us, max %.0f us\n", us[us.size() / 2], us.back());
  EXPECT_GE(clock_.MonotonicNow() - t0, milliseconds(300));
  EXPECT_TRUE(ElementPresent()) << "a refreshed element expired";
  EXPECT_TRUE(Answers());
  // A refresh to a shorter end replaces the timeout too (a lease that shrank).
  ASSERT_TRUE(Lease(**fence, milliseconds(40)).ok());
  std::this_thread::sleep_for(milliseconds(45));
  EXPECT_FALSE(ElementPresent());
  // A lease already over fences at once.
  ASSERT_TRUE(Lease(**fence, milliseconds(5000)).ok());
  ASSERT_TRUE(Lease(**fence, milliseconds(1)).ok());
  EXPECT_FALSE(ElementPresent());
}

TEST_F(NftFenceTest, StaleTableIsReplacedAtStartUp) {
  // What a crashed run left: the same table with the address leased for a long time.
  ASSERT_EQ(Sh("ip netns exec " + host_.name() + " nft 'add table inet " + kTable +
               "; add set inet " + kTable + " leased4 { type ipv4_addr; flags timeout; }; " +
               "add element inet " + kTable + " leased4 { " + kVip + " timeout 1h }; " +
               "add chain inet " + kTable + " leftover'").exit_code, 0);
  auto fence = MakeFence();
  ASSERT_TRUE(fence.ok()) << fence.status();
  EXPECT_FALSE(ElementPresent()) << "the stale lease survived";
  EXPECT_EQ(HostNft(std::string("list table inet ") + kTable).find("leftover"), std::string::npos);
  EXPECT_FALSE(Answers());
  {
    EnterNetns in(host_);
    ASSERT_TRUE((*fence)->RemoveTables().ok());
  }
  EXPECT_EQ(HostNft("list tables").find(kTable), std::string::npos);
  EXPECT_TRUE(Answers()) << "without the tables nothing is fenced";
}

TEST(NftFenceOptionsTest, RejectsBadOptions) {
  const SteadyClock& clock = SteadyClock::Get();
  NftFenceOptions o;
  o.table = "bad name;";
  o.addresses = {kVip};
  EXPECT_EQ(NftFence::Create(clock, o).status().code(), absl::StatusCode::kInvalidArgument);
  o.table = "ok";
  o.addresses = {"10.0.0.1/24"};
  EXPECT_EQ(NftFence::Create(clock, o).status().code(), absl::StatusCode::kInvalidArgument);
  o.addresses = {};
  EXPECT_EQ(NftFence::Create(clock, o).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace baton::takeover

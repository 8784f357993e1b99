// UDP transport over loopback: what reaches the core is exactly the authentic,
// fresh datagrams; everything forged or replayed is counted and dropped.
// Needs no root.
#include "takeover/drivers/udp_transport.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>

#include "gtest/gtest.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"
#include "takeover/drivers/clock.h"

namespace baton::takeover {
namespace {

namespace asio = boost::asio;
using asio::ip::udp;
using std::chrono::milliseconds;
using std::chrono::seconds;

const std::string kKey = "0123456789abcdef0123456789abcdef";    // 32 bytes
const std::string kOtherKey = "fedcba9876543210fedcba9876543210";

// Ports picked by the kernel, released just before the transports bind them
// (peers must know each other's port before either exists).
uint16_t FreeUdpPort(const asio::ip::address& addr) {
  asio::io_context io;
  udp::socket s(io, udp::endpoint(addr, 0));
  return s.local_endpoint().port();
}

struct Received {
  NodeId from;
  std::string payload;
};

class TransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_a_ = FreeUdpPort(loopback_);
    port_b_ = FreeUdpPort(loopback_);
  }

  UdpTransportOptions Options(NodeId self, uint16_t port, uint64_t incarnation) {
    UdpTransportOptions o;
    o.self = self;
    o.bind_host = loopback_.to_string();
    o.bind_port = port;
    o.peers = {{1, loopback_.to_string(), port_a_}, {2, loopback_.to_string(), port_b_}};
    o.key = kKey;
    o.incarnation = incarnation;
    return o;
  }

  std::unique_ptr<UdpTransport> Make(UdpTransportOptions o, std::vector<Received>* sink) {
    auto t = UdpTransport::Create(io_, clock_, std::move(o),
                                  [sink](NodeId from, std::string_view payload) {
                                    sink->push_back({from, std::string(payload)});
                                  });
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? std::move(*t) : nullptr;
  }

  // Runs the loop until `done` or 2 s pass.
  bool RunUntil(const std::function<bool()>& done) {
    for (int i = 0; i < 200 && !done(); ++i) io_.run_one_for(milliseconds(10));
    io_.poll();
    return done();
  }

  // A raw socket standing in for node 1 (bound to node 1's address), so tests
  // can send hand-made datagrams to a transport for node 2.
  void StartFakeNode1() {
    fake_a_ = std::make_unique<udp::socket>(io_, udp::endpoint(loopback_, port_a_));
  }
  void Inject(const std::string& datagram) {
    fake_a_->send_to(asio::buffer(datagram), udp::endpoint(loopback_, port_b_));
  }
  DatagramHeader From1(uint64_t incarnation, uint64_t seq) {
    return DatagramHeader{1, 2, incarnation, seq, clock_.WallNow().count()};
  }
  // Sends `bad` then a valid datagram with a fresh sequence number; returns
  // once the valid one arrived, so the bad one has certainly been processed.
  void InjectThenSync(const std::string& bad, std::vector<Received>& got) {
    Inject(bad);
    size_t before = got.size();
    Inject(SealDatagram(From1(7, ++sync_seq_), "sync", kKey));
    ASSERT_TRUE(RunUntil([&] { return got.size() > before; }));
  }

  asio::io_context io_;
  FakeClock clock_;
  asio::ip::address loopback_ = asio::ip::make_address("127.0.0.1");
  uint16_t port_a_ = 0;
  uint16_t port_b_ = 0;
  std::unique_ptr<udp::socket> fake_a_;
  uint64_t sync_seq_ = 1000;
};

TEST_F(TransportTest, DeliversAuthenticatedPayloadBothWays) {
  std::vector<Received> at_a, at_b;
  auto a = Make(Options(1, port_a_, 100), &at_a);
  auto b = Make(Options(2, port_b_, 200), &at_b);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Send(2, "hello from 1").ok());
  ASSERT_TRUE(a->Send(2, std::string("\0binary\xff", 8)).ok());
  ASSERT_TRUE(b->Send(1, "hello from 2").ok());
  ASSERT_TRUE(RunUntil([&] { return at_b.size() == 2 && at_a.size() == 1; }));
  EXPECT_EQ(at_b[0].from, 1u);
  EXPECT_EQ(at_b[0].payload, "hello from 1");
  EXPECT_EQ(at_b[1].payload, std::string("\0binary\xff", 8));
  EXPECT_EQ(at_a[0].from, 2u);
  EXPECT_EQ(at_a[0].payload, "hello from 2");
  EXPECT_EQ(b->GetStats().dropped_total(), 0u);
  EXPECT_EQ(a->GetStats().sent, 2u);
}

TEST_F(TransportTest, DeliversOverIpv6Loopback) {
  loopback_ = asio::ip::make_address("::1");
  try {
    port_a_ = FreeUdpPort(loopback_);
    port_b_ = FreeUdpPort(loopback_);
  } catch (const std::exception& e) {
    GTEST_SKIP() << "no IPv6 loopback here: " << e.what();
  }
  std::vector<Received> at_a, at_b;
  auto a = Make(Options(1, port_a_, 100), &at_a);
  auto b = Make(Options(2, port_b_, 200), &at_b);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Send(2, "v6").ok());
  ASSERT_TRUE(RunUntil([&] { return at_b.size() == 1; }));
  EXPECT_EQ(at_b[0].payload, "v6");
}

TEST_F(TransportTest, DualStackSocketReachesIpv4Peer) {
  std::vector<Received> at_a, at_b;
  UdpTransportOptions oa = Options(1, port_a_, 100);
  oa.bind_host = "::";  // dual stack; peer 2 is configured as 127.0.0.1
  auto a = Make(oa, &at_a);
  auto b = Make(Options(2, port_b_, 200), &at_b);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Send(2, "mapped").ok());
  ASSERT_TRUE(b->Send(1, "back").ok());
  ASSERT_TRUE(RunUntil([&] { return at_b.size() == 1 && at_a.size() == 1; }));
  EXPECT_EQ(at_a[0].payload, "back");
  EXPECT_EQ(a->GetStats().dropped_total(), 0u);
}

TEST_F(TransportTest, WrongKeyIsDropped) {
  std::vector<Received> at_b;
  auto b = Make(Options(2, port_b_, 200), &at_b);
  StartFakeNode1();
  InjectThenSync(SealDatagram(From1(7, 1), "forged", kOtherKey), at_b);
  ASSERT_EQ(at_b.size(), 1u);
  EXPECT_EQ(at_b[0].payload, "sync");
  EXPECT_EQ(b->GetStats().dropped_for(DropReason::kBadMac), 1u);
}

TEST_F(TransportTest, AnyTamperedByteIsDropped) {
  std::vector<Received> at_b;
  auto b = Make(Options(2, port_b_, 200), &at_b);
  StartFakeNode1();
  std::string good = SealDatagram(From1(7, 1), "grant slot 0", kKey);
  // Every byte covered by the MAC, and the MAC itself. (Magic, version,
  // length, sender and recipient bytes fail earlier checks; see below.)
  uint64_t expected_bad_mac = 0;
  for (size_t i = 16; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    InjectThenSync(bad, at_b);
    ++expected_bad_mac;
  }
  for (const Received& r : at_b) EXPECT_EQ(r.payload, "sync");
  EXPECT_EQ(b->GetStats().dropped_for(DropReason::kBadMac), expected_bad_mac);
  std::string bad_magic = good;
  bad_magic[0] = 'X';
  InjectThenSync(bad_magic, at_b);
  EXPECT_EQ(b->GetStats().dropped_for(DropReason::kBadMagic), 1u);
  std::string bad_version = good;
  bad_version[4] = 2;
  InjectThenSync(bad_version, at_b);
  EXPECT_EQ(b->GetStats().dropped_for(DropReason::kBadVersion), 1u);
  for (const Received& r : at_b) EXPECT_EQ(r.payload, "sync");
}

TEST_F(TransportTest, TruncatedAndOversizedAreDropped) {
  std::vector<Received> at_b;
  UdpTransportOptions ob = Options(2, port_b_, 200);
  ob.max_payload_bytes = 64;
  auto b = Make(ob, &at_b);
  StartFakeNode1();
  std::string good = SealDatagram(From1(7, 1), "payload", kKey);
  InjectThenSync(good.substr(0, good.size() - 1), at_b);  // one MAC byte short
  InjectThenSync(good.substr(0, 10), at_b);               // not even a header
  InjectThenSync(good + "x", at_b);                       // length field disagrees
  EXPECT_EQ(b->GetStats().dropped_for(DropReason::kTruncated), 3u);
  InjectThenSync(SealDatagram(From1(7, 2), std::string(65, 'p'), kKey), at_b);
  EXPECT_EQ(b->GetStats().dropped_for(DropReason::kOversized), 1u);
  for (const Received& r : at_b) EXPECT_EQ(r.payload, "sync");
}

TEST_F(TransportTest, UnknownSenderWrongRecipientAndWrongSourceAreDropped) {
  std::vector<Received> at_b;
  auto b = Make(Options(2, port_b_, 200), &at_b);
  StartFakeNode1();
  InjectThenSync(SealDatagram({99, 2, 7, 1, 0}, "who?", kKey), at_b);
  InjectThenSync(SealDatagram({2, 2, 7, 1, 0}, "from myself", kKey), at_b);
  EXPECT_EQ(b->GetStats().dropped_for(DropReason::kUnknownSender), 2u);
  // A datagram node 1 sent to node 3, replayed to node 2.
  InjectThenSync(SealDatagram({1, 3, 7, 2, 0}, "for node 3", kKey), at_b);
  EXPECT_EQ(b->GetStats().dropped_for(DropReason::kWrongRecipient), 1u);
  // Authentic bytes for node 2, but not from node 1's address.
  udp::socket other(io_, udp::endpoint(loopback_, 0));
  other.send_to(asio::buffer(SealDatagram(From1(7, 3), "elsewhere", kKey)),
                udp::endpoint(loopback_, port_b_));
  InjectThenSync(SealDatagram(From1(7, 2), "ignored?", kKey), at_b);  // seq 2 < sync seq
  EXPECT_EQ(b->GetStats().dropped_for(DropReason::kSourceMismatch), 1u);
  for (const Received& r : at_b) EXPECT_EQ(r.payload, "sync");
}

TEST_F(TransportTest, ReplayedAndReorderedDatagramsAreDropped) {
  std::vector<Received> at_b;
  auto b = Make(Options(2, port_b_, 200), &at_b);
  StartFakeNode1();
  std::string d5 = SealDatagram(From1(7, 5), "seq 5", kKey);
  Inject(d5);
  ASSERT_TRUE(RunUntil([&] { return at_b.size() == 1; }));
  Inject(d5);                                          // replay
  Inject(SealDatagram(From1(7, 3), "seq 3", kKey));    // reordered, older
  Inject(SealDatagram(From1(6, 99), "older incarnation", kKey));
  Inject(SealDatagram(From1(7, 6), "seq 6", kKey));
  ASSERT_TRUE(RunUntil([&] { return at_b.size() == 2; }));
  EXPECT_EQ(at_b[0].payload, "seq 5");
  EXPECT_EQ(at_b[1].payload, "seq 6");
  EXPECT_EQ(b->GetStats().dropped_for(DropReason::kReplay), 3u);
  EXPECT_EQ(b->GetStats().delivered, 2u);
}

// A sender restarts after its wall clock stepped back by an hour: its new
// incarnation still exceeds the old one (state file), peers accept it, and a
// datagram captured before the restart no longer gets through.
TEST_F(TransportTest, ReplayAfterSenderRestartIsDropped) {
  char dir_template[] = "/tmp/baton-todrv-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string state = std::string(dir_template) + "/incarnation";

  std::vector<Received> at_a, at_b;
  auto b = Make(Options(2, port_b_, 200), &at_b);
  absl::StatusOr<uint64_t> inc1 = NextIncarnation(state, clock_.WallNow());
  ASSERT_TRUE(inc1.ok()) << inc1.status();
  auto a = Make(Options(1, port_a_, *inc1), &at_a);
  ASSERT_TRUE(a && b);
  // Capture what the first incarnation sends, as an attacker on the path would.
  ASSERT_TRUE(a->Send(2, "before restart 1").ok());
  ASSERT_TRUE(RunUntil([&] { return at_b.size() == 1; }));
  a.reset();
  StartFakeNode1();
  std::string captured = SealDatagram(From1(*inc1, 2), "captured before restart", kKey);
  fake_a_.reset();
  io_.poll();

  clock_.SetWall(clock_.WallNow() - std::chrono::hours(1));
  absl::StatusOr<uint64_t> inc2 = NextIncarnation(state, clock_.WallNow());
  ASSERT_TRUE(inc2.ok()) << inc2.status();
  EXPECT_GT(*inc2, *inc1);
  a = Make(Options(1, port_a_, *inc2), &at_a);
  ASSERT_TRUE(a);
  ASSERT_TRUE(a->Send(2, "after restart").ok());
  ASSERT_TRUE(RunUntil([&] { return at_b.size() == 2; }));
  EXPECT_EQ(at_b[1].payload, "after restart");

  // Replay from node 1's own address (the restarted transport is closed for
  // this; the attacker spoofs the source).
  a.reset();
  io_.poll();
  StartFakeNode1();
  Inject(captured);
  Inject(SealDatagram(From1(*inc2, 50), "fresh", kKey));
  ASSERT_TRUE(RunUntil([&] { return at_b.size() == 3; }));
  EXPECT_EQ(at_b[2].payload, "fresh");
  EXPECT_EQ(b->GetStats().dropped_for(DropReason::kReplay), 1u);
  std::remove(state.c_str());
  ::rmdir(dir_template);
}

TEST_F(TransportTest, FreshnessWindowDropsOldDatagrams) {
  std::vector<Received> at_b;
  UdpTransportOptions ob = Options(2, port_b_, 200);
  ob.freshness_window = seconds(30);
  auto b = Make(ob, &at_b);
  StartFakeNode1();
  DatagramHeader old = From1(7, 1);
  old.send_time_ns -= std::chrono::nanoseconds(seconds(31)).count();
  InjectThenSync(SealDatagram(old, "a minute ago", kKey), at_b);
  EXPECT_EQ(b->GetStats().dropped_for(DropReason::kStale), 1u);
  ASSERT_EQ(at_b.size(), 1u);
  EXPECT_EQ(at_b[0].payload, "sync");
}

// A receiver that restarts forgets every sender's sequence numbers. An
// attacker who captured an authentic datagram a minute earlier replays it to
// the restarted receiver: with the default options it must be refused (the
// freshness window is on by default), and fresh traffic still gets through.
TEST_F(TransportTest, RestartedReceiverRefusesOldCapturedDatagram) {
  std::vector<Received> at_a, at_b;
  auto a = Make(Options(1, port_a_, 100), &at_a);
  auto b = Make(Options(2, port_b_, 200), &at_b);  // default options
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Send(2, "grant slot 0").ok());
  ASSERT_TRUE(RunUntil([&] { return at_b.size() == 1; }));
  // What node 1 sent, as captured on the path (same header, same bytes).
  const std::string captured = SealDatagram(DatagramHeader{1, 2, 100, 1, clock_.WallNow().count()},
                                            "grant slot 0", kKey);
  a.reset();
  b.reset();
  io_.poll();
  io_.restart();  // the loop ran out of work and stopped

  clock_.Advance(std::chrono::minutes(1));
  std::vector<Received> at_b2;
  b = Make(Options(2, port_b_, 201), &at_b2);  // the receiver restarted
  ASSERT_TRUE(b);
  StartFakeNode1();
  InjectThenSync(captured, at_b2);
  EXPECT_EQ(b->GetStats().dropped_for(DropReason::kStale), 1u);
  ASSERT_EQ(at_b2.size(), 1u);
  EXPECT_EQ(at_b2[0].payload, "sync");
}

TEST_F(TransportTest, DropsAreLoggedOncePerReasonPerInterval) {
  std::ostringstream log;
  auto previous = spdlog::default_logger();
  auto logger = std::make_shared<spdlog::logger>(
      "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(log));
  spdlog::set_default_logger(logger);
  std::vector<Received> at_b;
  {
    auto b = Make(Options(2, port_b_, 200), &at_b);  // drop_log_interval 10 s
    StartFakeNode1();
    for (int i = 0; i < 5; ++i) InjectThenSync(SealDatagram(From1(7, 1), "x", kOtherKey), at_b);
    clock_.Advance(seconds(11));
    InjectThenSync(SealDatagram(From1(7, 1), "x", kOtherKey), at_b);
    EXPECT_EQ(b->GetStats().dropped_for(DropReason::kBadMac), 6u);
  }
  spdlog::set_default_logger(previous);
  std::string text = log.str();
  size_t lines = 0;
  for (size_t pos = 0; (pos = text.find("(bad MAC)", pos)) != std::string::npos; ++pos) ++lines;
  EXPECT_EQ(lines, 2u) << text;
  EXPECT_NE(text.find("5 such drop(s)"), std::string::npos) << text;
}

TEST_F(TransportTest, SendRejectsUnknownPeerAndOversizedPayload) {
  std::vector<Received> at_a;
  auto a = Make(Options(1, port_a_, 100), &at_a);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->Send(42, "x").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(a->Send(2, std::string(8193, 'x')).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(TransportTest, CreateRejectsBadOptions) {
  std::vector<Received> sink;
  auto cb = [&](NodeId, std::string_view) {};
  UdpTransportOptions o = Options(1, port_a_, 100);
  o.key = "short";
  EXPECT_EQ(UdpTransport::Create(io_, clock_, o, cb).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = Options(1, port_a_, 0);
  EXPECT_EQ(UdpTransport::Create(io_, clock_, o, cb).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = Options(1, port_a_, 100);
  o.peers.push_back({2, "127.0.0.1", 9});
  EXPECT_EQ(UdpTransport::Create(io_, clock_, o, cb).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = Options(1, port_a_, 100);
  o.peers[1].host = "peer-two.example";
  EXPECT_EQ(UdpTransport::Create(io_, clock_, o, cb).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto first = UdpTransport::Create(io_, clock_, Options(1, port_a_, 100), cb);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(UdpTransport::Create(io_, clock_, Options(1, port_a_, 100), cb).status().code(),
            absl::StatusCode::kUnavailable);
}

class KeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/baton-todrv-key-XXXXXX";
    ASSERT_NE(::mkdtemp(t), nullptr);
    dir_ = t;
  }
  void TearDown() override {
    std::remove(path().c_str());
    ::rmdir(dir_.c_str());
  }
  std::string path() const { return dir_ + "/key"; }
  void Write(const std::string& content, mode_t mode) {
    std::ofstream(path(), std::ios::binary | std::ios::trunc) << content;
    ASSERT_EQ(::chmod(path().c_str(), mode), 0);
  }
  std::string dir_;
};

TEST_F(KeyFileTest, LoadsOwnerOnlyKeyAndStripsOneNewline) {
  Write(kKey + "\n", 0600);
  absl::StatusOr<std::string> key = LoadClusterKey(path());
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(*key, kKey);
}

TEST_F(KeyFileTest, RejectsGroupReadableShortAndMissing) {
  Write(kKey, 0644);
  absl::StatusOr<std::string> key = LoadClusterKey(path());
  EXPECT_EQ(key.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(key.status().message().find("chmod 600"), std::string::npos) << key.status();
  Write("too short\n", 0600);
  EXPECT_EQ(LoadClusterKey(path()).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadClusterKey(dir_ + "/missing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(LoadClusterKey(dir_).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(KeyFileTest, IncarnationGrowsAcrossRestartsAndClockSteps) {
  const std::string state = dir_ + "/key";  // reuse the fixture's path
  auto i1 = NextIncarnation(state, seconds(2000));
  ASSERT_TRUE(i1.ok()) << i1.status();
  EXPECT_EQ(*i1, 2000'000'000'000u);
  auto i2 = NextIncarnation(state, seconds(1000));  // clock stepped back
  ASSERT_TRUE(i2.ok());
  EXPECT_EQ(*i2, *i1 + 1);
  auto i3 = NextIncarnation(state, seconds(3000));
  ASSERT_TRUE(i3.ok());
  EXPECT_EQ(*i3, 3000'000'000'000u);
  Write("not a number", 0600);
  EXPECT_EQ(NextIncarnation(state, seconds(4000)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace baton::takeover

// What authentication and replay protection cost per message: round trips
// over loopback through two UdpTransports (one io_context) against the same
// ping-pong over two plain UDP sockets, alternating baseline and transport
// runs so that machine noise hits both. Prints medians and the ratio.
//
//   baton-takeover-transport-bench [round_trips (default 20000)] [payload_bytes (default 200)]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>

#include "bench/lib/alternating.h"
#include "bench/lib/stats.h"
#include "spdlog/spdlog.h"
#include "takeover/drivers/clock.h"
#include "takeover/drivers/udp_transport.h"

namespace {

namespace asio = boost::asio;
using asio::ip::udp;
using baton::takeover::NodeId;
using baton::takeover::SteadyClock;
using std::chrono::nanoseconds;

const SteadyClock& clock_ = SteadyClock::Get();

// Appends round trips `from` to `to` in microseconds.
void AppendUs(const std::vector<nanoseconds>& from, std::vector<double>* to) {
  for (nanoseconds d : from) to->push_back(static_cast<double>(d.count()) / 1000.0);
}

// The baseline: the same ping-pong on the same kind of event loop (async
// receive, non-blocking send), without framing, MAC or replay check.
std::vector<nanoseconds> PlainRun(int n, const std::string& payload) {
  asio::io_context io;
  udp::socket a(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  udp::socket b(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::vector<char> buf_a(65536), buf_b(65536);
  udp::endpoint from_a, from_b;
  std::vector<nanoseconds> rtts;
  rtts.reserve(n);
  nanoseconds t0{0};
  std::function<void()> recv_a, recv_b;
  recv_b = [&] {
    b.async_receive_from(asio::buffer(buf_b), from_b,
                         [&](const boost::system::error_code& ec, size_t len) {
                           if (ec) return;
                           boost::system::error_code sec;
                           b.send_to(asio::buffer(buf_b.data(), len), a.local_endpoint(), 0, sec);
                           recv_b();
                         });
  };
  recv_a = [&] {
    a.async_receive_from(asio::buffer(buf_a), from_a,
                         [&](const boost::system::error_code& ec, size_t) {
                           if (ec) return;
                           rtts.push_back(clock_.MonotonicNow() - t0);
                           if (static_cast<int>(rtts.size()) < n) {
                             t0 = clock_.MonotonicNow();
                             boost::system::error_code sec;
                             a.send_to(asio::buffer(payload), b.local_endpoint(), 0, sec);
                             recv_a();
                           }
                         });
  };
  recv_a();
  recv_b();
  t0 = clock_.MonotonicNow();
  a.send_to(asio::buffer(payload), b.local_endpoint());
  while (static_cast<int>(rtts.size()) < n && io.run_one_for(std::chrono::seconds(1)) > 0) {
  }
  return rtts;
}

std::vector<nanoseconds> TransportRun(int n, const std::string& payload, uint16_t pa,
                                      uint16_t pb) {
  asio::io_context io;
  const std::string key(32, 'k');
  auto options = [&](NodeId self, uint16_t port) {
    baton::takeover::UdpTransportOptions o;
    o.self = self;
    o.bind_host = "127.0.0.1";
    o.bind_port = port;
    o.peers = {{1, "127.0.0.1", pa}, {2, "127.0.0.1", pb}};
    o.key = key;
    o.incarnation = 1;
    return o;
  };
  std::vector<nanoseconds> rtts;
  rtts.reserve(n);
  nanoseconds t0{0};
  std::unique_ptr<baton::takeover::UdpTransport> a, b;
  auto on_a = [&](NodeId, std::string_view) {
    rtts.push_back(clock_.MonotonicNow() - t0);
    if (static_cast<int>(rtts.size()) < n) {
      t0 = clock_.MonotonicNow();
      (void)a->Send(2, payload);
    }
  };
  auto on_b = [&](NodeId, std::string_view p) { (void)b->Send(1, p); };
  a = std::move(*baton::takeover::UdpTransport::Create(io, clock_, options(1, pa), on_a));
  b = std::move(*baton::takeover::UdpTransport::Create(io, clock_, options(2, pb), on_b));
  t0 = clock_.MonotonicNow();
  (void)a->Send(2, payload);
  while (static_cast<int>(rtts.size()) < n && io.run_one_for(std::chrono::seconds(1)) > 0) {
  }
  return rtts;
}

uint16_t FreePort() {
  asio::io_context io;
  udp::socket s(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return s.local_endpoint().port();
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 20000;
  size_t size = argc > 2 ? static_cast<size_t>(std::atoi(argv[2])) : 200;
  if (n <= 0 || size == 0 || size > 8192) {
    std::fprintf(stderr, "usage: %s [round_trips > 0] [payload_bytes 1..8192]\n", argv[0]);
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  const std::string payload(size, 'p');
  std::vector<double> plain_us, auth_us;
  const int kRounds = 4;  // alternate: plain, transport, transport, plain, ...
  (void)baton::bench::RunAlternating(
      2, kRounds, [&](int system, int) -> absl::StatusOr<double> {
        if (system == 0) {
          AppendUs(PlainRun(n / kRounds, payload), &plain_us);
        } else {
          AppendUs(TransportRun(n / kRounds, payload, FreePort(), FreePort()), &auth_us);
        }
        return 0.0;
      });
  const baton::bench::LatencySummary plain = baton::bench::SummarizeLatencies(plain_us);
  const baton::bench::LatencySummary auth = baton::bench::SummarizeLatencies(auth_us);
  std::printf("loopback round trip, %zu-byte payload, %zu round trips each\n", size, plain.count);
  std::printf("  plain UDP sockets (baseline): median %.1f us  p99 %.1f us\n", plain.p50,
              plain.p99);
  std::printf("  UdpTransport (HMAC+replay)  : median %.1f us  p99 %.1f us\n", auth.p50,
              auth.p99);
  std::printf("  ratio transport/baseline (median): %.2f\n",
              plain.p50 > 0 ? auth.p50 / plain.p50 : 0.0);
  return auth.count == plain.count ? 0 : 1;
}

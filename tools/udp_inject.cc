// baton-udp-inject: attacks the take-over group from inside the lab, to show that forged and
// replayed datagrams are rejected (tests/integration/takeover_forgery.sh).
//
//   capture --iface eth0 --port P --count N --out FILE [--timeout-ms 5000]
//       Records the next N IPv4/UDP datagrams to port P seen on the interface (AF_PACKET), one
//       per line: "SRC_IP SRC_PORT DST_IP DST_PORT HEX_PAYLOAD".
//   replay --in FILE [--to IP]
//       Sends every captured datagram again, byte for byte, with its original source address and
//       port (raw socket, spoofed IP header), to its original destination or to IP.
//   forge --in FILE [--to IP] [--mode wrong-key|tamper|garbage]
//       For every captured datagram sends a variant from the same spoofed source:
//       wrong-key: same header fields (fresh sequence number, far ahead) and payload, sealed with
//       a random key; tamper: one payload byte flipped, MAC kept; garbage: random bytes.
// Exit status: 0 ok, 1 error, 2 usage. IPv4 only. Needs CAP_NET_RAW.
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "takeover/drivers/udp_transport.h"

namespace {

struct Captured {
  std::string src, dst;
  uint16_t sport = 0, dport = 0;
  std::string payload;
};

int Usage() {
  std::fprintf(stderr,
               "usage: baton-udp-inject capture --iface IF --port P --count N --out FILE [--timeout-ms T]\n"
               "       baton-udp-inject replay --in FILE [--to IP]\n"
               "       baton-udp-inject forge --in FILE [--to IP] [--mode wrong-key|tamper|garbage]\n");
  return 2;
}

std::string Hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

std::string Unhex(const std::string& h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
  }
  return out;
}

// Monotonic milliseconds; the only clock read (bounds the capture).
int64_t NowMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

int Capture(const std::string& iface, int port, int count, const std::string& out, int timeout_ms) {
  int fd = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP));
  if (fd < 0) {
    std::perror("socket(AF_PACKET)");
    return 1;
  }
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_IP);
  sll.sll_ifindex = static_cast<int>(if_nametoindex(iface.c_str()));
  if (sll.sll_ifindex == 0 || bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof(sll)) != 0) {
    std::perror("bind(AF_PACKET)");
    return 1;
  }
  std::ofstream f(out);
  int got = 0;
  const int64_t end = NowMs() + timeout_ms;
  unsigned char buf[65536];
  while (got < count && NowMs() < end) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < static_cast<ssize_t>(sizeof(iphdr) + sizeof(udphdr))) continue;
    const iphdr* ip = reinterpret_cast<const iphdr*>(buf);
    if (ip->version != 4 || ip->protocol != IPPROTO_UDP) continue;
    size_t ihl = ip->ihl * 4u;
    if (static_cast<size_t>(n) < ihl + sizeof(udphdr)) continue;
    const udphdr* udp = reinterpret_cast<const udphdr*>(buf + ihl);
    if (ntohs(udp->dest) != port) continue;
    size_t ulen = ntohs(udp->len);
    if (ulen < sizeof(udphdr) || ihl + ulen > static_cast<size_t>(n)) continue;
    char src[INET_ADDRSTRLEN], dst[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &ip->saddr, src, sizeof(src));
    inet_ntop(AF_INET, &ip->daddr, dst, sizeof(dst));
    std::string payload(reinterpret_cast<const char*>(buf + ihl + sizeof(udphdr)), ulen - sizeof(udphdr));
    f << src << " " << ntohs(udp->source) << " " << dst << " " << ntohs(udp->dest) << " " << Hex(payload) << "\n";
    ++got;
  }
  close(fd);
  std::fprintf(stderr, "captured %d datagrams\n", got);
  return got == count ? 0 : 1;
}

std::vector<Captured> Load(const std::string& path) {
  std::vector<Captured> v;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    Captured c;
    std::string hex;
    if (in >> c.src >> c.sport >> c.dst >> c.dport >> hex) {
      c.payload = Unhex(hex);
      v.push_back(c);
    }
  }
  return v;
}

uint16_t Checksum(const void* data, size_t len, uint32_t sum = 0) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i + 1 < len; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (len & 1) sum += static_cast<uint32_t>(p[len - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// Sends `payload` from src:sport (spoofed) to dst:dport through a raw IP socket.
bool SendSpoofed(int fd, const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport,
                 const std::string& payload) {
  std::vector<uint8_t> pkt(sizeof(iphdr) + sizeof(udphdr) + payload.size());
  iphdr* ip = reinterpret_cast<iphdr*>(pkt.data());
  udphdr* udp = reinterpret_cast<udphdr*>(pkt.data() + sizeof(iphdr));
  ip->version = 4;
  ip->ihl = 5;
  ip->ttl = 64;
  ip->protocol = IPPROTO_UDP;
  ip->tot_len = htons(static_cast<uint16_t>(pkt.size()));
  inet_pton(AF_INET, src.c_str(), &ip->saddr);
  inet_pton(AF_INET, dst.c_str(), &ip->daddr);
  ip->check = htons(Checksum(ip, sizeof(iphdr)));
  udp->source = htons(sport);
  udp->dest = htons(dport);
  udp->len = htons(static_cast<uint16_t>(sizeof(udphdr) + payload.size()));
  std::memcpy(pkt.data() + sizeof(iphdr) + sizeof(udphdr), payload.data(), payload.size());
  udp->check = 0;  // optional for IPv4 UDP
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = ip->daddr;
  return sendto(fd, pkt.data(), pkt.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) ==
         static_cast<ssize_t>(pkt.size());
}

int Send(const std::vector<Captured>& in, const std::string& to, const std::string& mode) {
  int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
  if (fd < 0) {
    std::perror("socket(SOCK_RAW)");
    return 1;
  }
  std::mt19937_64 rng(0x6261746f6eULL);  // fixed seed: the attack is reproducible
  std::string random_key(32, '\0');
  for (char& c : random_key) c = static_cast<char>(rng());
  int sent = 0;
  for (const Captured& c : in) {
    std::string payload = c.payload;
    if (mode == "tamper" && payload.size() > baton::takeover::kDatagramHeaderBytes) {
      payload[baton::takeover::kDatagramHeaderBytes] ^= 0x01;
    } else if (mode == "garbage") {
      for (char& b : payload) b = static_cast<char>(rng());
    } else if (mode == "wrong-key") {
      // Re-seal the same header and payload with a key the group does not have, far ahead in
      // sequence so that only the MAC can reject it.
      baton::takeover::DatagramHeader h;
      if (payload.size() >= baton::takeover::kDatagramHeaderBytes + baton::takeover::kDatagramMacBytes) {
        auto be32 = [&](size_t o) {
          return static_cast<uint32_t>(static_cast<uint8_t>(payload[o])) << 24 |
                 static_cast<uint32_t>(static_cast<uint8_t>(payload[o + 1])) << 16 |
                 static_cast<uint32_t>(static_cast<uint8_t>(payload[o + 2])) << 8 |
                 static_cast<uint32_t>(static_cast<uint8_t>(payload[o + 3]));
        };
        auto be64 = [&](size_t o) { return static_cast<uint64_t>(be32(o)) << 32 | be32(o + 4); };
        h.sender = be32(8);
        h.recipient = be32(12);
        h.incarnation = be64(16);
        h.sequence = be64(24) + 1000000;
        h.send_time_ns = static_cast<int64_t>(be64(32));
        size_t n = static_cast<size_t>(static_cast<uint8_t>(payload[6])) << 8 | static_cast<uint8_t>(payload[7]);
        std::string inner = payload.substr(baton::takeover::kDatagramHeaderBytes, n);
        payload = baton::takeover::SealDatagram(h, inner, random_key);
      }
    }
    const std::string& dst = to.empty() ? c.dst : to;
    if (SendSpoofed(fd, c.src, c.sport, dst, c.dport, payload)) ++sent;
  }
  close(fd);
  std::fprintf(stderr, "sent %d of %zu datagrams (%s)\n", sent, in.size(), mode.c_str());
  return sent == static_cast<int>(in.size()) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage();
  std::string cmd = argv[1];
  std::map<std::string, std::string> opt;
  for (int i = 2; i + 1 < argc; i += 2) opt[argv[i]] = argv[i + 1];
  if ((argc - 2) % 2 != 0) return Usage();
  if (cmd == "capture") {
    if (!opt.count("--iface") || !opt.count("--port") || !opt.count("--count") || !opt.count("--out")) {
      return Usage();
    }
    int timeout = opt.count("--timeout-ms") ? std::atoi(opt["--timeout-ms"].c_str()) : 5000;
    return Capture(opt["--iface"], std::atoi(opt["--port"].c_str()), std::atoi(opt["--count"].c_str()),
                   opt["--out"], timeout);
  }
  if (cmd == "replay" || cmd == "forge") {
    if (!opt.count("--in")) return Usage();
    std::vector<Captured> in = Load(opt["--in"]);
    if (in.empty()) {
      std::fprintf(stderr, "nothing captured in %s\n", opt["--in"].c_str());
      return 1;
    }
    std::string mode = cmd == "replay" ? "replay" : (opt.count("--mode") ? opt["--mode"] : "wrong-key");
    if (mode != "replay" && mode != "wrong-key" && mode != "tamper" && mode != "garbage") return Usage();
    return Send(in, opt.count("--to") ? opt["--to"] : "", mode);
  }
  return Usage();
}

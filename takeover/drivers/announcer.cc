#include "takeover/drivers/announcer.h"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/errno_status.h"
#include "spdlog/spdlog.h"

namespace baton::takeover {
namespace {

namespace asio = boost::asio;

constexpr size_t kMinEthernetFrame = 60;  // without FCS; short ARP frames are padded
constexpr MacAddress kBroadcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
constexpr MacAddress kAllNodesMac = {0x33, 0x33, 0x00, 0x00, 0x00, 0x01};
constexpr uint16_t kEtherArp = 0x0806;
constexpr uint16_t kEtherIpv4 = 0x0800;
constexpr uint16_t kEtherIpv6 = 0x86DD;

void Put16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}
void PutBytes(std::string& out, const uint8_t* p, size_t n) {
  out.append(reinterpret_cast<const char*>(p), n);
}
void PutEthernet(std::string& out, const MacAddress& dst, const MacAddress& src, uint16_t type) {
  PutBytes(out, dst.data(), dst.size());
  PutBytes(out, src.data(), src.size());
  Put16(out, type);
}

// RFC 1071 one's-complement sum, folded.
uint16_t Checksum(std::string_view data, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < data.size(); i += 2) {
    sum += (static_cast<uint8_t>(data[i]) << 8) | static_cast<uint8_t>(data[i + 1]);
  }
  if (data.size() % 2 == 1) sum += static_cast<uint8_t>(data.back()) << 8;
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

absl::Status ErrnoStatus(int err, const std::string& what) {
  absl::Status s = baton::ErrnoToStatus(err, absl::StrCat("announcer: ", what));
  if (absl::IsPermissionDenied(s)) {
    return absl::PermissionDeniedError(absl::StrCat(s.message(), " (needs CAP_NET_RAW)"));
  }
  return s;
}

struct Interface {
  int index = 0;
  MacAddress mac{};
};

class AnnouncerImpl final : public Announcer {
 public:
  AnnouncerImpl(AnnouncerOptions options, int fd) : options_(std::move(options)), fd_(fd) {}
  ~AnnouncerImpl() override { ::close(fd_); }

  absl::Status Start(const asio::ip::address& address, std::string_view ifname,
                     std::chrono::nanoseconds now) override {
    if (absl::Status s = CheckAddress(address); !s.ok()) return s;
    absl::StatusOr<Interface> itf = Lookup(ifname);
    if (!itf.ok()) return itf.status();
    Entry e;
    e.ifname = std::string(ifname);
    e.itf = *itf;
    e.start = now;
    absl::Status first = absl::OkStatus();
    if (!options_.schedule.empty() && options_.schedule[0].count() <= 0) {
      first = SendRound(address, e.ifname, e.itf);
      e.next = 1;
    }
    if (e.next < options_.schedule.size()) {
      entries_[address] = std::move(e);
    } else {
      entries_.erase(address);
    }
    return first;
  }

  void Cancel(const asio::ip::address& address) override { entries_.erase(address); }

  void Poll(std::chrono::nanoseconds now) override {
    for (auto it = entries_.begin(); it != entries_.end();) {
      Entry& e = it->second;
      if (e.start + options_.schedule[e.next] <= now) {
        // Rounds that fell due together (the loop was late) collapse into one.
        while (e.next < options_.schedule.size() && e.start + options_.schedule[e.next] <= now) {
          ++e.next;
        }
        absl::Status s = SendRound(it->first, e.ifname, e.itf);
        if (!s.ok()) spdlog::warn("{}", s.ToString());
      }
      if (e.next >= options_.schedule.size()) {
        it = entries_.erase(it);
      } else {
        ++it;
      }
    }
  }

  std::optional<std::chrono::nanoseconds> NextDeadline() const override {
    std::optional<std::chrono::nanoseconds> best;
    for (const auto& [address, e] : entries_) {
      std::chrono::nanoseconds t = e.start + options_.schedule[e.next];
      if (!best || t < *best) best = t;
    }
    return best;
  }

  absl::Status SendOnce(const asio::ip::address& address, std::string_view ifname) override {
    if (absl::Status s = CheckAddress(address); !s.ok()) return s;
    absl::StatusOr<Interface> itf = Lookup(ifname);
    if (!itf.ok()) return itf.status();
    return SendRound(address, std::string(ifname), *itf);
  }

  AnnouncerStats GetStats() const override { return stats_; }

 private:
  struct Entry {
    std::string ifname;
    Interface itf;
    std::chrono::nanoseconds start{0};
    size_t next = 0;  // index into options_.schedule of the next round
  };

  static absl::Status CheckAddress(const asio::ip::address& a) {
    if (a.is_unspecified() || a.is_multicast() || a.is_loopback()) {
      return absl::InvalidArgumentError(
          absl::StrCat("announcer: ", a.to_string(), " is not a unicast service address"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Interface> Lookup(std::string_view ifname) {
    if (ifname.empty() || ifname.size() >= IFNAMSIZ) {
      return absl::InvalidArgumentError(
          absl::StrCat("announcer: bad interface name '", std::string(ifname), "'"));
    }
    ifreq req{};
    std::memcpy(req.ifr_name, ifname.data(), ifname.size());
    Interface itf;
    if (::ioctl(fd_, SIOCGIFINDEX, &req) != 0) {
      return ErrnoStatus(errno, absl::StrCat("interface ", std::string(ifname)));
    }
    itf.index = req.ifr_ifindex;
    if (::ioctl(fd_, SIOCGIFHWADDR, &req) != 0) {
      return ErrnoStatus(errno, absl::StrCat("MAC address of ", std::string(ifname)));
    }
    if (req.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
      return absl::InvalidArgumentError(absl::StrCat(
          "announcer: interface ", std::string(ifname), " is not Ethernet (no 6-byte MAC)"));
    }
    std::memcpy(itf.mac.data(), req.ifr_hwaddr.sa_data, itf.mac.size());
    return itf;
  }

  absl::Status SendRound(const asio::ip::address& address, const std::string& ifname,
                         const Interface& itf) {
    absl::Status s;
    if (address.is_v4()) {
      s = SendFrame(BuildGratuitousArp(itf.mac, address.to_v4(), /*reply=*/false), itf,
                    kBroadcast, kEtherArp, ifname);
      absl::Status r = SendFrame(BuildGratuitousArp(itf.mac, address.to_v4(), /*reply=*/true),
                                 itf, kBroadcast, kEtherArp, ifname);
      if (s.ok()) s = r;
    } else {
      s = SendFrame(BuildUnsolicitedNa(itf.mac, address.to_v6()), itf, kAllNodesMac, kEtherIpv6,
                    ifname);
    }
    if (s.ok()) ++stats_.rounds_sent;
    return s;
  }

  absl::Status SendFrame(const std::string& frame, const Interface& itf, const MacAddress& dst,
                         uint16_t ethertype, const std::string& ifname) {
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_ifindex = itf.index;
    to.sll_protocol = htons(ethertype);
    to.sll_halen = 6;
    std::memcpy(to.sll_addr, dst.data(), dst.size());
    ssize_t n = ::sendto(fd_, frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&to),
                         sizeof(to));
    if (n != static_cast<ssize_t>(frame.size())) {
      ++stats_.send_errors;
      return ErrnoStatus(n < 0 ? errno : EIO, absl::StrCat("sending on ", ifname));
    }
    ++stats_.frames_sent;
    return absl::OkStatus();
  }

  const AnnouncerOptions options_;
  const int fd_;
  std::map<asio::ip::address, Entry> entries_;
  AnnouncerStats stats_;
};

}  // namespace

std::string BuildGratuitousArp(const MacAddress& mac, const asio::ip::address_v4& ip,
                               bool reply) {
  std::string f;
  f.reserve(kMinEthernetFrame);
  PutEthernet(f, kBroadcast, mac, kEtherArp);
  Put16(f, 1);           // hardware type: Ethernet
  Put16(f, kEtherIpv4);  // protocol type
  f.push_back(6);        // hardware address length
  f.push_back(4);        // protocol address length
  Put16(f, reply ? 2 : 1);
  auto ip_bytes = ip.to_bytes();
  PutBytes(f, mac.data(), mac.size());  // sender MAC
  PutBytes(f, ip_bytes.data(), ip_bytes.size());
  MacAddress target = reply ? mac : MacAddress{};
  PutBytes(f, target.data(), target.size());
  PutBytes(f, ip_bytes.data(), ip_bytes.size());
  f.resize(kMinEthernetFrame, '\0');
  return f;
}

std::string BuildUnsolicitedNa(const MacAddress& mac, const asio::ip::address_v6& ip) {
  const auto src = ip.to_bytes();
  const auto dst = asio::ip::make_address_v6("ff02::1").to_bytes();
  // ICMPv6 NA: type, code, checksum, flags (R S O + 29 reserved bits), target,
  // option 2 (target link-layer address), length 1 (8 bytes), MAC.
  std::string icmp;
  icmp.push_back(static_cast<char>(136));
  icmp.push_back(0);
  Put16(icmp, 0);  // checksum, filled in below
  icmp.push_back(0x20);  // O=1 (override), S=0, R=0
  icmp.append(3, '\0');
  PutBytes(icmp, src.data(), src.size());
  icmp.push_back(2);
  icmp.push_back(1);
  PutBytes(icmp, mac.data(), mac.size());

  std::string pseudo;
  PutBytes(pseudo, src.data(), src.size());
  PutBytes(pseudo, dst.data(), dst.size());
  Put16(pseudo, 0);
  Put16(pseudo, static_cast<uint16_t>(icmp.size()));
  pseudo.append(3, '\0');
  pseudo.push_back(58);
  uint16_t sum = Checksum(pseudo + icmp);
  icmp[2] = static_cast<char>(sum >> 8);
  icmp[3] = static_cast<char>(sum);

  std::string f;
  PutEthernet(f, kAllNodesMac, mac, kEtherIpv6);
  f.push_back(0x60);  // version 6, traffic class 0
  f.append(3, '\0');  // flow label
  Put16(f, static_cast<uint16_t>(icmp.size()));
  f.push_back(58);                     // next header: ICMPv6
  f.push_back(static_cast<char>(255));  // hop limit: RFC 4861 requires 255
  PutBytes(f, src.data(), src.size());
  PutBytes(f, dst.data(), dst.size());
  f += icmp;
  return f;
}

absl::StatusOr<std::unique_ptr<Announcer>> Announcer::Create(AnnouncerOptions options) {
  if (!std::is_sorted(options.schedule.begin(), options.schedule.end())) {
    return absl::InvalidArgumentError("announcer: schedule offsets must be ascending");
  }
  if (!options.schedule.empty() && options.schedule.front().count() < 0) {
    return absl::InvalidArgumentError("announcer: schedule offsets must be >= 0");
  }
  // Protocol 0: a send-only packet socket (receives nothing).
  int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return ErrnoStatus(errno, "opening the AF_PACKET socket");
  return std::unique_ptr<Announcer>(new AnnouncerImpl(std::move(options), fd));
}

AsioAnnouncerDriver::AsioAnnouncerDriver(asio::io_context& io, const Clock& clock,
                                         Announcer& announcer)
    : clock_(clock), announcer_(announcer), timer_(io), alive_(std::make_shared<bool>(true)) {}

AsioAnnouncerDriver::~AsioAnnouncerDriver() {
  *alive_ = false;
  timer_.cancel();
}

absl::Status AsioAnnouncerDriver::Start(const asio::ip::address& address,
                                        std::string_view ifname) {
  absl::Status s = announcer_.Start(address, ifname, clock_.MonotonicNow());
  Rearm();
  return s;
}

void AsioAnnouncerDriver::Cancel(const asio::ip::address& address) {
  announcer_.Cancel(address);
  Rearm();
}

void AsioAnnouncerDriver::Rearm() {
  std::optional<std::chrono::nanoseconds> deadline = announcer_.NextDeadline();
  if (!deadline) {
    timer_.cancel();
    return;
  }
  timer_.expires_after(std::max(std::chrono::nanoseconds(0), *deadline - clock_.MonotonicNow()));
  timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (!*alive || ec == asio::error::operation_aborted) return;
    announcer_.Poll(clock_.MonotonicNow());
    Rearm();
  });
}

}  // namespace baton::takeover

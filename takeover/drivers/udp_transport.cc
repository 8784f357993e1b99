#include "takeover/drivers/udp_transport.h"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <utility>

#include <boost/asio/ip/udp.hpp>
#include <boost/asio/ip/v6_only.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/errno_status.h"
#include "base/strings.h"
#include "spdlog/spdlog.h"

namespace baton::takeover {
namespace {

namespace asio = boost::asio;
using asio::ip::udp;

constexpr uint8_t kMagic[4] = {'B', 'T', 'K', 'O'};
constexpr size_t kMinKeyBytes = 32;
constexpr size_t kMaxKeyBytes = 4096;
constexpr size_t kMaxPayloadLimit = 65507 - kDatagramHeaderBytes - kDatagramMacBytes;

void PutU16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}
void PutU32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}
void PutU64(std::string& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}
uint64_t GetBe(std::string_view in, size_t offset, size_t bytes) {
  uint64_t v = 0;
  for (size_t i = 0; i < bytes; ++i) v = (v << 8) | static_cast<uint8_t>(in[offset + i]);
  return v;
}

// HMAC-SHA256 with a fixed key. The keyed context is set up once; each
// message works on a copy of it.
class Hmac {
 public:
  static absl::StatusOr<Hmac> Create(std::string_view key) {
    Hmac h;
    h.mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (h.mac_ == nullptr) return absl::InternalError("OpenSSL: HMAC not available");
    h.ctx_ = EVP_MAC_CTX_new(h.mac_);
    if (h.ctx_ == nullptr) return absl::InternalError("OpenSSL: EVP_MAC_CTX_new failed");
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end()};
    if (EVP_MAC_init(h.ctx_, reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                     params) != 1) {
      return absl::InternalError("OpenSSL: EVP_MAC_init(HMAC-SHA256) failed");
    }
    return h;
  }
  Hmac(Hmac&& o) noexcept : mac_(std::exchange(o.mac_, nullptr)), ctx_(std::exchange(o.ctx_, nullptr)) {}
  Hmac& operator=(Hmac&& o) noexcept {
    std::swap(mac_, o.mac_);
    std::swap(ctx_, o.ctx_);
    return *this;
  }
  ~Hmac() {
    EVP_MAC_CTX_free(ctx_);
    EVP_MAC_free(mac_);
  }

  // False only if OpenSSL fails (out of memory).
  bool Compute(std::string_view data, unsigned char out[kDatagramMacBytes]) const {
    EVP_MAC_CTX* c = EVP_MAC_CTX_dup(ctx_);
    if (c == nullptr) return false;
    size_t len = 0;
    bool ok = EVP_MAC_update(c, reinterpret_cast<const unsigned char*>(data.data()),
                             data.size()) == 1 &&
              EVP_MAC_final(c, out, &len, kDatagramMacBytes) == 1 && len == kDatagramMacBytes;
    EVP_MAC_CTX_free(c);
    return ok;
  }

 private:
  Hmac() = default;
  EVP_MAC* mac_ = nullptr;
  EVP_MAC_CTX* ctx_ = nullptr;
};

std::string Seal(const DatagramHeader& h, std::string_view payload, const Hmac& hmac) {
  std::string out;
  out.reserve(kDatagramHeaderBytes + payload.size() + kDatagramMacBytes);
  out.append(reinterpret_cast<const char*>(kMagic), sizeof(kMagic));
  out.push_back(static_cast<char>(kDatagramVersion));
  out.push_back(0);  // flags
  PutU16(out, static_cast<uint16_t>(payload.size()));
  PutU32(out, h.sender);
  PutU32(out, h.recipient);
  PutU64(out, h.incarnation);
  PutU64(out, h.sequence);
  PutU64(out, static_cast<uint64_t>(h.send_time_ns));
  out.append(payload);
  unsigned char mac[kDatagramMacBytes];
  if (!hmac.Compute(out, mac)) {
    // Out of memory inside OpenSSL: send a datagram that will not verify
    // rather than an unauthenticated one.
    std::memset(mac, 0, sizeof(mac));
  }
  out.append(reinterpret_cast<const char*>(mac), sizeof(mac));
  return out;
}

// Structural checks only (no MAC).
std::optional<DropReason> CheckShape(std::string_view d, size_t max_payload) {
  if (d.size() < kDatagramHeaderBytes + kDatagramMacBytes) return DropReason::kTruncated;
  if (d.size() > kDatagramHeaderBytes + max_payload + kDatagramMacBytes) {
    return DropReason::kOversized;
  }
  if (std::memcmp(d.data(), kMagic, sizeof(kMagic)) != 0) return DropReason::kBadMagic;
  if (static_cast<uint8_t>(d[4]) != kDatagramVersion || d[5] != 0) return DropReason::kBadVersion;
  size_t len = GetBe(d, 6, 2);
  if (kDatagramHeaderBytes + len + kDatagramMacBytes != d.size()) return DropReason::kTruncated;
  return std::nullopt;
}

DatagramHeader ParseHeader(std::string_view d) {
  DatagramHeader h;
  h.sender = static_cast<NodeId>(GetBe(d, 8, 4));
  h.recipient = static_cast<NodeId>(GetBe(d, 12, 4));
  h.incarnation = GetBe(d, 16, 8);
  h.sequence = GetBe(d, 24, 8);
  h.send_time_ns = static_cast<int64_t>(GetBe(d, 32, 8));
  return h;
}

bool MacValid(std::string_view d, const Hmac& hmac) {
  size_t body = d.size() - kDatagramMacBytes;
  unsigned char expected[kDatagramMacBytes];
  if (!hmac.Compute(d.substr(0, body), expected)) return false;
  return CRYPTO_memcmp(expected, d.data() + body, kDatagramMacBytes) == 0;
}

// Endpoints as the socket reports them: on a dual-stack IPv6 socket IPv4
// peers appear as v4-mapped IPv6 addresses.
udp::endpoint ForSocket(const udp::endpoint& ep, bool socket_is_v6) {
  if (socket_is_v6 && ep.address().is_v4()) {
    return udp::endpoint(
        asio::ip::make_address_v6(asio::ip::v4_mapped, ep.address().to_v4()), ep.port());
  }
  return ep;
}

class UdpTransportImpl final : public UdpTransport {
 public:
  struct Peer {
    udp::endpoint endpoint;
    bool has_last = false;
    uint64_t last_incarnation = 0;
    uint64_t last_sequence = 0;
  };

  UdpTransportImpl(asio::io_context& io, const Clock& clock, UdpTransportOptions options,
                   ReceiveCallback on_receive, Hmac hmac)
      : clock_(clock),
        options_(std::move(options)),
        on_receive_(std::move(on_receive)),
        hmac_(std::move(hmac)),
        socket_(io),
        rx_buffer_(65536) {}

  ~UdpTransportImpl() override { Close(); }

  absl::Status Init() {
    boost::system::error_code ec;
    asio::ip::address bind_address = asio::ip::make_address(options_.bind_host, ec);
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat("udp transport: bind_host '", options_.bind_host,
                       "' is not a numeric IPv4/IPv6 address"));
    }
    udp::endpoint local(bind_address, options_.bind_port);
    socket_is_v6_ = bind_address.is_v6();
    for (const PeerAddress& p : options_.peers) {
      if (p.id == options_.self) continue;
      asio::ip::address a = asio::ip::make_address(p.host, ec);
      if (ec) {
        return absl::InvalidArgumentError(absl::StrCat(
            "udp transport: peer ", p.id, " host '", p.host, "' is not a numeric IP address"));
      }
      if (p.port == 0) {
        return absl::InvalidArgumentError(absl::StrCat("udp transport: peer ", p.id, " has port 0"));
      }
      if (!socket_is_v6_ && a.is_v6()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "udp transport: peer ", p.id, " is IPv6 (", p.host, ") but bind_host ",
            options_.bind_host, " is IPv4; bind to \"::\" for a mixed group"));
      }
      Peer peer;
      peer.endpoint = ForSocket(udp::endpoint(a, p.port), socket_is_v6_);
      if (!peers_.emplace(p.id, peer).second) {
        return absl::InvalidArgumentError(absl::StrCat("udp transport: duplicate peer id ", p.id));
      }
    }
    socket_.open(local.protocol(), ec);
    if (ec) return absl::UnavailableError(absl::StrCat("udp transport: socket: ", ec.message()));
    if (socket_is_v6_) {
      // Dual stack where possible; harmless if the bind address is not "::".
      socket_.set_option(asio::ip::v6_only(false), ec);
    }
    socket_.bind(local, ec);
    if (ec) {
      return absl::UnavailableError(absl::StrCat("udp transport: bind ", options_.bind_host, " port ",
                                                 options_.bind_port, ": ", ec.message()));
    }
    socket_.non_blocking(true, ec);
    if (ec) return absl::UnavailableError(absl::StrCat("udp transport: non_blocking: ", ec.message()));
    local_port_ = socket_.local_endpoint(ec).port();
    spdlog::info("udp transport: node {} incarnation {} listening on {} port {} with {} peers",
                 options_.self, options_.incarnation, options_.bind_host, local_port_,
                 peers_.size());
    StartReceive();
    return absl::OkStatus();
  }

  absl::Status Send(NodeId to, std::string_view payload) override {
    auto it = peers_.find(to);
    if (it == peers_.end()) {
      return absl::NotFoundError(absl::StrCat("udp transport: unknown peer ", to));
    }
    if (payload.size() > options_.max_payload_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("udp transport: payload of ", payload.size(),
                                                     " bytes exceeds max_payload_bytes ",
                                                     options_.max_payload_bytes));
    }
    if (!socket_.is_open()) return absl::FailedPreconditionError("udp transport: closed");
    DatagramHeader h;
    h.sender = options_.self;
    h.recipient = to;
    h.incarnation = options_.incarnation;
    h.sequence = next_sequence_++;
    h.send_time_ns = clock_.WallNow().count();
    std::string datagram = Seal(h, payload, hmac_);
    boost::system::error_code ec;
    socket_.send_to(asio::buffer(datagram), it->second.endpoint, 0, ec);
    if (ec) {
      ++stats_.send_failed;
      return absl::UnavailableError(
          absl::StrCat("udp transport: send to peer ", to, ": ", ec.message()));
    }
    ++stats_.sent;
    return absl::OkStatus();
  }

  UdpTransportStats GetStats() const override { return stats_; }
  uint16_t local_port() const override { return local_port_; }

  void Close() override {
    *alive_ = false;
    boost::system::error_code ec;
    socket_.close(ec);
  }

 private:
  void StartReceive() {
    socket_.async_receive_from(
        asio::buffer(rx_buffer_), rx_from_,
        [this, alive = alive_](const boost::system::error_code& ec, size_t n) {
          if (!*alive) return;
          if (ec == asio::error::operation_aborted) return;
          if (!ec) {
            Handle(std::string_view(rx_buffer_.data(), n), rx_from_);
          } else {
            // ICMP port unreachable from an earlier send shows up here on
            // Linux (ECONNREFUSED); it says nothing about received data.
            spdlog::debug("udp transport: receive: {}", ec.message());
          }
          if (*alive && socket_.is_open()) StartReceive();
        });
  }

  void Handle(std::string_view d, const udp::endpoint& from_raw) {
    udp::endpoint from = ForSocket(from_raw, socket_is_v6_);
    if (auto r = CheckShape(d, options_.max_payload_bytes)) {
      // A peer of another build: say which version it speaks (the header
      // past the version byte may be laid out differently; not read).
      std::string detail;
      if (*r == DropReason::kBadVersion) {
        detail = absl::StrCat("version ", static_cast<unsigned>(static_cast<uint8_t>(d[4])),
                              " flags ", static_cast<unsigned>(static_cast<uint8_t>(d[5])),
                              ", expected version ", static_cast<unsigned>(kDatagramVersion),
                              " flags 0");
      }
      return Drop(*r, from, 0, detail);
    }
    DatagramHeader h = ParseHeader(d);
    auto it = peers_.find(h.sender);
    if (it == peers_.end()) return Drop(DropReason::kUnknownSender, from, h.sender);
    if (h.recipient != options_.self) return Drop(DropReason::kWrongRecipient, from, h.sender);
    Peer& peer = it->second;
    if (options_.check_source_address && from != peer.endpoint) {
      return Drop(DropReason::kSourceMismatch, from, h.sender);
    }
    if (!MacValid(d, hmac_)) return Drop(DropReason::kBadMac, from, h.sender);
    if (peer.has_last && (h.incarnation < peer.last_incarnation ||
                          (h.incarnation == peer.last_incarnation &&
                           h.sequence <= peer.last_sequence))) {
      return Drop(DropReason::kReplay, from, h.sender);
    }
    if (options_.freshness_window.count() > 0) {
      int64_t skew = clock_.WallNow().count() - h.send_time_ns;
      if (skew > options_.freshness_window.count() || -skew > options_.freshness_window.count()) {
        return Drop(DropReason::kStale, from, h.sender);
      }
    }
    if (peer.has_last && h.incarnation > peer.last_incarnation) {
      spdlog::info("udp transport: peer {} restarted (incarnation {} -> {})", h.sender,
                   peer.last_incarnation, h.incarnation);
    }
    peer.has_last = true;
    peer.last_incarnation = h.incarnation;
    peer.last_sequence = h.sequence;
    ++stats_.delivered;
    if (on_receive_) {
      on_receive_(h.sender, d.substr(kDatagramHeaderBytes, d.size() - kDatagramHeaderBytes -
                                                               kDatagramMacBytes));
    }
  }

  void Drop(DropReason reason, const udp::endpoint& from, NodeId claimed,
            const std::string& detail = "") {
    size_t i = static_cast<size_t>(reason);
    ++stats_.dropped[i];
    ++unlogged_[i];
    std::chrono::nanoseconds now = clock_.MonotonicNow();
    if (last_logged_[i].has_value() && now - *last_logged_[i] < options_.drop_log_interval) return;
    last_logged_[i] = now;
    spdlog::warn(
        "udp transport: dropped datagram ({}{}{}) from {} port {} claiming sender {}; {} such "
        "drop(s) since the last report",
        DropReasonName(reason), detail.empty() ? "" : ": ", detail, from.address().to_string(),
        from.port(), claimed, unlogged_[i]);
    unlogged_[i] = 0;
  }

  const Clock& clock_;
  const UdpTransportOptions options_;
  const ReceiveCallback on_receive_;
  const Hmac hmac_;
  udp::socket socket_;
  bool socket_is_v6_ = false;
  uint16_t local_port_ = 0;
  std::unordered_map<NodeId, Peer> peers_;
  uint64_t next_sequence_ = 1;
  std::vector<char> rx_buffer_;
  udp::endpoint rx_from_;
  UdpTransportStats stats_;
  std::array<uint64_t, static_cast<size_t>(DropReason::kCount)> unlogged_{};
  std::array<std::optional<std::chrono::nanoseconds>, static_cast<size_t>(DropReason::kCount)>
      last_logged_{};
  // Shared with pending receive handlers, which may run after destruction.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace

std::string_view DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kTruncated:
      return "truncated";
    case DropReason::kOversized:
      return "oversized";
    case DropReason::kBadMagic:
      return "bad magic";
    case DropReason::kBadVersion:
      return "bad version";
    case DropReason::kUnknownSender:
      return "unknown sender";
    case DropReason::kWrongRecipient:
      return "wrong recipient";
    case DropReason::kSourceMismatch:
      return "source address mismatch";
    case DropReason::kBadMac:
      return "bad MAC";
    case DropReason::kReplay:
      return "replay";
    case DropReason::kStale:
      return "stale";
    case DropReason::kCount:
      break;
  }
  return "unknown";
}

uint64_t UdpTransportStats::dropped_total() const {
  uint64_t total = 0;
  for (uint64_t d : dropped) total += d;
  return total;
}

absl::StatusOr<std::unique_ptr<UdpTransport>> UdpTransport::Create(
    boost::asio::io_context& io, const Clock& clock, UdpTransportOptions options,
    ReceiveCallback on_receive) {
  if (options.key.size() < kMinKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat("udp transport: cluster key has ",
                                                   options.key.size(),
                                                   " bytes; at least 32 are needed"));
  }
  if (options.incarnation == 0) {
    return absl::InvalidArgumentError("udp transport: incarnation must be > 0 (NextIncarnation)");
  }
  if (options.max_payload_bytes == 0 || options.max_payload_bytes > kMaxPayloadLimit) {
    return absl::InvalidArgumentError(absl::StrCat("udp transport: max_payload_bytes must be in [1, ",
                                                   kMaxPayloadLimit, "]"));
  }
  absl::StatusOr<Hmac> hmac = Hmac::Create(options.key);
  if (!hmac.ok()) return hmac.status();
  auto t = std::make_unique<UdpTransportImpl>(io, clock, std::move(options), std::move(on_receive),
                                              std::move(*hmac));
  if (absl::Status s = t->Init(); !s.ok()) return s;
  return std::unique_ptr<UdpTransport>(std::move(t));
}

std::string SealDatagram(const DatagramHeader& header, std::string_view payload,
                         std::string_view key) {
  absl::StatusOr<Hmac> hmac = Hmac::Create(key);
  if (!hmac.ok()) return {};
  return Seal(header, payload, *hmac);
}

OpenResult OpenDatagram(std::string_view datagram, std::string_view key,
                        size_t max_payload_bytes) {
  OpenResult r;
  if (auto reason = CheckShape(datagram, max_payload_bytes)) {
    r.reason = *reason;
    return r;
  }
  absl::StatusOr<Hmac> hmac = Hmac::Create(key);
  if (!hmac.ok() || !MacValid(datagram, *hmac)) {
    r.reason = DropReason::kBadMac;
    return r;
  }
  r.ok = true;
  r.datagram.header = ParseHeader(datagram);
  r.datagram.payload = datagram.substr(
      kDatagramHeaderBytes, datagram.size() - kDatagramHeaderBytes - kDatagramMacBytes);
  return r;
}

absl::StatusOr<std::string> LoadClusterKey(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return baton::ErrnoToStatus(errno, absl::StrCat("cluster key file ", path));
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return baton::ErrnoToStatus(errno, absl::StrCat("cluster key file ", path));
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("cluster key file ", path,
                                                   " is not a regular file"));
  }
  if ((st.st_mode & 077) != 0) {
    return absl::PermissionDeniedError(
        absl::StrFormat("cluster key file %s has mode %04o; it must be readable by its owner "
                        "only (chmod 600 %s)",
                        path, st.st_mode & 07777, path));
  }
  if (st.st_size > static_cast<off_t>(kMaxKeyBytes + 2)) {
    return absl::InvalidArgumentError(absl::StrCat("cluster key file ", path, " has ", st.st_size,
                                                   " bytes; at most 4096 are allowed"));
  }
  std::string key(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < key.size()) {
    ssize_t n = ::read(fd, key.data() + got, key.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return baton::ErrnoToStatus(errno, absl::StrCat("reading cluster key file ", path));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  key.resize(got);
  if (!key.empty() && key.back() == '\n') {
    key.pop_back();
    if (!key.empty() && key.back() == '\r') key.pop_back();
  }
  if (key.size() < kMinKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cluster key file ", path, " holds ", key.size(),
        " bytes; at least 32 are needed (e.g. head -c 32 /dev/urandom > ", path, ")"));
  }
  if (key.size() > kMaxKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster key file ", path, " is larger than 4096 bytes"));
  }
  return key;
}

absl::StatusOr<uint64_t> NextIncarnation(const std::string& state_path,
                                         std::chrono::nanoseconds wall_now) {
  uint64_t wall = wall_now.count() > 0 ? static_cast<uint64_t>(wall_now.count()) : 1;
  if (state_path.empty()) return wall;
  uint64_t last = 0;
  int fd = ::open(state_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char buf[64];
    ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
    int err = errno;
    ::close(fd);
    if (n < 0) return baton::ErrnoToStatus(err, absl::StrCat("reading incarnation file ", state_path));
    std::string text(absl::StripAsciiWhitespace(std::string(buf, static_cast<size_t>(n))));
    if (!absl::SimpleAtoi(text, &last)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "incarnation file ", state_path, " does not hold a number ('", text,
          "'); remove it only if this node's wall clock is known to be correct"));
    }
  } else if (errno != ENOENT) {
    return baton::ErrnoToStatus(errno, absl::StrCat("opening incarnation file ", state_path));
  }
  uint64_t next = std::max(wall, last + 1);
  std::string tmp = state_path + ".tmp";
  fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return baton::ErrnoToStatus(errno, absl::StrCat("creating ", tmp));
  std::string text = absl::StrCat(next, "\n");
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (!ok) return baton::ErrnoToStatus(err, absl::StrCat("writing ", tmp));
  if (::rename(tmp.c_str(), state_path.c_str()) != 0) {
    return baton::ErrnoToStatus(errno, absl::StrCat("renaming ", tmp, " to ", state_path));
  }
  std::string dir = ".";
  if (size_t slash = state_path.rfind('/'); slash != std::string::npos) {
    dir = slash == 0 ? "/" : state_path.substr(0, slash);
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    int rc = ::fsync(dfd);
    err = errno;
    ::close(dfd);
    if (rc != 0) return baton::ErrnoToStatus(err, absl::StrCat("fsync of directory ", dir));
  }
  return next;
}

}  // namespace baton::takeover

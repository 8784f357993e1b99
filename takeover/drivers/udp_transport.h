// Authenticated, replay-protected UDP unicast between the peers of a
// take-over group. The transport carries opaque payload bytes (the core's
// encoded messages) and delivers `(authenticated sender id, payload)`; forged,
// replayed or malformed datagrams are counted, logged (rate-limited) and never
// delivered.
//
// Datagram format, version 1 (all integers big-endian):
//
//   offset size  field
//        0    4  magic "BTKO" (0x42 0x54 0x4B 0x4F)
//        4    1  version = 1
//        5    1  flags = 0 (reserved; non-zero is rejected as a bad version)
//        6    2  payload length N
//        8    4  sender id
//       12    4  recipient id (stops a datagram for B from being replayed to C)
//       16    8  sender incarnation
//       24    8  sequence number (per sender incarnation, over all recipients,
//                starts at 1, +1 per datagram)
//       32    8  send time: sender's wall clock, ns since the Unix epoch
//       40    N  payload
//     40+N   32  HMAC-SHA256(cluster key, bytes [0, 40+N))
//
// Replay protection. A receiver accepts from sender S only a datagram whose
// (incarnation, sequence) is lexicographically greater than the last one it
// accepted from S; everything else (duplicates, replays, datagrams reordered
// behind a newer one) is dropped. The core tolerates loss, so dropping a
// reordered datagram is safe.
//
// Incarnations. A sender's incarnation must be greater than every incarnation
// it used before, also across restarts and wall-clock steps backwards:
// `NextIncarnation()` returns max(wall clock ns, last persisted + 1) and
// persists it (fsync'd) before the transport sends anything. Assumption: the
// state file survives restarts; if it is lost *and* the wall clock is behind
// the last incarnation, a restarted sender is ignored by peers that remember
// its old incarnation until its clock catches up (liveness, not safety). A
// datagram captured before a sender restart carries the old incarnation and is
// rejected by every receiver that has accepted one datagram of the new one.
//
// Receiver restarts. A restarted receiver has forgotten the per-sender state,
// so sequence numbers alone would let it accept any authentic datagram ever
// captured from a sender's current incarnation. `freshness_window` (on by
// default, 5 s) also rejects datagrams whose send time differs from the
// receiver's wall clock by more than the window: a capture older than that is
// refused by every receiver, restarted or not. What it trades: the peers'
// wall clocks must agree within the window (NTP keeps them within
// milliseconds); a host whose clock is off by more is not heard at all (its
// datagrams are counted as `stale` and logged) until its clock is corrected.
// What is left: after a restart, a capture younger than the window can be
// delivered once, before the sender's first fresh datagram sets the
// high-water mark; the core tolerates that (an old view, claim or request
// from the last few seconds; a restarted node is quiet and grants nothing).
// Persisting per-sender high-water marks would close that too, at the price
// of a write per datagram; not done.
//
// Key: the cluster key is raw bytes from a key file (`LoadClusterKey`), at
// least 32 bytes, readable by its owner only.
//
// Threading: a UdpTransport belongs to one boost::asio::io_context and must be
// used only from the thread running it (Send, GetStats, Close); the receive
// callback runs on that thread.
#ifndef BATON_TAKEOVER_DRIVERS_UDP_TRANSPORT_H_
#define BATON_TAKEOVER_DRIVERS_UDP_TRANSPORT_H_

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "takeover/drivers/clock.h"

namespace baton::takeover {

// Same type as the core's NodeId (takeover/core/node.h).
using NodeId = uint32_t;

inline constexpr size_t kDatagramHeaderBytes = 40;
inline constexpr size_t kDatagramMacBytes = 32;
inline constexpr uint8_t kDatagramVersion = 1;

// Why a received datagram was dropped. Each reason is counted and logged at
// most once per `UdpTransportOptions::drop_log_interval`.
enum class DropReason : int {
  kTruncated = 0,      // shorter than header + MAC, or size != what the length field says
  kOversized,          // longer than header + max_payload_bytes + MAC
  kBadMagic,           // not a baton datagram
  kBadVersion,         // unknown version or non-zero flags
  kUnknownSender,      // sender id not in the peer list (or our own id)
  kWrongRecipient,     // recipient id is not us
  kSourceMismatch,     // source ip:port is not the configured one of the sender
  kBadMac,             // HMAC does not verify (wrong key, tampered bytes)
  kReplay,             // (incarnation, seq) not newer than the last accepted
  kStale,              // send time outside freshness_window
  kCount,              // number of reasons (not a reason)
};
std::string_view DropReasonName(DropReason reason);

struct PeerAddress {
  NodeId id = 0;
  // Numeric IPv4 or IPv6 address (no DNS lookups: start-up must not hang on a
  // resolver). An IPv6 link-local address may carry a scope: "fe80::1%eth0".
  std::string host;
  uint16_t port = 0;
};

struct UdpTransportOptions {
  NodeId self = 0;
  // Local address and port to bind. "0.0.0.0" / "::" for any; port 0 picks a
  // free port (tests). A "::" socket is dual-stack, so it also reaches IPv4
  // peers. Default: "::", no default port (must be set).
  std::string bind_host = "::";
  uint16_t bind_port = 0;
  // Every other member of the group (an entry for `self` is ignored).
  std::vector<PeerAddress> peers;
  // Cluster key, raw bytes, at least 32 (see LoadClusterKey).
  std::string key;
  // This process's incarnation (see NextIncarnation). Must be > 0.
  uint64_t incarnation = 0;
  // Largest payload accepted and sent. Default: 8192 bytes; at most 65467.
  size_t max_payload_bytes = 8192;
  // Drop datagrams whose source ip:port differs from the sender's configured
  // address. Default: true (peers send from their bound port). Turn off behind
  // NAT.
  bool check_source_address = true;
  // If > 0, drop datagrams whose send time differs from our wall clock by
  // more than this (see "Receiver restarts" above). 0 turns the check off
  // (no clock synchronisation assumed; a restarted receiver then accepts an
  // old capture once). Default: 5 s.
  std::chrono::nanoseconds freshness_window = std::chrono::seconds(5);
  // At most one log line per drop reason per interval (with the count of
  // drops since the last line). Default: 10 s.
  std::chrono::nanoseconds drop_log_interval = std::chrono::seconds(10);
};

struct UdpTransportStats {
  uint64_t sent = 0;          // datagrams handed to the kernel
  uint64_t send_failed = 0;   // send errors (EAGAIN, unreachable, ...)
  uint64_t delivered = 0;     // datagrams passed to the receive callback
  std::array<uint64_t, static_cast<size_t>(DropReason::kCount)> dropped{};
  uint64_t dropped_total() const;
  uint64_t dropped_for(DropReason r) const {
    return dropped[static_cast<size_t>(r)];
  }
};

class UdpTransport {
 public:
  // Called on the io_context's thread for every authentic, fresh datagram.
  // `payload` is valid only during the call.
  using ReceiveCallback = std::function<void(NodeId from, std::string_view payload)>;

  // Opens and binds the socket and starts receiving. Errors:
  // kInvalidArgument (bad option, unparsable address, duplicate peer id, short
  // key, incarnation 0), kUnavailable (bind failed, e.g. address in use),
  // kInternal (OpenSSL failure). `clock` must outlive the transport.
  static absl::StatusOr<std::unique_ptr<UdpTransport>> Create(
      boost::asio::io_context& io, const Clock& clock, UdpTransportOptions options,
      ReceiveCallback on_receive);

  virtual ~UdpTransport() = default;

  // Sends `payload` to peer `to` without blocking (UDP: may be lost).
  // kNotFound: unknown peer; kInvalidArgument: payload too large;
  // kUnavailable: the kernel refused it now (buffer full, no route).
  [[nodiscard]] virtual absl::Status Send(NodeId to, std::string_view payload) = 0;

  virtual UdpTransportStats GetStats() const = 0;
  // The bound port (useful with bind_port = 0).
  virtual uint16_t local_port() const = 0;
  // Stops receiving and closes the socket; the callback is not called again.
  virtual void Close() = 0;
};

// Reads the cluster key: the file's bytes, minus one trailing "\n" or "\r\n"
// (so a key written by an editor or `echo` works). Generate keys as text,
// e.g. `openssl rand -hex 32` (64 bytes): 32 raw random bytes end in 0x0a once
// in 256 times and would then be read as 31 bytes and refused.
// kNotFound: missing; kPermissionDenied: not owner-only (mode & 077 != 0) or
// unreadable; kInvalidArgument: not a regular file, shorter than 32 bytes or
// larger than 4096 bytes.
absl::StatusOr<std::string> LoadClusterKey(const std::string& path);

// Picks this process's incarnation: max(wall_now in ns, last + 1) where `last`
// is read from `state_path` (a missing file means none), and durably writes it
// back (temp file, fsync, rename, fsync directory) before returning.
// An empty `state_path` returns wall_now without persisting (tests only).
// kInvalidArgument: the file exists but does not hold a number;
// kUnavailable / kPermissionDenied: I/O errors.
absl::StatusOr<uint64_t> NextIncarnation(const std::string& state_path,
                                         std::chrono::nanoseconds wall_now);

// The datagram codec, exposed for tests and tools. SealDatagram builds a
// complete datagram; OpenDatagram checks length, magic, version and MAC (not
// sender, recipient or replay) and returns the header fields plus a view of
// the payload inside `datagram`.
struct DatagramHeader {
  NodeId sender = 0;
  NodeId recipient = 0;
  uint64_t incarnation = 0;
  uint64_t sequence = 0;
  int64_t send_time_ns = 0;
};
std::string SealDatagram(const DatagramHeader& header, std::string_view payload,
                         std::string_view key);
struct OpenedDatagram {
  DatagramHeader header;
  std::string_view payload;
};
// On failure returns the drop reason (kTruncated, kOversized, kBadMagic,
// kBadVersion or kBadMac).
struct OpenResult {
  bool ok = false;
  DropReason reason = DropReason::kCount;
  OpenedDatagram datagram;
};
OpenResult OpenDatagram(std::string_view datagram, std::string_view key,
                        size_t max_payload_bytes);

}  // namespace baton::takeover

#endif  // BATON_TAKEOVER_DRIVERS_UDP_TRANSPORT_H_

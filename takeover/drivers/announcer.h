// Tells the local link that a service address has moved here: gratuitous ARP
// (both the request and the reply form, for receivers that honour only one)
// for IPv4, and an unsolicited neighbour advertisement (ICMPv6 type 136,
// override flag set, target = the address, to ff02::1, hop limit 255, with the
// target link-layer address option) for IPv6. Frames are built by hand and sent
// on an AF_PACKET socket with the interface's own MAC as source.
//
// One announcement is repeated on a short schedule (a lost frame or a switch
// that was still learning does not leave clients with the old MAC):
// by default at +0, +10 ms, +50 ms, +200 ms and +1 s after Start().
//
// Time is the caller's: the Announcer does no clock reads and owns no timer.
//  * Start(address, ifname, now) sends the first round at once if the
//    schedule begins at 0 and remembers the rest;
//  * Poll(now) sends every round that is due;
//  * NextDeadline() says when Poll must be called next (nullopt: nothing
//    pending). The daemon arms one asio steady_timer for it (see
//    AsioAnnouncerDriver below, which does exactly that).
//  * Cancel(address) stops the remaining rounds (call it when the address is
//    removed).
//
// Errors: kNotFound (no such interface), kPermissionDenied (AF_PACKET needs
// CAP_NET_RAW), kInvalidArgument (unspecified / multicast address, interface
// without a 6-byte MAC), kUnavailable (send failed). A failed round during
// Poll is logged and counted, not retried early.
//
// Threading: not thread-safe; use from one thread.
#ifndef BATON_TAKEOVER_DRIVERS_ANNOUNCER_H_
#define BATON_TAKEOVER_DRIVERS_ANNOUNCER_H_

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/steady_timer.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "takeover/drivers/clock.h"

namespace baton::takeover {

using MacAddress = std::array<uint8_t, 6>;

struct AnnouncerOptions {
  // Offsets from Start() at which a round is sent. Each round is, for IPv4,
  // one ARP request and one ARP reply; for IPv6, one NA.
  // Default: {0, 10 ms, 50 ms, 200 ms, 1 s}.
  std::vector<std::chrono::nanoseconds> schedule = {
      std::chrono::milliseconds(0), std::chrono::milliseconds(10),
      std::chrono::milliseconds(50), std::chrono::milliseconds(200),
      std::chrono::seconds(1)};
};

struct AnnouncerStats {
  uint64_t rounds_sent = 0;   // rounds in which every frame was sent
  uint64_t frames_sent = 0;
  uint64_t send_errors = 0;
};

class Announcer {
 public:
  static absl::StatusOr<std::unique_ptr<Announcer>> Create(AnnouncerOptions options = {});
  virtual ~Announcer() = default;

  // Starts announcing `address` on `ifname` (replacing any announcement of the
  // same address). Looks up the interface's index and MAC now; sends the first
  // round now if the schedule starts at 0 (its failure is returned).
  [[nodiscard]] virtual absl::Status Start(const boost::asio::ip::address& address,
                                           std::string_view ifname,
                                           std::chrono::nanoseconds now) = 0;
  // Stops any remaining rounds for `address`. No-op if none.
  virtual void Cancel(const boost::asio::ip::address& address) = 0;
  // Sends all rounds due at `now`.
  virtual void Poll(std::chrono::nanoseconds now) = 0;
  // Earliest time at which a round is due, if any.
  virtual std::optional<std::chrono::nanoseconds> NextDeadline() const = 0;
  // Sends one round (for IPv4 request + reply, for IPv6 one NA) now,
  // independent of any schedule.
  [[nodiscard]] virtual absl::Status SendOnce(const boost::asio::ip::address& address,
                                              std::string_view ifname) = 0;
  virtual AnnouncerStats GetStats() const = 0;
};

// Frame builders, exposed for tests. Each returns a complete Ethernet frame.
// Gratuitous ARP: Ethernet broadcast, sender = target = `ip`, sender MAC =
// `mac`; request form: op 1, target MAC 00:00:00:00:00:00; reply form: op 2,
// target MAC = `mac`.
std::string BuildGratuitousArp(const MacAddress& mac, const boost::asio::ip::address_v4& ip,
                               bool reply);
// Unsolicited NA: to 33:33:00:00:00:01 / ff02::1 from `ip`, hop limit 255,
// flags O=1 (S=0, R=0), target `ip`, option 2 (target link-layer address) =
// `mac`, ICMPv6 checksum filled in.
std::string BuildUnsolicitedNa(const MacAddress& mac, const boost::asio::ip::address_v6& ip);

// Drives an Announcer from an asio io_context: after Start/Cancel it re-arms
// one steady_timer for NextDeadline() and calls Poll when it fires. `clock`
// must be on the steady_clock time line (SteadyClock). All on the io_context's
// thread.
class AsioAnnouncerDriver {
 public:
  AsioAnnouncerDriver(boost::asio::io_context& io, const Clock& clock, Announcer& announcer);
  ~AsioAnnouncerDriver();
  AsioAnnouncerDriver(const AsioAnnouncerDriver&) = delete;
  AsioAnnouncerDriver& operator=(const AsioAnnouncerDriver&) = delete;

  [[nodiscard]] absl::Status Start(const boost::asio::ip::address& address,
                                   std::string_view ifname);
  void Cancel(const boost::asio::ip::address& address);

 private:
  void Rearm();
  const Clock& clock_;
  Announcer& announcer_;
  boost::asio::steady_timer timer_;
  std::shared_ptr<bool> alive_;
};

}  // namespace baton::takeover

#endif  // BATON_TAKEOVER_DRIVERS_ANNOUNCER_H_

// Adds and removes service IP addresses on Linux interfaces through
// rtnetlink (libnl-route-3), with kernel lifetimes as a backstop.
//
// Every address the driver adds is added with a finite `valid_lft`: the
// kernel removes it by itself when the lifetime runs out, so a daemon that is
// frozen or killed without cleaning up loses the address after at most
// `valid_lft`. The holder calls Refresh() while it holds the slot to push the
// lifetime forward.
//
// Recognising our addresses (to remove stale ones at start-up):
//  * every address is tagged with IFA_PROTO = `Options::proto` (Linux >= 6.1;
//    older kernels ignore the attribute);
//  * IPv4 addresses also carry the label "<ifname>:<label_suffix>" (the
//    kernel requires IFA_LABEL to start with the interface name; at most 15
//    characters). IPv6 has no labels, so there only IFA_PROTO identifies ours:
//    on a kernel older than 6.1, stale IPv6 addresses are not found and are
//    left to expire through their valid_lft.
// IPv6 addresses are added with IFA_F_NODAD by default: duplicate address
// detection would keep the address tentative (unusable) for about a second
// after a take-over, and the lease protocol already ensures one holder.
//
// IPv4 primary/secondary: Linux deletes an interface's secondary addresses
// of a subnet together with its primary one (unless
// net.ipv4.conf.<if>.promote_secondaries=1). A service address added in the
// subnet of the host's own address is a secondary and harmless to remove; add
// the host's address first, or give the service address a /32 prefix (its own
// subnet, never anyone's primary).
//
// Errors (netlink errors are converted in one place):
//   kAlreadyExists     EEXIST: the address is already on the interface
//   kNotFound          EADDRNOTAVAIL (address absent) / ENODEV (no interface)
//   kPermissionDenied  EPERM / EACCES (needs CAP_NET_ADMIN)
//   kInvalidArgument   malformed prefix, label too long, EINVAL
//   other errno values: base/errno_status.h's code (EAGAIN / EINTR / EIO
//   kUnavailable, ENOBUFS / ENOMEM kResourceExhausted, EBUSY kFailedPrecondition)
//
// Threading: not thread-safe; use from one thread (the daemon's io_context
// thread). Calls are synchronous and take microseconds. One netlink socket per
// driver.
#ifndef BATON_TAKEOVER_DRIVERS_ADDRESS_DRIVER_H_
#define BATON_TAKEOVER_DRIVERS_ADDRESS_DRIVER_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace baton::takeover {

// An interface address with its prefix length, e.g. 10.0.0.5/24 or
// 2001:db8::5/64.
struct IpPrefix {
  boost::asio::ip::address address;
  uint8_t length = 0;

  // Parses "addr/len" or a bare "addr" (full-length prefix: /32 or /128).
  // kInvalidArgument on anything else.
  static absl::StatusOr<IpPrefix> Parse(std::string_view text);
  std::string ToString() const;
  bool is_v4() const { return address.is_v4(); }
  friend bool operator==(const IpPrefix&, const IpPrefix&) = default;
};

// One address the driver considers its own, as found by List().
struct ManagedAddress {
  IpPrefix prefix;
  std::string ifname;
  std::string label;           // IPv4 only; empty for IPv6
  // Remaining lifetimes as reported by the kernel; seconds::max() means
  // "forever".
  std::chrono::seconds valid_lft{0};
  std::chrono::seconds preferred_lft{0};
};

struct AddressDriverOptions {
  // IPv4 label suffix: addresses get label "<ifname>:<label_suffix>".
  // Default: "bt".
  std::string label_suffix = "bt";
  // IFA_PROTO value that tags our addresses. Default: 0x62 ('b'). Values 0-3
  // are the kernel's own and are rejected.
  uint8_t proto = 0x62;
  // Add IPv6 addresses with IFA_F_NODAD. Default: true.
  bool ipv6_nodad = true;
};

class AddressDriver {
 public:
  // Opens the netlink socket. kPermissionDenied / kUnavailable on failure,
  // kInvalidArgument for bad options.
  static absl::StatusOr<std::unique_ptr<AddressDriver>> Create(
      AddressDriverOptions options = {});
  virtual ~AddressDriver() = default;

  // Adds `prefix` to interface `ifname` with the given lifetimes (seconds,
  // >= 1; preferred_lft <= valid_lft). `label` is the IPv4 label; empty means
  // "<ifname>:<label_suffix>"; it must start with `ifname` and be at most 15
  // characters; ignored for IPv6. kAlreadyExists if the address is already
  // there (whoever added it; use Refresh to take over its lifetime).
  [[nodiscard]] virtual absl::Status Add(const IpPrefix& prefix, std::string_view ifname,
                                         std::string_view label,
                                         std::chrono::seconds valid_lft,
                                         std::chrono::seconds preferred_lft) = 0;
  // Same, with the default label.
  [[nodiscard]] absl::Status Add(const IpPrefix& prefix, std::string_view ifname,
                                 std::chrono::seconds valid_lft,
                                 std::chrono::seconds preferred_lft) {
    return Add(prefix, ifname, "", valid_lft, preferred_lft);
  }

  // Removes `prefix` from `ifname`. kNotFound if it is not there.
  [[nodiscard]] virtual absl::Status Remove(const IpPrefix& prefix,
                                            std::string_view ifname) = 0;

  // Sets the lifetimes of an address that is present (extends the lease
  // backstop). kNotFound if the address is gone (e.g. it expired: the caller
  // must not assume it still holds the address). Never creates the address.
  [[nodiscard]] virtual absl::Status Refresh(const IpPrefix& prefix, std::string_view ifname,
                                             std::chrono::seconds valid_lft,
                                             std::chrono::seconds preferred_lft) = 0;

  // Whether `prefix` (address and length) is on `ifname` (ours or not).
  virtual absl::StatusOr<bool> Has(const IpPrefix& prefix, std::string_view ifname) = 0;

  // Addresses that carry our tag (IFA_PROTO or, for IPv4, our label), on all
  // interfaces, or only on `ifname` if it is not empty.
  virtual absl::StatusOr<std::vector<ManagedAddress>> List(std::string_view ifname = "") = 0;

  // Removes every address List(ifname) returns (left over by an earlier run).
  // Returns what was removed. Call once at start-up, before taking any slot.
  virtual absl::StatusOr<std::vector<ManagedAddress>> RemoveStale(
      std::string_view ifname = "") = 0;
};

// Converts an errno value as returned by the kernel in a netlink error
// message (positive: EEXIST, EADDRNOTAVAIL, ENODEV, EPERM, ...) to a Status
// with `what` as context: base/errno_status.h's conversion plus netlink's
// meanings (EADDRNOTAVAIL is "no such address") and hints (see the table above).
absl::Status NetlinkErrnoToStatus(int errnum, std::string_view what);

}  // namespace baton::takeover

#endif  // BATON_TAKEOVER_DRIVERS_ADDRESS_DRIVER_H_

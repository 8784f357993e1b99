// A kernel-enforced lease for service addresses: nftables set elements with millisecond timeouts.
//
// Why: the take-over core guarantees that a holder stops *believing* in its lease before any
// grantor's grant ends, but the Linux address is only removed by the daemon -- or, when the daemon
// is frozen (SIGSTOP, VM pause, stuck process), by the kernel's valid_lft, which counts whole
// seconds. A holder frozen longer than its ~25 ms lease would keep answering for up to seconds
// after another host took the address over (DESIGN.md promise 3, "also under process pauses").
//
// What: in the calling thread's network namespace the fence installs
//   table inet <name>  sets service4/service6 (the configured addresses) and leased4/leased6
//                      (flags timeout); chains at prerouting and output, priority raw (-300),
//                      that drop packets to / from a service address that is not in leased*
//                      -- TCP to it is refused with a reset instead, so that a client that
//                      reaches this host while the address is elsewhere retries at once (the
//                      resets are the one thing let out); closing4/closing6: addresses being
//                      released, whose new TCP connections are refused the same way;
//                      and, for IPv6 neighbour discovery, service6nd/leased6nd keyed on the ND
//                      target field: neighbour solicitations for a service address that is not
//                      leased are dropped on input, neighbour advertisements for it on output
//                      (whatever their source or destination address);
//   table arp  <name>  sets service/leased (IPv4); drops ARP requests asking for a service
//                      address (except gratuitous ones from its new holder) on input and any ARP
//                      with a service address as sender on output, unless the address is leased.
// Lease() puts an address into leased* with a timeout that ends at (or just before) the lease end;
// the kernel removes the element by itself when the timeout runs out, so a frozen process stops
// answering for the address within a jiffy (1-4 ms) of its lease end, whatever it does.
// Every change is one atomic nftables transaction (libnftables), so the sets never disagree.
// Not covered: packets sent on AF_PACKET sockets (the announcer) bypass netfilter -- a frozen
// daemon sends none.
//
// Thread-safety: not thread-safe (one libnftables context); callers serialise.
#ifndef BATON_TAKEOVER_DRIVERS_NFT_FENCE_H_
#define BATON_TAKEOVER_DRIVERS_NFT_FENCE_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "takeover/drivers/clock.h"

struct nft_ctx;

namespace baton::takeover {

struct NftFenceOptions {
  // Name of both tables: [A-Za-z0-9_], 1..32 chars, named after the daemon instance so that a
  // table an earlier run left behind is found and replaced by Create. Required.
  std::string table;
  // The service addresses to fence, numeric IPv4 or IPv6 (no prefix length). Required, >= 1.
  std::vector<std::string> addresses;
  // Subtracted from the remaining lease when the element's timeout is computed: covers the time
  // between the clock read in Lease() and the kernel committing the transaction. Default: 2 ms.
  std::chrono::nanoseconds margin = std::chrono::milliseconds(2);
};

// What the daemon needs of a kernel fence (NftFence below; a fake in tests of the daemon's glue).
// Methods and errors as NftFence's.
class KernelFence {
 public:
  virtual ~KernelFence() = default;
  [[nodiscard]] virtual absl::Status Lease(const std::string& address,
                                           std::chrono::nanoseconds lease_end) = 0;
  [[nodiscard]] virtual absl::Status Revoke(const std::string& address) = 0;
  [[nodiscard]] virtual absl::Status RefuseConnections(const std::string& address,
                                                       bool refuse = true) = 0;
  [[nodiscard]] virtual absl::Status RemoveTables() = 0;
  virtual const std::string& table() const = 0;
};

class NftFence final : public KernelFence {
 public:
  // Installs both tables in the current network namespace, replacing tables of the same name
  // (stale ones from an earlier run) in the same transaction; no address is leased afterwards.
  // Errors: kInvalidArgument (bad name or address), kPermissionDenied (no CAP_NET_ADMIN),
  // kUnavailable (no nf_tables in the kernel, libnftables failure; the message carries nft's
  // error text).
  static absl::StatusOr<std::unique_ptr<NftFence>> Create(const Clock& clock,
                                                          NftFenceOptions options);
  // Leaves the tables in place (a crash would too); call RemoveTables() to delete them.
  ~NftFence() override;
  NftFence(const NftFence&) = delete;
  NftFence& operator=(const NftFence&) = delete;

  // Lets `address` answer until `lease_end` (on `clock`'s MonotonicNow() time line) minus the margin,
  // replacing any earlier timeout (longer or shorter). If nothing is left of the lease, the
  // address is revoked instead. One transaction (about 0.3 ms); a second one if the first took
  // longer than the margin, so that the element never outlives the lease by the call's latency. kInvalidArgument for an address not in the options,
  // kUnavailable if nftables refuses.
  [[nodiscard]] absl::Status Lease(const std::string& address,
                                   std::chrono::nanoseconds lease_end) override;
  // Fences `address` now (no-op if it is not leased); also ends RefuseConnections. Errors as
  // Lease.
  [[nodiscard]] absl::Status Revoke(const std::string& address) override;
  // New TCP connections to `address` are refused with a reset from now on, while its lease (if
  // any) still lets everything else through: the address is being released, and a client that
  // connects now must go on to the next holder at once (its SYN would otherwise be accepted
  // here, and the connection go dark when the address goes). Until Revoke, or a call with
  // refuse = false (the release was called off). Errors as Lease.
  [[nodiscard]] absl::Status RefuseConnections(const std::string& address,
                                               bool refuse = true) override;
  // Deletes both tables (clean shutdown: the address is gone, nothing left to fence). kUnavailable.
  [[nodiscard]] absl::Status RemoveTables() override;

  const std::string& table() const override { return options_.table; }

  // Runs one nftables command batch in the current namespace; nft's error text in the status.
  // For tests and for the tables' set-up.
  [[nodiscard]] static absl::Status Run(const std::string& commands);

 private:
  NftFence(const Clock& clock, NftFenceOptions options, std::vector<bool> is_v6, nft_ctx* ctx);
  absl::StatusOr<size_t> Index(const std::string& address) const;
  absl::Status Exec(const std::string& commands);  // on ctx_


  const Clock& clock_;
  NftFenceOptions options_;
  std::vector<bool> is_v6_;
  nft_ctx* ctx_ = nullptr;  // owned; kept so a refresh does not re-create the context
};

}  // namespace baton::takeover

#endif  // BATON_TAKEOVER_DRIVERS_NFT_FENCE_H_

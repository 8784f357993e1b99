// Where TakeoverDaemon gets its I/O: the UDP transport, the netlink address driver, the announcer
// and the kernel fence, each made through this factory, so that the daemon's glue (a grant adds
// the address, leases the fence and announces; a release undoes them; status reports them) can
// be tested with fakes and without root (tests/takeover/daemon/daemon_glue_test.cc). Time comes
// from the Clock given to TakeoverDaemon::Create (base/clock.h), also for what is made here.
//
// Each Make* has the contract and errors of the real driver's Create (udp_transport.h,
// address_driver.h, announcer.h, nft_fence.h). The daemon calls them from Start() on its
// io_context's thread; a factory must outlive every daemon it made drivers for.
#ifndef BATON_TAKEOVER_DAEMON_DRIVER_FACTORY_H_
#define BATON_TAKEOVER_DAEMON_DRIVER_FACTORY_H_

#include <memory>

#include <boost/asio/io_context.hpp>

#include "absl/status/statusor.h"
#include "takeover/drivers/address_driver.h"
#include "takeover/drivers/announcer.h"
#include "takeover/drivers/clock.h"
#include "takeover/drivers/nft_fence.h"
#include "takeover/drivers/udp_transport.h"

namespace baton::takeover {

class DriverFactory {
 public:
  virtual ~DriverFactory() = default;
  virtual absl::StatusOr<std::unique_ptr<UdpTransport>> MakeTransport(
      boost::asio::io_context& io, const Clock& clock, UdpTransportOptions options,
      UdpTransport::ReceiveCallback on_receive) = 0;
  virtual absl::StatusOr<std::unique_ptr<AddressDriver>> MakeAddressDriver(
      AddressDriverOptions options) = 0;
  virtual absl::StatusOr<std::unique_ptr<Announcer>> MakeAnnouncer(AnnouncerOptions options) = 0;
  virtual absl::StatusOr<std::unique_ptr<KernelFence>> MakeFence(const Clock& clock,
                                                                 NftFenceOptions options) = 0;
};

// The real drivers (UDP sockets, netlink, AF_PACKET, nftables): baton-takeoverd's and an
// embedding server's. Stateless, thread-safe, never destroyed.
DriverFactory& RealDriverFactory();

}  // namespace baton::takeover

#endif  // BATON_TAKEOVER_DAEMON_DRIVER_FACTORY_H_

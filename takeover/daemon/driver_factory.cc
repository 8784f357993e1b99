#include "takeover/daemon/driver_factory.h"

#include <utility>

namespace baton::takeover {
namespace {

class RealDrivers final : public DriverFactory {
 public:
  absl::StatusOr<std::unique_ptr<UdpTransport>> MakeTransport(
      boost::asio::io_context& io, const Clock& clock, UdpTransportOptions options,
      UdpTransport::ReceiveCallback on_receive) override {
    return UdpTransport::Create(io, clock, std::move(options), std::move(on_receive));
  }
  absl::StatusOr<std::unique_ptr<AddressDriver>> MakeAddressDriver(
      AddressDriverOptions options) override {
    return AddressDriver::Create(std::move(options));
  }
  absl::StatusOr<std::unique_ptr<Announcer>> MakeAnnouncer(AnnouncerOptions options) override {
    return Announcer::Create(std::move(options));
  }
  absl::StatusOr<std::unique_ptr<KernelFence>> MakeFence(const Clock& clock,
                                                         NftFenceOptions options) override {
    absl::StatusOr<std::unique_ptr<NftFence>> fence = NftFence::Create(clock, std::move(options));
    if (!fence.ok()) return fence.status();
    return std::unique_ptr<KernelFence>(*std::move(fence));
  }
};

}  // namespace

DriverFactory& RealDriverFactory() {
  static RealDrivers* drivers = new RealDrivers();
  return *drivers;
}

}  // namespace baton::takeover

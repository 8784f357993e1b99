// TakeoverDaemon's glue between the core and its drivers, with fake drivers from a DriverFactory:
// no root, no network namespace, no kernel state. A one-node group takes its one service address
// at once, so what is checked is the daemon's own work around the core: a grant leases the kernel
// fence before the address is added and then announces it; an operator drain removes the address,
// revokes the fence element and stops the announcements; the status document reports what is
// held; Shutdown leaves nothing behind. (embed_test.cc checks the same against a real kernel,
// as root.)
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "gtest/gtest.h"
#include "takeover/daemon/config.h"
#include "takeover/daemon/daemon.h"
#include "takeover/daemon/driver_factory.h"
#include "tests/takeover/daemon/daemon_test_dir.h"

namespace baton::takeover {
namespace {

constexpr char kAddress[] = "10.88.0.100";
constexpr char kPrefix[] = "10.88.0.100/24";

// What the fakes did, in order ("fence-lease 10.88.0.100", "add 10.88.0.100/24 eth0", ...), and
// what is in place now. Everything runs on the test's thread (it runs the io_context).
struct FakeKernel {
  std::vector<std::string> log;
  std::set<std::string> addresses;  // "prefix ifname"
  std::map<std::string, std::chrono::nanoseconds> leased;  // fence: address -> lease end
  std::set<std::string> announcing;
  bool fence_tables = false;

  size_t Index(const std::string& entry) const {
    for (size_t i = 0; i < log.size(); ++i) {
      if (log[i] == entry) return i;
    }
    return log.size();
  }
};

class FakeAddresses final : public AddressDriver {
 public:
  explicit FakeAddresses(FakeKernel& k) : k_(k) {}
  absl::Status Add(const IpPrefix& prefix, std::string_view ifname, std::string_view,
                   std::chrono::seconds, std::chrono::seconds) override {
    const std::string key = prefix.ToString() + " " + std::string(ifname);
    if (!k_.addresses.insert(key).second) return absl::AlreadyExistsError(key);
    k_.log.push_back("add " + key);
    return absl::OkStatus();
  }
  absl::Status Remove(const IpPrefix& prefix, std::string_view ifname) override {
    const std::string key = prefix.ToString() + " " + std::string(ifname);
    if (k_.addresses.erase(key) == 0) return absl::NotFoundError(key);
    k_.log.push_back("remove " + key);
    return absl::OkStatus();
  }
  absl::Status Refresh(const IpPrefix& prefix, std::string_view ifname, std::chrono::seconds,
                       std::chrono::seconds) override {
    const std::string key = prefix.ToString() + " " + std::string(ifname);
    return k_.addresses.count(key) != 0 ? absl::OkStatus() : absl::NotFoundError(key);
  }
  absl::StatusOr<bool> Has(const IpPrefix& prefix, std::string_view ifname) override {
    return k_.addresses.count(prefix.ToString() + " " + std::string(ifname)) != 0;
  }
  absl::StatusOr<std::vector<ManagedAddress>> List(std::string_view) override {
    return std::vector<ManagedAddress>{};
  }
  absl::StatusOr<std::vector<ManagedAddress>> RemoveStale(std::string_view) override {
    return std::vector<ManagedAddress>{};
  }

 private:
  FakeKernel& k_;
};

class FakeAnnouncer final : public Announcer {
 public:
  explicit FakeAnnouncer(FakeKernel& k) : k_(k) {}
  absl::Status Start(const boost::asio::ip::address& address, std::string_view,
                     std::chrono::nanoseconds) override {
    k_.announcing.insert(address.to_string());
    k_.log.push_back("announce " + address.to_string());
    return absl::OkStatus();
  }
  void Cancel(const boost::asio::ip::address& address) override {
    if (k_.announcing.erase(address.to_string()) != 0) {
      k_.log.push_back("cancel " + address.to_string());
    }
  }
  void Poll(std::chrono::nanoseconds) override {}
  std::optional<std::chrono::nanoseconds> NextDeadline() const override { return std::nullopt; }
  absl::Status SendOnce(const boost::asio::ip::address&, std::string_view) override {
    return absl::OkStatus();
  }
  AnnouncerStats GetStats() const override { return {}; }

 private:
  FakeKernel& k_;
};

class FakeFence final : public KernelFence {
 public:
  explicit FakeFence(FakeKernel& k) : k_(k) { k_.fence_tables = true; }
  absl::Status Lease(const std::string& address, std::chrono::nanoseconds end) override {
    if (k_.leased.count(address) == 0) k_.log.push_back("fence-lease " + address);
    k_.leased[address] = end;
    return absl::OkStatus();
  }
  absl::Status Revoke(const std::string& address) override {
    if (k_.leased.erase(address) != 0) k_.log.push_back("fence-revoke " + address);
    return absl::OkStatus();
  }
  absl::Status RefuseConnections(const std::string&, bool) override { return absl::OkStatus(); }
  absl::Status RemoveTables() override {
    k_.fence_tables = false;
    k_.leased.clear();
    return absl::OkStatus();
  }
  const std::string& table() const override { return table_; }

 private:
  FakeKernel& k_;
  std::string table_ = "fake_fence";
};

// A one-node group has no peers to send to.
class FakeTransport final : public UdpTransport {
 public:
  absl::Status Send(NodeId, std::string_view) override { return absl::OkStatus(); }
  UdpTransportStats GetStats() const override { return {}; }
  uint16_t local_port() const override { return 0; }
  void Close() override {}
};

class FakeDrivers final : public DriverFactory {
 public:
  explicit FakeDrivers(FakeKernel& k) : k_(k) {}
  absl::StatusOr<std::unique_ptr<UdpTransport>> MakeTransport(
      boost::asio::io_context&, const Clock&, UdpTransportOptions,
      UdpTransport::ReceiveCallback) override {
    return std::unique_ptr<UdpTransport>(new FakeTransport());
  }
  absl::StatusOr<std::unique_ptr<AddressDriver>> MakeAddressDriver(AddressDriverOptions) override {
    return std::unique_ptr<AddressDriver>(new FakeAddresses(k_));
  }
  absl::StatusOr<std::unique_ptr<Announcer>> MakeAnnouncer(AnnouncerOptions) override {
    return std::unique_ptr<Announcer>(new FakeAnnouncer(k_));
  }
  absl::StatusOr<std::unique_ptr<KernelFence>> MakeFence(const Clock&, NftFenceOptions) override {
    return std::unique_ptr<KernelFence>(new FakeFence(k_));
  }

 private:
  FakeKernel& k_;
};

class DaemonGlueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeDaemonTestDir("baton-glue-test-");
    absl::StatusOr<DaemonConfig> config = ParseDaemonConfig(
        "node_id: 1\n"
        "interface: eth0\n"
        "service_addresses: [" + std::string(kPrefix) + "]\n"
        "key_file: " + (dir_ / "key").string() + "\n"
        "peers: [{id: 1, priority: 1, capacity: 1, address: \"127.0.0.1:17947\"}]\n"
        "bind_host: 127.0.0.1\n"
        "timing: {heartbeat: 20ms}\n"
        "kernel_fence: true\n"
        "health_check: {kind: external}\n"
        "status_socket: \"\"\n"
        "incarnation_file: " + (dir_ / "incarnation").string() + "\n"
        "state_file: " + (dir_ / "state").string() + "\n");
    ASSERT_TRUE(config.ok()) << config.status();
    absl::StatusOr<std::unique_ptr<TakeoverDaemon>> created =
        TakeoverDaemon::Create(io_, SystemClock::Get(), *config, drivers_);
    ASSERT_TRUE(created.ok()) << created.status();
    daemon_ = *std::move(created);
    daemon_->SetSlotListener([this](const SlotEvent& e) { events_.push_back(e); });
  }
  void TearDown() override {
    daemon_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // Runs the daemon's io_context on this thread until `pred` holds (false after 5 s).
  bool RunUntil(const std::function<bool()>& pred) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!pred()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      io_.run_for(std::chrono::milliseconds(5));
    }
    return true;
  }
  bool Holding() const { return !events_.empty() && events_.back().held; }
  bool Released() const { return !events_.empty() && !events_.back().held; }

  std::filesystem::path dir_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  FakeKernel kernel_;
  FakeDrivers drivers_{kernel_};
  std::vector<SlotEvent> events_;
  std::unique_ptr<TakeoverDaemon> daemon_;
};

TEST_F(DaemonGlueTest, GrantFencesAddsAndAnnouncesDrainUndoesItStatusReportsIt) {
  ASSERT_TRUE(daemon_->Start().ok());
  EXPECT_TRUE(kernel_.fence_tables);

  // The grant (a majority of one): fence element first, then the address, then announcements.
  ASSERT_TRUE(RunUntil([this] { return Holding(); })) << "never took the slot";
  const std::string add = std::string("add ") + kPrefix + " eth0";
  const std::string lease = std::string("fence-lease ") + kAddress;
  EXPECT_EQ(kernel_.addresses.count(std::string(kPrefix) + " eth0"), 1u);
  ASSERT_EQ(kernel_.leased.count(kAddress), 1u) << "held without a kernel fence lease";
  EXPECT_GT(kernel_.leased[kAddress], SystemClock::Get().MonotonicNow())
      << "the fence element must last until the lease end";
  EXPECT_EQ(kernel_.announcing.count(kAddress), 1u);
  EXPECT_LT(kernel_.Index(lease), kernel_.Index(add)) << "address added before the fence lease";
  EXPECT_LT(kernel_.Index(add), kernel_.Index(std::string("announce ") + kAddress));
  EXPECT_EQ(events_.back().address, kAddress);
  EXPECT_GT(events_.back().epoch, 0u);

  nlohmann::json st = daemon_->StatusJson();
  EXPECT_EQ(st["slots"][0]["address"], kPrefix);
  EXPECT_EQ(st["slots"][0]["held_by_me"], true);
  EXPECT_EQ(st["kernel_fence"], "fake_fence");

  // Operator drain: address gone, fence element revoked, announcements stopped.
  daemon_->DrainSlot(0, true);
  ASSERT_TRUE(RunUntil([this] { return Released(); })) << "drain did not release the slot";
  EXPECT_TRUE(kernel_.addresses.empty());
  EXPECT_EQ(kernel_.leased.count(kAddress), 0u) << "fence element outlived the release";
  EXPECT_TRUE(kernel_.announcing.empty());
  st = daemon_->StatusJson();
  EXPECT_EQ(st["slots"][0]["held_by_me"], false);
  EXPECT_EQ(st["slots"][0]["drained"], true);

  // Undo: taken again under a new epoch; Shutdown leaves no address and no fence table.
  const uint64_t first_epoch = events_.back().epoch;
  daemon_->DrainSlot(0, false);
  ASSERT_TRUE(RunUntil([this] { return Holding(); })) << "undrain did not take the slot back";
  EXPECT_GT(events_.back().epoch, first_epoch);
  bool done = false;
  daemon_->Shutdown([&done] { done = true; });
  ASSERT_TRUE(RunUntil([&done] { return done; })) << "Shutdown never finished";
  EXPECT_TRUE(kernel_.addresses.empty());
  EXPECT_FALSE(kernel_.fence_tables);
}

}  // namespace
}  // namespace baton::takeover

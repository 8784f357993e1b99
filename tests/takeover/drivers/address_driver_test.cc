// AddressDriver against the real kernel, inside a network namespace this test
// creates and deletes. Needs root (label root;lab).
#include "takeover/drivers/address_driver.h"

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "tests/takeover/drivers/netns_fixture.h"
#include "tests/testing/require_root.h"

namespace baton::takeover {
namespace {

using std::chrono::seconds;
using testing::EnterNetns;
using testing::ScopedNetns;

// `ip -o addr` shows remaining lifetimes; a second may have passed since the
// address was added or refreshed.
bool ShowsLifetimes(const std::string& out, int valid, int preferred) {
  for (int elapsed = 0; elapsed <= 1; ++elapsed) {
    if (out.find("valid_lft " + std::to_string(valid - elapsed) + "sec preferred_lft " +
                 std::to_string(preferred - elapsed) + "sec") != std::string::npos) {
      return true;
    }
  }
  return false;
}

IpPrefix P(const char* text) {
  absl::StatusOr<IpPrefix> p = IpPrefix::Parse(text);
  EXPECT_TRUE(p.ok()) << p.status();
  return *p;
}

class AddressDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BATON_REQUIRE_ROOT();
    testing::SweepStaleNamespaces();
    ns_ = std::make_unique<ScopedNetns>();
    ASSERT_TRUE(ns_->ok()) << ns_->error();
    ASSERT_EQ(ns_->Ip("link add va type veth peer name vb").exit_code, 0);
    ASSERT_EQ(ns_->Ip("link set va up").exit_code, 0);
    ASSERT_EQ(ns_->Ip("link set vb up").exit_code, 0);
    enter_ = std::make_unique<EnterNetns>(*ns_);
    ASSERT_TRUE(enter_->ok());
    auto d = AddressDriver::Create();
    ASSERT_TRUE(d.ok()) << d.status();
    driver_ = std::move(*d);
  }
  void TearDown() override {
    driver_.reset();
    enter_.reset();
    ns_.reset();
  }
  std::string IpAddr() { return ns_->Ip("-o addr show dev va").output; }

  std::unique_ptr<ScopedNetns> ns_;
  std::unique_ptr<EnterNetns> enter_;
  std::unique_ptr<AddressDriver> driver_;
};

TEST_F(AddressDriverTest, AddsWithLabelAndLifetimeAndRemoves) {
  ASSERT_TRUE(driver_->Add(P("10.77.0.10/24"), "va", seconds(30), seconds(20)).ok());
  ASSERT_TRUE(driver_->Add(P("2001:db8:77::10/64"), "va", seconds(40), seconds(25)).ok());
  std::string out = IpAddr();
  EXPECT_NE(out.find("inet 10.77.0.10/24"), std::string::npos) << out;
  EXPECT_NE(out.find("va:bt"), std::string::npos) << out;
  EXPECT_TRUE(ShowsLifetimes(out, 30, 20)) << out;
  EXPECT_NE(out.find("inet6 2001:db8:77::10/64"), std::string::npos) << out;
  EXPECT_TRUE(ShowsLifetimes(out, 40, 25)) << out;
  // NODAD: usable at once, not tentative.
  std::string v6_line = out.substr(out.find("2001:db8:77::10"));
  v6_line = v6_line.substr(0, v6_line.find('\n'));
  EXPECT_EQ(v6_line.find("tentative"), std::string::npos) << out;
  EXPECT_TRUE(*driver_->Has(P("10.77.0.10/24"), "va"));
  EXPECT_TRUE(*driver_->Has(P("2001:db8:77::10/64"), "va"));

  ASSERT_TRUE(driver_->Remove(P("10.77.0.10/24"), "va").ok());
  ASSERT_TRUE(driver_->Remove(P("2001:db8:77::10/64"), "va").ok());
  out = IpAddr();
  EXPECT_EQ(out.find("10.77.0.10"), std::string::npos) << out;
  EXPECT_EQ(out.find("2001:db8:77::10"), std::string::npos) << out;
  EXPECT_FALSE(*driver_->Has(P("10.77.0.10/24"), "va"));
}

TEST_F(AddressDriverTest, NetlinkErrorsBecomeClearStatuses) {
  ASSERT_TRUE(driver_->Add(P("10.77.0.10/24"), "va", seconds(30), seconds(30)).ok());
  absl::Status again = driver_->Add(P("10.77.0.10/24"), "va", seconds(30), seconds(30));
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists) << again;
  absl::Status v6 = driver_->Add(P("2001:db8:77::10/64"), "va", seconds(30), seconds(30));
  ASSERT_TRUE(v6.ok()) << v6;
  EXPECT_EQ(driver_->Add(P("2001:db8:77::10/64"), "va", seconds(30), seconds(30)).code(),
            absl::StatusCode::kAlreadyExists);
  absl::Status absent = driver_->Remove(P("10.77.0.99/24"), "va");
  EXPECT_EQ(absent.code(), absl::StatusCode::kNotFound) << absent;
  EXPECT_EQ(driver_->Remove(P("2001:db8:77::99/64"), "va").code(), absl::StatusCode::kNotFound);
  absl::Status nodev = driver_->Add(P("10.77.0.11/24"), "nosuchif0", seconds(30), seconds(30));
  EXPECT_EQ(nodev.code(), absl::StatusCode::kNotFound) << nodev;
  EXPECT_NE(nodev.message().find("nosuchif0"), std::string::npos) << nodev;
  EXPECT_EQ(driver_->Add(P("10.77.0.12/24"), "va", "vb:bt", seconds(30), seconds(30)).code(),
            absl::StatusCode::kInvalidArgument);  // label must start with "va"
  EXPECT_EQ(driver_->Add(P("10.77.0.12/24"), "va", "va:waytoolonglabel", seconds(30),
                         seconds(30)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(driver_->Add(P("10.77.0.12/24"), "va", seconds(10), seconds(20)).code(),
            absl::StatusCode::kInvalidArgument);  // preferred > valid
  EXPECT_FALSE(IpPrefix::Parse("10.0.0.1/33").ok());
  EXPECT_FALSE(IpPrefix::Parse("not-an-ip").ok());
}

// The backstop: an address that is not refreshed disappears by itself when
// its valid_lft runs out; one that is refreshed stays; Refresh never brings
// an expired address back.
TEST_F(AddressDriverTest, KernelRemovesAddressWhenLifetimeRunsOut) {
  ASSERT_EQ(ns_->Ip("addr add 10.77.0.1/24 dev va").exit_code, 0);  // the host's own (primary)
  ASSERT_TRUE(driver_->Add(P("10.77.0.10/24"), "va", seconds(1), seconds(1)).ok());
  ASSERT_TRUE(driver_->Add(P("2001:db8:77::10/64"), "va", seconds(1), seconds(1)).ok());
  ASSERT_TRUE(driver_->Add(P("10.77.0.20/24"), "va", seconds(2), seconds(2)).ok());
  ASSERT_TRUE(driver_->Add(P("2001:db8:77::20/64"), "va", seconds(2), seconds(2)).ok());
  bool gone = false;
  for (int i = 0; i < 16 && !gone; ++i) {  // up to 4 s
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    absl::Status refreshed = driver_->Refresh(P("10.77.0.20/24"), "va", seconds(2), seconds(2));
    ASSERT_TRUE(refreshed.ok()) << refreshed;
    refreshed = driver_->Refresh(P("2001:db8:77::20/64"), "va", seconds(2), seconds(2));
    ASSERT_TRUE(refreshed.ok()) << refreshed;
    gone = !*driver_->Has(P("10.77.0.10/24"), "va") &&
           !*driver_->Has(P("2001:db8:77::10/64"), "va");
  }
  EXPECT_TRUE(gone) << IpAddr();
  EXPECT_TRUE(*driver_->Has(P("10.77.0.20/24"), "va")) << "refreshed address expired";
  EXPECT_TRUE(*driver_->Has(P("2001:db8:77::20/64"), "va")) << "refreshed address expired";
  absl::Status refresh = driver_->Refresh(P("10.77.0.10/24"), "va", seconds(30), seconds(30));
  EXPECT_EQ(refresh.code(), absl::StatusCode::kNotFound) << refresh;
  EXPECT_FALSE(*driver_->Has(P("10.77.0.10/24"), "va"));
  // Refresh really pushes the kernel lifetime forward.
  ASSERT_TRUE(driver_->Refresh(P("10.77.0.20/24"), "va", seconds(50), seconds(40)).ok());
  ASSERT_TRUE(driver_->Refresh(P("2001:db8:77::20/64"), "va", seconds(60), seconds(45)).ok());
  std::string out = IpAddr();
  EXPECT_TRUE(ShowsLifetimes(out, 50, 40)) << out;
  EXPECT_TRUE(ShowsLifetimes(out, 60, 45)) << out;
  // Still ours after a refresh (label and tag kept), so RemoveStale finds it.
  absl::StatusOr<std::vector<ManagedAddress>> ours = driver_->List("va");
  ASSERT_TRUE(ours.ok());
  EXPECT_EQ(ours->size(), 2u);
}

TEST_F(AddressDriverTest, RemoveStaleRemovesOnlyOurAddresses) {
  // The host's own addresses come first (primary), as on a real host: removing
  // a primary IPv4 address would take its secondaries with it.
  ASSERT_EQ(ns_->Ip("addr add 10.77.0.50/24 dev va label va:other").exit_code, 0);
  ASSERT_EQ(ns_->Ip("addr add 10.77.0.51/24 dev va").exit_code, 0);
  ASSERT_TRUE(driver_->Add(P("10.77.0.10/24"), "va", seconds(60), seconds(60)).ok());
  ASSERT_TRUE(driver_->Add(P("10.77.0.11/32"), "va", seconds(60), seconds(60)).ok());
  ASSERT_TRUE(driver_->Add(P("2001:db8:77::10/64"), "va", seconds(60), seconds(60)).ok());
  ASSERT_EQ(ns_->Ip("addr add 2001:db8:77::50/64 dev va nodad").exit_code, 0);
  // A leftover of an earlier run added by hand with our label is ours too.
  ASSERT_EQ(ns_->Ip("addr add 10.77.0.60/24 dev va label va:bt").exit_code, 0);

  absl::StatusOr<std::vector<ManagedAddress>> listed = driver_->List("va");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->size(), 4u);
  absl::StatusOr<std::vector<ManagedAddress>> all = driver_->List();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 4u);

  absl::StatusOr<std::vector<ManagedAddress>> removed = driver_->RemoveStale();
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(removed->size(), 4u);
  std::string out = IpAddr();
  EXPECT_EQ(out.find("10.77.0.10/"), std::string::npos) << out;
  EXPECT_EQ(out.find("2001:db8:77::10/"), std::string::npos) << out;
  EXPECT_EQ(out.find("10.77.0.60/"), std::string::npos) << out;
  EXPECT_EQ(out.find("10.77.0.11/"), std::string::npos) << out;
  EXPECT_NE(out.find("10.77.0.50/24"), std::string::npos) << out;
  EXPECT_NE(out.find("10.77.0.51/24"), std::string::npos) << out;
  EXPECT_NE(out.find("2001:db8:77::50/64"), std::string::npos) << out;
  EXPECT_TRUE(driver_->List()->empty());
}

}  // namespace
}  // namespace baton::takeover

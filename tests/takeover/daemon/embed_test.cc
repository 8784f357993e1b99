// The embedding API of TakeoverDaemon, as baton-kvserver uses it: a one-node group moving a pool of
// two addresses in a network namespace of its own (a veth pair), health reported by the
// embedder. Checks what an embedder relies on: a SlotEvent right after each add/remove in the
// kernel, epochs that grow with every holding of a slot, SetHealthy(false) releasing everything
// and true taking it back, DrainSlot of one slot and its undo, the status document from
// GetStatusAsync, and Shutdown releasing every address before `done` runs. Needs root (skips
// outside, fails under CI=true); labels root;lab.
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "gtest/gtest.h"
#include "takeover/daemon/config.h"
#include "takeover/daemon/daemon.h"
#include "takeover/drivers/clock.h"
#include "tests/takeover/daemon/daemon_test_dir.h"
#include "tests/takeover/drivers/netns_fixture.h"
#include "tests/testing/require_root.h"

namespace baton::takeover {
namespace {

using std::chrono::milliseconds;
using testing::EnterNetns;
using testing::MakeDaemonTestDir;
using testing::ScopedNetns;

constexpr char kIp0[] = "10.88.0.100";
constexpr char kIp1[] = "10.88.0.101";

// The listener's record of events, read by the test thread.
class Events {
 public:
  void Add(const SlotEvent& e) {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(e);
    cv_.notify_all();
  }
  // Waits until `pred(events)` holds; false after `timeout`.
  bool WaitFor(const std::function<bool(const std::vector<SlotEvent>&)>& pred,
               milliseconds timeout = milliseconds(5000)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return pred(events_); });
  }
  std::vector<SlotEvent> Snapshot() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<SlotEvent> events_;
};

// The last event of `slot`, if any.
const SlotEvent* Last(const std::vector<SlotEvent>& events, uint32_t slot) {
  for (auto it = events.rbegin(); it != events.rend(); ++it) {
    if (it->slot == slot) return &*it;
  }
  return nullptr;
}
bool Held(const std::vector<SlotEvent>& events, uint32_t slot) {
  const SlotEvent* e = Last(events, slot);
  return e != nullptr && e->held;
}
bool Released(const std::vector<SlotEvent>& events, uint32_t slot) {
  const SlotEvent* e = Last(events, slot);
  return e != nullptr && !e->held;
}
size_t Count(const std::vector<SlotEvent>& events, uint32_t slot, bool held) {
  size_t n = 0;
  for (const SlotEvent& e : events) n += (e.slot == slot && e.held == held) ? 1 : 0;
  return n;
}

class EmbedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BATON_REQUIRE_ROOT();
    testing::SweepStaleNamespaces();
    ns_ = std::make_unique<ScopedNetns>();
    ASSERT_TRUE(ns_->ok()) << ns_->error();
    // A veth pair inside the namespace (no dummy module needed): eth0 carries the addresses.
    ASSERT_EQ(ns_->Ip("link add eth0 type veth peer name eth1").exit_code, 0);
    ASSERT_EQ(ns_->Ip("link set eth1 up").exit_code, 0);
    ASSERT_EQ(ns_->Ip("link set eth0 up").exit_code, 0);
    ASSERT_EQ(ns_->Ip("addr add 10.88.0.1/24 dev eth0").exit_code, 0);
    dir_ = MakeDaemonTestDir("baton-embed-test-");
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // The YAML the kv server passes: its `takeover:` section with the health forced to external.
  std::string Yaml() const {
    return "node_id: 1\n"
           "interface: eth0\n"
           "service_addresses: [" + std::string(kIp0) + "/24, " + kIp1 + "/24]\n"
           "key_file: " + (dir_ / "key").string() + "\n"
           "peers: [{id: 1, priority: 1, capacity: 2, address: \"127.0.0.1:17946\"}]\n"
           "bind_host: 127.0.0.1\n"
           "timing: {heartbeat: 20ms}\n"
           "kernel_fence: false\n"
           "health_check: {kind: external}\n"
           "status_socket: \"\"\n"
           "incarnation_file: " + (dir_ / "incarnation").string() + "\n"
           "state_file: " + (dir_ / "state").string() + "\n";
  }

  bool InKernel(const std::string& ip) const {
    return ns_->Ip("-4 -o addr show dev eth0").output.find(" " + ip + "/") != std::string::npos;
  }

  // The status document, fetched from this thread through GetStatusAsync.
  nlohmann::json Status(TakeoverDaemon& d) {
    std::promise<nlohmann::json> p;
    std::future<nlohmann::json> f = p.get_future();
    d.GetStatusAsync([&p](nlohmann::json j) { p.set_value(std::move(j)); });
    if (f.wait_for(std::chrono::seconds(5)) != std::future_status::ready) return nullptr;
    return f.get();
  }

  std::unique_ptr<ScopedNetns> ns_;
  std::filesystem::path dir_;
};

TEST_F(EmbedTest, SlotEventsHealthDrainStatusAndShutdown) {
  absl::StatusOr<DaemonConfig> config = ParseDaemonConfig(Yaml());
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->health_check.kind, HealthCheckConfig::Kind::kExternal);

  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  Events events;
  std::unique_ptr<TakeoverDaemon> daemon;
  {
    // Sockets (netlink, UDP, packet) are opened in Start() and stay in the namespace; the io
    // thread, created while this thread is inside, runs there too.
    EnterNetns enter(*ns_);
    ASSERT_TRUE(enter.ok());
    absl::StatusOr<std::unique_ptr<TakeoverDaemon>> created =
        TakeoverDaemon::Create(io, SteadyClock::Get(), *config);
    ASSERT_TRUE(created.ok()) << created.status();
    daemon = *std::move(created);
    daemon->SetSlotListener([&events](const SlotEvent& e) { events.Add(e); });
    ASSERT_TRUE(daemon->Start().ok());
  }
  std::thread io_thread([&io] { io.run(); });
  struct Joiner {
    boost::asio::io_context& io;
    std::thread& t;
    ~Joiner() {
      io.stop();
      if (t.joinable()) t.join();
    }
  } joiner{io, io_thread};

  // Capacity 2, one node: both addresses, each reported right after the kernel has it.
  ASSERT_TRUE(events.WaitFor([](const auto& ev) { return Held(ev, 0) && Held(ev, 1); }))
      << "never held both slots";
  EXPECT_TRUE(InKernel(kIp0));
  EXPECT_TRUE(InKernel(kIp1));
  std::vector<SlotEvent> ev = events.Snapshot();
  EXPECT_EQ(Last(ev, 0)->address, kIp0);
  EXPECT_EQ(Last(ev, 1)->address, kIp1);
  const uint64_t first_epoch1 = Last(ev, 1)->epoch;
  EXPECT_GT(first_epoch1, 0u);

  nlohmann::json st = Status(*daemon);
  ASSERT_TRUE(st.is_object());
  EXPECT_EQ(st["capacity_used"], 2);
  EXPECT_EQ(st["slots"].size(), 2u);
  EXPECT_EQ(st["slots"][1]["address"], std::string(kIp1) + "/24");
  EXPECT_EQ(st["slots"][1]["held_by_me"], true);
  EXPECT_EQ(st["healthy"], true);

  // Unhealthy: everything released (events and kernel), healthy again: taken back, new epochs.
  daemon->SetHealthy(false);
  ASSERT_TRUE(events.WaitFor([](const auto& e) { return Released(e, 0) && Released(e, 1); }))
      << "SetHealthy(false) did not release both slots";
  EXPECT_FALSE(InKernel(kIp0));
  EXPECT_FALSE(InKernel(kIp1));
  st = Status(*daemon);
  EXPECT_EQ(st["healthy"], false);
  EXPECT_EQ(st["draining"], true);
  daemon->SetHealthy(true);
  ASSERT_TRUE(events.WaitFor([](const auto& e) {
    return Held(e, 0) && Held(e, 1) && Count(e, 1, true) == 2;
  })) << "SetHealthy(true) did not take both slots back";
  ev = events.Snapshot();
  const uint64_t second_epoch1 = Last(ev, 1)->epoch;
  EXPECT_GT(second_epoch1, first_epoch1) << "the same node taking a slot back needs a new epoch";

  // Operator drain of slot 1 only, then its undo.
  daemon->DrainSlot(1, true);
  ASSERT_TRUE(events.WaitFor([](const auto& e) { return Released(e, 1); }));
  EXPECT_FALSE(InKernel(kIp1));
  EXPECT_TRUE(InKernel(kIp0));
  st = Status(*daemon);
  EXPECT_EQ(st["slots"][1]["drained"], true);
  EXPECT_EQ(st["slots"][1]["held_by_me"], false);
  EXPECT_EQ(st["slots"][0]["held_by_me"], true);
  EXPECT_GE(st["counters"]["drains"].get<int>(), 1);
  daemon->DrainSlot(1, false);
  ASSERT_TRUE(events.WaitFor([](const auto& e) { return Held(e, 1) && Count(e, 1, true) == 3; }));
  EXPECT_GT(Last(events.Snapshot(), 1)->epoch, second_epoch1);
  EXPECT_TRUE(InKernel(kIp1));

  // Shutdown: every address removed (and reported) before `done`.
  std::promise<std::vector<SlotEvent>> at_done;
  boost::asio::post(io, [&] {
    daemon->Shutdown([&] { at_done.set_value(events.Snapshot()); });
  });
  std::future<std::vector<SlotEvent>> f = at_done.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  ev = f.get();
  EXPECT_TRUE(Released(ev, 0));
  EXPECT_TRUE(Released(ev, 1));
  EXPECT_FALSE(InKernel(kIp0));
  EXPECT_FALSE(InKernel(kIp1));
  io.stop();
  io_thread.join();
  daemon.reset();
}

}  // namespace
}  // namespace baton::takeover

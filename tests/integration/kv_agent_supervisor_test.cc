// AgentSupervisor (framework/embedded_agent.h), the server side of the
// supervised take-over agent, against a stand-in agent process
// (kv_agent_fake_agent.py) that speaks the parent-link protocol without any
// kernel access: no root needed. What a server relies on:
//   - a held slot event from the child is turned into a ready fence; the
//     status merges the child's document with the fences;
//   - the child's death marks every slot released at once and a new child is
//     started after the back-off, with the operator drains replayed;
//   - the server sends its health as a keepalive every health period;
//   - Shutdown asks the child to hand over and reaps it;
//   - a child is dead when it exits, even if its link stays open;
//   - a child that exits before it started fails Start, and so does one that
//     speaks another version of the agent protocol, with a message naming
//     both versions.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "framework/embedded_agent.h"
#include "gtest/gtest.h"
#include "storage/rocksdb/rocksdb_store.h"

namespace baton::framework {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Polls `cond` every 10 ms for at most `seconds`.
bool WaitFor(const std::function<bool()>& cond, int seconds = 5) {
  for (int i = 0; i < seconds * 100; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

FenceSlot Slot0(ServerAgent& agent) {
  for (const FenceSlot& f : agent.fences().Snapshot()) {
    if (f.slot == 0) return f;
  }
  return FenceSlot{};
}

class AgentSupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/baton-kv_agent_supervisor.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    {
      std::ofstream key(dir_ + "/key");
      key << "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n";
    }
    ::chmod((dir_ + "/key").c_str(), 0600);
    ::setenv("FAKE_AGENT_DIR", dir_.c_str(), 1);
    ::unsetenv("FAKE_AGENT_MODE");
    storage::RocksDbOptions o;
    o.path = dir_ + "/db";
    o.sync = false;
    auto store = storage::OpenRocksDbStore(o);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }
  void TearDown() override {
    // The process the "orphan" fake agent leaves behind.
    if (const int orphan = std::atoi(ReadFile(dir_ + "/orphan").c_str()); orphan > 0) {
      ::kill(orphan, SIGKILL);
    }
    agent_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  absl::StatusOr<std::unique_ptr<AgentSupervisor>> Make() {
    auto config = ParseEmbeddedAgentConfig(absl::StrCat(
        "node_id: 1\ninterface: eth0\nservice_addresses: [10.0.0.1/24]\n"
        "key_file: ", dir_, "/key\n"
        "peers: [{id: 1, priority: 1, address: \"127.0.0.1:7946\"}]\n"
        "health_check: {kind: external, period: 100ms}\n"));
    if (!config.ok()) return config.status();
    AgentSupervisorOptions options;
    options.binary = BATON_FAKE_AGENT;
    return AgentSupervisor::Create(*std::move(config), options);
  }
  std::vector<std::string> Starts() {
    std::vector<std::string> pids;
    std::stringstream s(ReadFile(dir_ + "/starts"));
    for (std::string p; s >> p;) pids.push_back(p);
    return pids;
  }
  std::string LinesOf(const std::string& pid) {
    return ReadFile(dir_ + "/lines-" + pid);
  }

  std::string dir_;
  std::unique_ptr<storage::StableStore> store_;
  std::unique_ptr<AgentSupervisor> agent_;
};

TEST_F(AgentSupervisorTest, HeldSlotGetsAFenceAndStatusMergesIt) {
  auto a = Make();
  ASSERT_TRUE(a.ok()) << a.status();
  agent_ = *std::move(a);
  ASSERT_TRUE(agent_->Start(*store_).ok());
  ASSERT_TRUE(WaitFor([&] { return Slot0(*agent_).state == FenceState::kReady; }))
      << FenceStateName(Slot0(*agent_).state);
  EXPECT_EQ(Slot0(*agent_).epoch, 6u);
  absl::StatusOr<nlohmann::json> st = agent_->StatusJson();
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ((*st)["fake"], true) << st->dump();
  EXPECT_EQ((*st)["slots"][0]["fence"]["state"], "ready") << st->dump();
  EXPECT_EQ((*st)["agent"]["pid"], agent_->child_pid()) << st->dump();
  // The keepalive: health lines every 100 ms.
  const std::string pid = std::to_string(agent_->child_pid());
  EXPECT_TRUE(WaitFor([&] {
    std::string l = LinesOf(pid);
    size_t n = 0;
    for (size_t p = l.find("\"health\""); p != std::string::npos;
         p = l.find("\"health\"", p + 1)) {
      ++n;
    }
    return n >= 3;
  })) << LinesOf(pid);
  agent_->Shutdown();
  EXPECT_EQ(agent_->child_pid(), 0);
  EXPECT_NE(LinesOf(pid).find("\"shutdown\""), std::string::npos) << LinesOf(pid);
  EXPECT_EQ(Slot0(*agent_).state, FenceState::kReleased);
}

TEST_F(AgentSupervisorTest, DeadChildReleasesAtOnceAndIsRestartedWithDrains) {
  auto a = Make();
  ASSERT_TRUE(a.ok()) << a.status();
  agent_ = *std::move(a);
  ASSERT_TRUE(agent_->Start(*store_).ok());
  ASSERT_TRUE(WaitFor([&] { return Slot0(*agent_).state == FenceState::kReady; }));
  ASSERT_TRUE(agent_->Drain(0, true).ok());
  const int first = agent_->child_pid();
  ASSERT_GT(first, 0);
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  // Released within a moment, before any restart (back-off 100 ms).
  EXPECT_TRUE(WaitFor([&] { return Slot0(*agent_).state == FenceState::kReleased; }, 1));
  // A new child, a new holding under a larger epoch, the drain replayed.
  ASSERT_TRUE(WaitFor([&] {
    return agent_->starts() == 2 && Slot0(*agent_).state == FenceState::kReady;
  })) << agent_->starts() << " " << FenceStateName(Slot0(*agent_).state);
  EXPECT_EQ(Slot0(*agent_).epoch, 7u);
  ASSERT_EQ(Starts().size(), 2u);
  const std::string second = Starts()[1];
  EXPECT_NE(second, std::to_string(first));
  EXPECT_TRUE(WaitFor([&] {
    return LinesOf(second).find("\"drain\"") != std::string::npos;
  })) << LinesOf(second);
}

// The child's death is its exit, not the EOF on its link: a process the
// child started may hold the link's descriptor open after the child died
// (the old supervisor waited for the EOF only, so its slots stayed served by
// no agent and it was never restarted).
TEST_F(AgentSupervisorTest, DeadChildIsSeenAlthoughItsLinkStaysOpen) {
  ::setenv("FAKE_AGENT_MODE", "orphan", 1);
  auto a = Make();
  ASSERT_TRUE(a.ok()) << a.status();
  agent_ = *std::move(a);
  ASSERT_TRUE(agent_->Start(*store_).ok());
  ASSERT_TRUE(WaitFor([&] { return Slot0(*agent_).state == FenceState::kReady; }));
  ASSERT_TRUE(WaitFor([&] { return std::atoi(ReadFile(dir_ + "/orphan").c_str()) > 0; }));
  const int first = agent_->child_pid();
  ASSERT_GT(first, 0);
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  EXPECT_TRUE(WaitFor([&] { return Slot0(*agent_).state == FenceState::kReleased; }, 1));
  EXPECT_TRUE(WaitFor([&] {
    return agent_->starts() == 2 && Slot0(*agent_).state == FenceState::kReady;
  })) << agent_->starts() << " " << FenceStateName(Slot0(*agent_).state);
}

TEST_F(AgentSupervisorTest, ChildThatCannotStartFailsStart) {
  ::setenv("FAKE_AGENT_MODE", "fail", 1);
  auto a = Make();
  ASSERT_TRUE(a.ok()) << a.status();
  agent_ = *std::move(a);
  absl::Status s = agent_->Start(*store_);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("exited"), std::string::npos) << s;
  EXPECT_EQ(agent_->child_pid(), 0);
}

TEST_F(AgentSupervisorTest, ChildOfAnotherProtocolVersionFailsStart) {
  ::setenv("FAKE_AGENT_MODE", "version", 1);
  auto a = Make();
  ASSERT_TRUE(a.ok()) << a.status();
  agent_ = *std::move(a);
  absl::Status s = agent_->Start(*store_);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("agent protocol version 2 from the agent process"),
            std::string::npos) << s;
  EXPECT_NE(s.message().find("expected 1"), std::string::npos) << s;
  EXPECT_EQ(agent_->child_pid(), 0);
  // Nothing it said before is trusted: no slot is served.
  EXPECT_NE(Slot0(*agent_).state, FenceState::kReady);
}

TEST_F(AgentSupervisorTest, MissingBinaryIsNotFound) {
  auto config = ParseEmbeddedAgentConfig(absl::StrCat(
      "node_id: 1\ninterface: eth0\nservice_addresses: [10.0.0.1/24]\n"
      "key_file: ", dir_, "/key\n"
      "peers: [{id: 1, priority: 1, address: \"127.0.0.1:7946\"}]\n"));
  ASSERT_TRUE(config.ok()) << config.status();
  AgentSupervisorOptions options;
  options.binary = dir_ + "/no-such-binary";
  auto a = AgentSupervisor::Create(*std::move(config), options);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kNotFound) << a.status();
}

}  // namespace
}  // namespace baton::framework

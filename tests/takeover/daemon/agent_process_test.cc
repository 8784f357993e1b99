// The server's end of a supervised agent process (takeover/daemon/agent_process.h) against a
// scripted child (agent_process_child.sh): messages decoded in order however the bytes arrive, a
// line that does not decode skipped, an overlong line ends the link, the exit seen and reaped,
// Send after the link closed refused. Real processes, no root.
#include "takeover/daemon/agent_process.h"

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "gtest/gtest.h"

namespace baton::takeover {
namespace {

// One child on its own io_context, what its handlers saw.
struct ChildRun {
  boost::asio::io_context io;
  std::shared_ptr<AgentProcess> child;
  std::vector<agent_link::AgentMessage> messages;
  std::optional<std::string> link_end;
  std::optional<int> exit_status;

  absl::Status Spawn(const char* mode) {
    ::setenv("AGENT_CHILD_MODE", mode, 1);
    absl::StatusOr<std::shared_ptr<AgentProcess>> p = AgentProcess::Spawn(
        io, BATON_AGENT_CHILD,
        {.on_message = [this](agent_link::AgentMessage& m) { messages.push_back(m); },
         .on_link_end = [this](const std::string& why) { link_end = why; },
         .on_exit = [this](int status) { exit_status = status; }});
    if (!p.ok()) return p.status();
    child = *std::move(p);
    return absl::OkStatus();
  }
  // Runs the loop until `done` or 10 s.
  bool RunUntil(const std::function<bool()>& done) {
    boost::asio::steady_timer limit(io, std::chrono::seconds(10));
    bool timed_out = false;
    limit.async_wait([&](const boost::system::error_code& ec) { timed_out = !ec; });
    while (!done() && !timed_out) io.run_one();
    return done();
  }
};

TEST(AgentProcessTest, MessagesArriveDecodedInOrderAndTheExitIsReaped) {
  ChildRun r;
  ASSERT_TRUE(r.Spawn("lines").ok());
  ASSERT_GT(r.child->pid(), 0);
  ASSERT_TRUE(r.RunUntil([&] { return r.messages.size() == 3; }));
  ASSERT_TRUE(std::holds_alternative<agent_link::Started>(r.messages[0]));
  const auto* slot = std::get_if<agent_link::SlotChange>(&r.messages[1]);
  ASSERT_NE(slot, nullptr);
  EXPECT_EQ(slot->slot, 2u);
  EXPECT_EQ(slot->address, "10.0.0.3");
  EXPECT_TRUE(slot->held);
  EXPECT_EQ(slot->epoch, 9u);
  const auto* reply = std::get_if<agent_link::StatusReply>(&r.messages[2]);  // "not json" skipped
  ASSERT_NE(reply, nullptr);
  EXPECT_EQ(reply->id, 4u);
  EXPECT_FALSE(r.link_end.has_value());
  EXPECT_FALSE(r.exit_status.has_value());
  // The child waits for the link's end, then exits 7.
  r.child->CloseLink("test closes the link");
  EXPECT_FALSE(r.child->Send(agent_link::Encode(agent_link::Health{true})));
  ASSERT_TRUE(r.RunUntil([&] { return r.link_end && r.exit_status; }));
  EXPECT_EQ(*r.link_end, "test closes the link");
  ASSERT_TRUE(WIFEXITED(*r.exit_status));
  EXPECT_EQ(WEXITSTATUS(*r.exit_status), 7);
  EXPECT_TRUE(r.child->exited());
}

TEST(AgentProcessTest, LineLongerThanTheBoundEndsTheLink) {
  ChildRun r;
  ASSERT_TRUE(r.Spawn("long").ok());
  ASSERT_TRUE(r.RunUntil([&] { return r.link_end.has_value(); }));
  EXPECT_NE(r.link_end->find("longer than 4194304 bytes"), std::string::npos) << *r.link_end;
  EXPECT_TRUE(r.messages.empty());
  EXPECT_FALSE(r.exit_status.has_value());  // it lingers ...
  r.child->Kill();                          // ... until the owner ends it
  ASSERT_TRUE(r.RunUntil([&] { return r.exit_status.has_value(); }));
  ASSERT_TRUE(WIFSIGNALED(*r.exit_status));
  EXPECT_EQ(WTERMSIG(*r.exit_status), SIGKILL);
}

TEST(AgentProcessTest, SentLinesReachTheChild) {
  const std::string out = ::testing::TempDir() + "/agent_process_echo";
  ::setenv("AGENT_CHILD_OUT", out.c_str(), 1);
  ChildRun r;
  ASSERT_TRUE(r.Spawn("echo").ok());
  const std::string config = agent_link::Encode(agent_link::Config{agent_link::kVersion, "x: 1"});
  const std::string drain = agent_link::Encode(agent_link::Drain{3, true});
  EXPECT_TRUE(r.child->Send(config));
  EXPECT_TRUE(r.child->Send(drain));
  r.child->CloseLink("done");
  ASSERT_TRUE(r.RunUntil([&] { return r.link_end && r.exit_status; }));
  std::ifstream f(out);
  std::stringstream got;
  got << f.rdbuf();
  EXPECT_EQ(got.str(), config + drain);
  std::remove(out.c_str());
}

TEST(AgentProcessTest, ClosedLinkAndLivingProcessAreSeparateEvents) {
  auto r = std::make_unique<ChildRun>();
  ASSERT_TRUE(r->Spawn("linger").ok());
  ASSERT_TRUE(r->RunUntil([&] { return r->link_end.has_value(); }));
  EXPECT_EQ(*r->link_end, "the agent process closed the link");
  EXPECT_FALSE(r->child->exited());
  EXPECT_FALSE(r->exit_status.has_value());
  // An owner that goes away (its io_context with it) leaves no child behind.
  const pid_t pid = r->child->pid();
  r.reset();
  EXPECT_NE(::kill(pid, 0), 0);  // gone, and reaped: no zombie left to signal
}

TEST(AgentProcessTest, BinaryThatCannotRunIsUnavailable) {
  boost::asio::io_context io;
  absl::StatusOr<std::shared_ptr<AgentProcess>> p =
      AgentProcess::Spawn(io, "/nonexistent/baton-takeoverd", {});
  EXPECT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("cannot start /nonexistent/baton-takeoverd"),
            std::string::npos)
      << p.status();
}

}  // namespace
}  // namespace baton::takeover

// The server <-> supervised agent protocol (takeover/daemon/agent_link_protocol.h): every message
// survives a round trip unchanged, the lines are the documented wire format (a stand-in agent in
// Python speaks it, tests/integration/kv_agent_fake_agent.py), another protocol version is
// refused with a message naming both versions, and garbage is refused, never trusted.
#include "takeover/daemon/agent_link_protocol.h"

#include <string>
#include <string_view>
#include <variant>

#include "gtest/gtest.h"

namespace baton::takeover::agent_link {
namespace {

// Encodes, checks the line shape, decodes.
template <class Message>
Message RoundTripWith(const Message& m,
                      absl::StatusOr<Message> (*decode)(std::string_view line)) {
  const std::string line = Encode(m);
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << line;
  absl::StatusOr<Message> back = decode(std::string_view(line).substr(0, line.size() - 1));
  EXPECT_TRUE(back.ok()) << back.status() << " " << line;
  return back.ok() ? *back : Message{};
}
ServerMessage RoundTrip(const ServerMessage& m) { return RoundTripWith(m, &DecodeServerMessage); }
AgentMessage RoundTrip(const AgentMessage& m) { return RoundTripWith(m, &DecodeAgentMessage); }

TEST(AgentLinkProtocol, ServerMessagesRoundTrip) {
  // A YAML text with a newline and quotes stays on one line and comes back byte for byte.
  const std::string yaml = "node_id: 1\npeers: [{address: \"127.0.0.1:7946\"}]\n";
  ServerMessage m = RoundTrip(Config{kVersion, yaml});
  ASSERT_TRUE(std::holds_alternative<Config>(m));
  EXPECT_EQ(std::get<Config>(m).version, kVersion);
  EXPECT_EQ(std::get<Config>(m).yaml, yaml);

  for (bool healthy : {true, false}) {
    m = RoundTrip(Health{healthy});
    ASSERT_TRUE(std::holds_alternative<Health>(m));
    EXPECT_EQ(std::get<Health>(m).healthy, healthy);
  }

  m = RoundTrip(Drain{7u, false});
  ASSERT_TRUE(std::holds_alternative<Drain>(m));
  EXPECT_EQ(std::get<Drain>(m).slot, 7u);
  EXPECT_FALSE(std::get<Drain>(m).drain);
  m = RoundTrip(Drain{std::nullopt, true});  // every slot
  ASSERT_TRUE(std::holds_alternative<Drain>(m));
  EXPECT_FALSE(std::get<Drain>(m).slot.has_value());
  EXPECT_TRUE(std::get<Drain>(m).drain);

  m = RoundTrip(StatusRequest{UINT64_MAX});
  ASSERT_TRUE(std::holds_alternative<StatusRequest>(m));
  EXPECT_EQ(std::get<StatusRequest>(m).id, UINT64_MAX);

  EXPECT_TRUE(std::holds_alternative<Shutdown>(RoundTrip(Shutdown{})));

  m = RoundTrip(Closed{42});
  ASSERT_TRUE(std::holds_alternative<Closed>(m));
  EXPECT_EQ(std::get<Closed>(m).id, 42u);
}

TEST(AgentLinkProtocol, AgentMessagesRoundTrip) {
  AgentMessage m = RoundTrip(Started{});
  ASSERT_TRUE(std::holds_alternative<Started>(m));
  EXPECT_EQ(std::get<Started>(m).version, kVersion);

  m = RoundTrip(SlotChange{3, "10.0.0.3", true, 17});
  ASSERT_TRUE(std::holds_alternative<SlotChange>(m));
  const SlotChange& s = std::get<SlotChange>(m);
  EXPECT_EQ(s.slot, 3u);
  EXPECT_EQ(s.address, "10.0.0.3");
  EXPECT_TRUE(s.held);
  EXPECT_EQ(s.epoch, 17u);

  const nlohmann::json status = {{"node_id", 1}, {"slots", {{{"slot", 0}, {"held", true}}}}};
  m = RoundTrip(StatusReply{9, status});
  ASSERT_TRUE(std::holds_alternative<StatusReply>(m));
  EXPECT_EQ(std::get<StatusReply>(m).id, 9u);
  EXPECT_EQ(std::get<StatusReply>(m).status, status);

  m = RoundTrip(Releasing{5, 2, "fd00::2", UINT64_MAX});
  ASSERT_TRUE(std::holds_alternative<Releasing>(m));
  const Releasing& r = std::get<Releasing>(m);
  EXPECT_EQ(r.id, 5u);
  EXPECT_EQ(r.slot, 2u);
  EXPECT_EQ(r.address, "fd00::2");
  EXPECT_EQ(r.epoch, UINT64_MAX);
}

// The lines a peer of another language (the Python stand-in agent) reads and writes.
TEST(AgentLinkProtocol, LinesAreTheDocumentedFormat) {
  EXPECT_EQ(Encode(ServerMessage{Health{true}}), "{\"healthy\":true,\"op\":\"health\"}\n");
  EXPECT_EQ(Encode(ServerMessage{Drain{std::nullopt, true}}),
            "{\"drain\":true,\"op\":\"drain\",\"slot\":null}\n");
  EXPECT_EQ(Encode(AgentMessage{Started{}}), "{\"ev\":\"started\",\"version\":1}\n");
  absl::StatusOr<AgentMessage> slot = DecodeAgentMessage(
      R"({"ev": "slot", "slot": 0, "address": "10.0.0.1", "held": true, "epoch": 6})");
  ASSERT_TRUE(slot.ok()) << slot.status();
  EXPECT_EQ(std::get<SlotChange>(*slot).epoch, 6u);
}

TEST(AgentLinkProtocol, AnotherVersionIsRefusedNamingBoth) {
  EXPECT_TRUE(CheckVersion(kVersion, "the server").ok());
  absl::Status s = CheckVersion(kVersion + 1, "the server");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(), "agent protocol version 2 from the server, expected 1");

  // A config without a version is the protocol before versions: version 0, refused.
  absl::StatusOr<ServerMessage> old = DecodeServerMessage(R"({"op":"config","yaml":"x"})");
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(std::get<Config>(*old).version, 0u);
  s = CheckVersion(std::get<Config>(*old).version, "the server");
  EXPECT_EQ(s.message(), "agent protocol version 0 from the server, expected 1");

  absl::StatusOr<AgentMessage> newer = DecodeAgentMessage(R"({"ev":"started","version":7})");
  ASSERT_TRUE(newer.ok()) << newer.status();
  EXPECT_EQ(std::get<Started>(*newer).version, 7u);
}

TEST(AgentLinkProtocol, UnknownMessageNamesAreUnimplemented) {
  // A newer peer's message: the receiver logs it and goes on.
  EXPECT_EQ(DecodeServerMessage(R"({"op":"reticulate","id":1})").status().code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_EQ(DecodeAgentMessage(R"({"ev":"reticulated"})").status().code(),
            absl::StatusCode::kUnimplemented);
  // Each direction knows only its own names.
  EXPECT_FALSE(DecodeAgentMessage(R"({"op":"health","healthy":true})").ok());
  EXPECT_FALSE(DecodeServerMessage(R"({"ev":"started","version":1})").ok());
}

TEST(AgentLinkProtocol, GarbageIsInvalidArgument) {
  for (const char* line : {
           "",
           "garbage",
           "[1,2]",
           "\"op\"",
           R"({"op":7})",
           R"({"healthy":true})",                              // no name
           R"({"op":"health"})",                               // missing field
           R"({"op":"health","healthy":"yes"})",               // wrong type
           R"({"op":"drain","slot":-1,"drain":true})",         // negative slot
           R"({"op":"drain","slot":4294967296,"drain":true})", // slot beyond 32 bits
           R"({"op":"status","id":1.5})",
           R"({"op":"config","version":1})",                   // no yaml
           R"({"op":"config","version":"1","yaml":""})",
       }) {
    EXPECT_EQ(DecodeServerMessage(line).status().code(), absl::StatusCode::kInvalidArgument)
        << line;
  }
  for (const char* line : {
           R"({"ev":"slot","slot":0,"address":"10.0.0.1","held":true})",  // no epoch
           R"({"ev":"status","id":1,"status":null})",
           R"({"ev":"status","id":1,"status":[1]})",
           R"({"ev":"releasing","id":1,"slot":0,"address":7,"epoch":1})",
           R"({"ev":"started","version":-1})",
       }) {
    EXPECT_EQ(DecodeAgentMessage(line).status().code(), absl::StatusCode::kInvalidArgument)
        << line;
  }
}

TEST(AgentLinkProtocol, InputIsBounded) {
  // Too long: refused before parsing.
  const std::string yaml(kMaxLineBytes, 'x');
  const std::string line = Encode(ServerMessage{Config{kVersion, yaml}});
  absl::StatusOr<ServerMessage> m = DecodeServerMessage(line.substr(0, line.size() - 1));
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  // Deep nesting (would overflow a stack when printed or copied): refused.
  std::string deep = R"({"ev":"status","id":1,"status":{"a":)";
  for (int i = 0; i < 10000; ++i) deep += "[";
  for (int i = 0; i < 10000; ++i) deep += "]";
  deep += "}}";
  absl::StatusOr<AgentMessage> a = DecodeAgentMessage(deep);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(a.status().message().find("nested"), std::string::npos) << a.status();
}

}  // namespace
}  // namespace baton::takeover::agent_link

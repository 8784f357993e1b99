// The status-socket protocol (takeover/daemon/status_protocol.h): round trips, the wire form old
// clients and scripts send, versions, bounds and garbage.
#include "takeover/daemon/status_protocol.h"

#include <string>
#include <variant>

#include "gtest/gtest.h"

namespace baton::takeover::status_protocol {
namespace {

TEST(StatusProtocolTest, RequestsRoundTrip) {
  absl::StatusOr<Request> s = DecodeRequest(Encode(StatusRequest{}));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(std::holds_alternative<StatusRequest>(*s));

  DrainRequest d;
  d.slot = 3;
  d.undo = true;
  absl::StatusOr<Request> r = DecodeRequest(Encode(d));
  ASSERT_TRUE(r.ok()) << r.status();
  const auto* got = std::get_if<DrainRequest>(&*r);
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->slot, 3u);
  EXPECT_TRUE(got->undo);

  DrainRequest all;  // every slot
  r = DecodeRequest(Encode(all));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(std::get<DrainRequest>(*r).slot.has_value());
  EXPECT_FALSE(std::get<DrainRequest>(*r).undo);
}

// What `nc -U` users, scripts and clients before versions send keeps working (version 0).
TEST(StatusProtocolTest, BlankAndUnversionedRequestsAreServed) {
  for (const char* line : {"", "  \r", R"({"op":"status"})"}) {
    absl::StatusOr<Request> r = DecodeRequest(line);
    ASSERT_TRUE(r.ok()) << line << ": " << r.status();
    EXPECT_TRUE(std::holds_alternative<StatusRequest>(*r)) << line;
  }
  absl::StatusOr<Request> r = DecodeRequest(R"({"op":"drain","slot":1,"undo":false})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(std::get<DrainRequest>(*r).slot, 1u);
  EXPECT_EQ(std::get<DrainRequest>(*r).version, 0u);
}

TEST(StatusProtocolTest, AnotherVersionIsRefusedWithAClearMessage) {
  absl::StatusOr<Request> r = DecodeRequest(R"({"op":"status","version":7})");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(std::string(r.status().message()),
            "status protocol version 7 from the client, expected " + std::to_string(kVersion));
}

TEST(StatusProtocolTest, GarbageIsRefusedNeverThrown) {
  for (const char* line : {"{", "[1,2]", "42", R"({"op":7})", R"({"slot":1})",
                           R"({"op":"drain","slot":-1})", R"({"op":"drain","slot":"1"})",
                           R"({"op":"drain","slot":4294967296})", R"({"op":"drain","undo":1})",
                           R"({"op":"status","version":-1})"}) {
    EXPECT_EQ(DecodeRequest(line).status().code(), absl::StatusCode::kInvalidArgument) << line;
  }
  EXPECT_EQ(DecodeRequest(R"({"op":"reboot"})").status().code(), absl::StatusCode::kUnimplemented);
  const std::string huge = R"({"op":"status","pad":")" + std::string(kMaxRequestBytes, 'x') + "\"}";
  EXPECT_EQ(DecodeRequest(huge).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(StatusProtocolTest, RepliesDecodeToTheDocumentOrTheDaemonsError) {
  absl::StatusOr<nlohmann::json> ok = DecodeReply(R"({"node_id":1,"slots":[]})" "\n");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)["node_id"], 1);

  absl::StatusOr<nlohmann::json> refused = DecodeReply(ErrorReply("slot out of range").dump());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("slot out of range"), absl::string_view::npos);

  EXPECT_EQ(DecodeReply("not json").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeReply("[]").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeReply(std::string(kMaxReplyBytes + 1, ' ')).status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace baton::takeover::status_protocol

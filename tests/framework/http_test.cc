// Unit tests of the HTTP front end's pure parts: the router and the
// Idempotency-Key header parser.
#include "framework/http_server.h"

#include "gtest/gtest.h"

namespace baton::framework {
namespace {

std::shared_ptr<Handler> Dummy() {
  return MakeHandler([](const Request&, Transaction&) -> absl::StatusOr<Reply> {
    return Reply::Text(absl::StatusCode::kOk, "");
  });
}

TEST(RouterTest, MatchesMethodAndPatternWithDecodedParams) {
  Router r;
  ASSERT_TRUE(r.Add("GET", "/kv/{key}", Dummy()).ok());
  ASSERT_TRUE(r.Add("PUT", "/kv/{key}", Dummy()).ok());
  ASSERT_TRUE(r.Add("POST", "/kv/{key}/incr", Dummy()).ok());
  EXPECT_EQ(r.Add("GET", "/kv/{key}", Dummy()).code(),
            absl::StatusCode::kAlreadyExists);

  auto m = r.Find("GET", "/kv/a%20b");
  ASSERT_EQ(m.result, Router::Match::Result::kFound);
  EXPECT_EQ(m.pattern, "/kv/{key}");
  EXPECT_EQ(m.params["key"], "a b");

  m = r.Find("POST", "/kv/x/incr");
  ASSERT_EQ(m.result, Router::Match::Result::kFound);
  EXPECT_EQ(m.params["key"], "x");

  m = r.Find("DELETE", "/kv/x");
  ASSERT_EQ(m.result, Router::Match::Result::kWrongMethod);
  EXPECT_EQ(m.allowed_methods, (std::vector<std::string>{"GET", "PUT"}));

  EXPECT_EQ(r.Find("GET", "/kv/").result, Router::Match::Result::kNoRoute);
  EXPECT_EQ(r.Find("GET", "/nope").result, Router::Match::Result::kNoRoute);
  EXPECT_EQ(r.Find("GET", "/kv/%zz").result, Router::Match::Result::kNoRoute);
}

TEST(IdempotencyKeyTest, StructuredStringAndLenientToken) {
  EXPECT_EQ(*ParseIdempotencyKey("\"8e03978e-40d5-43e8-bc93-6894a57f9324\""),
            "8e03978e-40d5-43e8-bc93-6894a57f9324");
  EXPECT_EQ(*ParseIdempotencyKey(" \"a \\\"q\\\" \\\\ b\" "), "a \"q\" \\ b");
  EXPECT_EQ(*ParseIdempotencyKey("\"k\";p=1"), "k");
  EXPECT_EQ(*ParseIdempotencyKey("bare-token_1"), "bare-token_1");
  for (const char* bad : {"", "\"\"", "\"unterminated", "\"a\" junk",
                          "two words", "\"bad\\escape\""}) {
    EXPECT_FALSE(ParseIdempotencyKey(bad).ok()) << bad;
  }
  EXPECT_FALSE(ParseIdempotencyKey(std::string(256, 'k')).ok());
}

TEST(HttpStatusTest, MapsCodes) {
  EXPECT_EQ(HttpStatusForCode(absl::StatusCode::kOk), 200);
  EXPECT_EQ(HttpStatusForCode(absl::StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusForCode(absl::StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusForCode(absl::StatusCode::kFailedPrecondition), 412);
  EXPECT_EQ(HttpStatusForCode(absl::StatusCode::kUnavailable), 503);
}

}  // namespace
}  // namespace baton::framework

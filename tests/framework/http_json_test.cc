// JSON routes (framework/http_json.h) through the real request pipeline on
// RocksDB: the body is parsed and bounded before the handler runs, bad bodies
// are answered 400 without running it, the handler's JsonReply is a reply
// like any other (committed with its writes, replayed byte for byte), and a
// returned Status discards the writes. The docs' example (docs/framework.md,
// "JSON routes") is the block below, checked word for word.
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "framework/clock.h"
#include "framework/http_json.h"
#include "framework/http_server.h"
#include "framework/pipeline.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "storage/rocksdb/rocksdb_store.h"
#include "tests/framework/docs_code.h"

namespace baton::framework {
namespace docs_example {

// [docs:json-route]
using baton::framework::JsonReply;
using baton::framework::MakeJsonHandler;
using baton::framework::Request;
using baton::framework::Transaction;

// POST /counters/{name}/incr {"by": 2} -> {"name": "a", "value": 7}
absl::StatusOr<JsonReply> IncrJson(const nlohmann::json& body,
                                   const Request& req, Transaction& txn) {
  const nlohmann::json by = body.value("by", nlohmann::json(1));
  if (!by.is_number_integer() || by.get<int64_t>() < 0 ||
      by.get<int64_t>() > 1000000) {
    return JsonReply::Error(absl::StatusCode::kInvalidArgument,
                            "\"by\" must be an integer in [0, 1000000]");
  }
  const std::string key = "counter/" + std::string(req.Param("name"));
  auto cur = txn.Get(key);
  if (!cur.ok()) return cur.status();  // 503: the client retries
  int64_t n = 0;
  if (cur->present() && !absl::SimpleAtoi(cur->value, &n)) {
    return absl::DataLossError("counter " + key + " is not a number");
  }
  n += by.get<int64_t>();
  if (auto s = txn.Put(key, std::to_string(n)); !s.ok()) return s;
  return JsonReply::Ok({{"name", req.Param("name")}, {"value", n}});
}

absl::Status AddCounterRoutes(baton::framework::Router& router) {
  return router.Add("POST", "/counters/{name}/incr", MakeJsonHandler(IncrJson));
}
// [docs:json-route-end]

}  // namespace docs_example

namespace {

using json = nlohmann::json;

class HttpJsonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           absl::StrCat("baton_http_json_", ::getpid(), "_", counter_++);
    std::filesystem::remove_all(dir_);
    storage::RocksDbOptions so;
    so.path = dir_.string();
    so.sync = false;
    auto opened = storage::OpenRocksDbStore(so);
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = *std::move(opened);
    pipeline_ = std::make_unique<RequestPipeline>(*store_, RealClock());
  }
  void TearDown() override {
    pipeline_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Runs `handler` on POST `path` with `body`.
  absl::StatusOr<PipelineResult> Run(Handler& handler, const std::string& body,
                                     const RequestId& id = RequestId::None(),
                                     const std::string& name = "a") {
    Request r;
    r.operation = "POST /counters/{name}/incr";
    r.path = "/counters/" + name + "/incr";
    r.params = {{"name", name}};
    r.body = body;
    return pipeline_->Execute(id, r, handler);
  }
  std::string Stored(const std::string& key) {
    auto v = store_->Get(key);
    EXPECT_TRUE(v.ok());
    return v.ok() ? v->value : "";
  }

  static inline int counter_ = 0;
  std::filesystem::path dir_;
  std::unique_ptr<storage::StableStore> store_;
  std::unique_ptr<RequestPipeline> pipeline_;
};

TEST_F(HttpJsonTest, TheDocsRouteCountsAndAnswersJson) {
  Router router;
  ASSERT_TRUE(docs_example::AddCounterRoutes(router).ok());
  Router::Match m = router.Find("POST", "/counters/a/incr");
  ASSERT_EQ(m.result, Router::Match::Result::kFound);
  auto r = Run(*m.handler, R"({"by": 5})", RequestId::Key("k1"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->reply.code, absl::StatusCode::kOk);
  EXPECT_EQ(r->reply.content_type, "application/json");
  EXPECT_EQ(r->reply.body, R"({"name":"a","value":5})");
  // The same id again: the saved bytes, not a second increment.
  auto again = Run(*m.handler, R"({"by": 5})", RequestId::Key("k1"));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(again->reply, r->reply);
  EXPECT_EQ(Stored("counter/a"), "5");
  auto bad = Run(*m.handler, R"({"by": "x"})");
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->reply.code, absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HttpStatusForCode(bad->reply.code), 400);
  EXPECT_EQ(json::parse(bad->reply.body)["error"]["code"], "invalid_argument");
}

TEST_F(HttpJsonTest, BadBodiesAre400WithoutRunningTheHandler) {
  std::atomic<int> runs{0};
  auto handler = MakeJsonHandler(
      [&](const json&, const Request&, Transaction&) -> absl::StatusOr<JsonReply> {
        ++runs;
        return JsonReply::Ok(json::object());
      });
  const std::string deep = std::string(65, '[') + std::string(65, ']');
  const std::pair<std::string, std::string> cases[] = {
      {"{", "request body: not valid JSON"},
      {"", "request body: not valid JSON"},
      {"[1,2]", "request body must be a JSON object"},
      {"42", "request body must be a JSON object"},
      {deep, "request body: JSON nested deeper than 64 levels"},
  };
  for (const auto& [body, message] : cases) {
    auto r = Run(*handler, body, RequestId::Key("bad"));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->reply.code, absl::StatusCode::kInvalidArgument) << body;
    EXPECT_EQ(r->reply.body,
              json({{"error", {{"code", "invalid_argument"}, {"message", message}}}})
                  .dump())
        << body;
  }
  EXPECT_EQ(runs.load(), 0);
}

TEST_F(HttpJsonTest, OptionsAdmitEmptyBodiesAndNonObjects) {
  json seen;
  auto echo = [&](const json& body, const Request&,
                  Transaction&) -> absl::StatusOr<JsonReply> {
    seen = body;
    return JsonReply::Ok(body);
  };
  JsonRouteOptions empty_ok;
  empty_ok.allow_empty = true;
  auto r = Run(*MakeJsonHandler(echo, empty_ok), "");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->reply.body, "{}");
  JsonRouteOptions any;
  any.require_object = false;
  r = Run(*MakeJsonHandler(echo, any), "[1,\"x\"]");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->reply.code, absl::StatusCode::kOk);
  EXPECT_EQ(seen, json::array({1, "x"}));
  JsonRouteOptions shallow;
  shallow.limits.max_depth = 2;
  r = Run(*MakeJsonHandler(echo, shallow), R"({"a":{"b":{}}})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->reply.code, absl::StatusCode::kInvalidArgument);
}

TEST_F(HttpJsonTest, AnErrorReplyIsCommittedAndReplayedAStatusIsNot) {
  std::atomic<int> runs{0};
  // Records the attempt, then refuses: the refusal is the answer.
  auto refuse = MakeJsonHandler(
      [&](const json&, const Request&, Transaction& txn) -> absl::StatusOr<JsonReply> {
        ++runs;
        if (auto s = txn.Put("attempts", "1"); !s.ok()) return s;
        return JsonReply::Error(absl::StatusCode::kFailedPrecondition,
                                "sold out", "sold_out", {{"left", 0}});
      });
  auto r = Run(*refuse, "{}", RequestId::Key("r"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->reply.code, absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r->reply.body,
            R"({"error":{"code":"sold_out","message":"sold out"},"left":0})");
  EXPECT_EQ(Stored("attempts"), "1");
  auto again = Run(*refuse, "{}", RequestId::Key("r"));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(again->reply, r->reply);
  EXPECT_EQ(runs.load(), 1);

  auto fail = MakeJsonHandler(
      [&](const json&, const Request&, Transaction& txn) -> absl::StatusOr<JsonReply> {
        if (auto s = txn.Put("written", "1"); !s.ok()) return s;
        return absl::UnavailableError("try later");
      });
  auto f = Run(*fail, "{}", RequestId::Key("f"));
  EXPECT_EQ(f.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Stored("written"), "");
  // Default error name: the code's.
  EXPECT_EQ(JsonReply::Error(absl::StatusCode::kNotFound, "gone").body.dump(),
            R"({"error":{"code":"not_found","message":"gone"}})");
}

TEST(HttpJsonDocsTest, TheDocsExampleIsThisFilesCode) {
  EXPECT_TRUE(baton::testing::DocsShowMarkedCode(BATON_FRAMEWORK_DOCS,
                                                 BATON_JSON_TEST_SOURCE, "json-route"));
}

}  // namespace
}  // namespace baton::framework

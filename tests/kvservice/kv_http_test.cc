// HTTP-level tests of the sample kv service: an in-process server on an
// ephemeral loopback port over a RocksDB store in a temp directory. Every
// route; every malformed request gets the right 4xx and changes nothing;
// keep-alive and pipelined requests are answered in order; slow clients are
// timed out.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>  // Before Asio: Boost 1.74 uses std::exchange without it.
#include <vector>

#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "framework/clock.h"
#include "framework/http_server.h"
#include "framework/pipeline.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "samples/kvservice/kv_service.h"
#include "storage/rocksdb/rocksdb_store.h"

namespace baton::kvservice {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using json = nlohmann::json;

struct Resp {
  int status = 0;
  std::string body;
  bool replayed = false;
  std::string allow;
  std::string retry_after;
  json Json() const { return json::parse(body, nullptr, false); }
};

// One client connection speaking raw bytes, reading Beast-parsed responses.
class Conn {
 public:
  explicit Conn(uint16_t port) : socket_(ioc_) {
    socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  }
  void Send(const std::string& raw) { net::write(socket_, net::buffer(raw)); }
  // Reads one response; status 0 if the connection closed instead.
  Resp Read() {
    http::response<http::string_body> res;
    beast::error_code ec;
    http::read(socket_, buffer_, res, ec);
    if (ec) return Resp{};
    return Resp{static_cast<int>(res.result_int()), res.body(),
                res["Idempotent-Replayed"] == "true",
                std::string(res[http::field::allow]),
                std::string(res[http::field::retry_after])};
  }
  // True if the server closed the connection (EOF) within `within`.
  bool ClosedWithin(std::chrono::milliseconds within) {
    socket_.non_blocking(false);
    struct timeval tv {
      static_cast<time_t>(within.count() / 1000),
          static_cast<suseconds_t>((within.count() % 1000) * 1000)
    };
    setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv,
               sizeof tv);
    char buf[256];
    for (;;) {
      ssize_t n = ::recv(socket_.native_handle(), buf, sizeof buf, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }

 private:
  net::io_context ioc_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

std::string Req(const std::string& method, const std::string& target,
                const std::string& body = "",
                const std::string& extra_headers = "") {
  std::string r = method + " " + target + " HTTP/1.1\r\nHost: test\r\n" +
                  extra_headers;
  if (!body.empty() || method == "PUT" || method == "POST") {
    r += "Content-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n";
  }
  return r + "\r\n" + body;
}

std::string Key(const std::string& k) { return "Idempotency-Key: \"" + k + "\"\r\n"; }

class KvHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("baton-kvhttp-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    storage::RocksDbOptions so;
    so.path = dir_.string();
    so.sync = false;  // Durability is the crash test's subject, not this one's.
    auto store = storage::OpenRocksDb(so);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    framework::PipelineOptions po;
    po.in_flight_wait = absl::Milliseconds(200);
    pipeline_ = std::make_unique<framework::RequestPipeline>(
        *store_, framework::RealClock(), po);
    Restart([](framework::HttpServerOptions&) {});
  }
  // (Re)starts the server with the fixture's options as changed by `edit`.
  void Restart(const std::function<void(framework::HttpServerOptions&)>& edit) {
    if (server_) server_->Stop();
    server_.reset();
    framework::Router router;
    ASSERT_TRUE(RegisterKvRoutes(router).ok());
    framework::HttpServerOptions ho;
    ho.port = 0;
    ho.worker_threads = 8;
    ho.max_header_bytes = 2048;
    ho.max_body_bytes = 4096;
    ho.idle_timeout = absl::Milliseconds(400);
    ho.read_timeout = absl::Milliseconds(400);
    edit(ho);
    auto server = framework::StartHttpServer(ho, std::move(router), *pipeline_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  void TearDown() override {
    if (server_) server_->Stop();
    server_.reset();
    pipeline_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  Resp Call(const std::string& raw) {
    Conn c(server_->port());
    c.Send(raw);
    return c.Read();
  }
  // The stored value of `key`, or null when absent.
  json Value(const std::string& key) {
    Resp r = Call(Req("GET", "/kv/" + key));
    if (r.status == 404) return nullptr;
    EXPECT_EQ(r.status, 200) << r.body;
    return r.Json()["value"];
  }

  std::filesystem::path dir_;
  std::unique_ptr<storage::RocksDbStore> store_;
  std::unique_ptr<framework::RequestPipeline> pipeline_;
  std::unique_ptr<framework::HttpServer> server_;
};

TEST_F(KvHttpTest, EveryRouteWorks) {
  Resp r = Call(Req("PUT", "/kv/a", R"({"value":{"x":[1,2]}})", Key("p1")));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json(), json::parse(R"({"key":"a","value":{"x":[1,2]},"version":1})"));
  r = Call(Req("GET", "/kv/a"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Json()["version"], 1);

  r = Call(Req("POST", "/kv/n/incr", R"({"by":5})", Key("i1")));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Json()["value"], 5);
  r = Call(Req("POST", "/kv/n/incr", "", Key("i2")));  // Default by: 1.
  EXPECT_EQ(r.Json()["value"], 6);

  r = Call(Req("POST", "/kv/s/append", R"({"value":"ab"})", Key("a1")));
  r = Call(Req("POST", "/kv/s/append", R"({"value":"cd"})", Key("a2")));
  EXPECT_EQ(r.Json()["value"], "abcd");

  r = Call(Req("POST", "/kv/c/cas", R"({"expected":null,"value":1})", Key("c1")));
  EXPECT_EQ(r.status, 200) << r.body;
  r = Call(Req("POST", "/kv/c/cas", R"({"expected":7,"value":2})", Key("c2")));
  EXPECT_EQ(r.status, 412);
  EXPECT_EQ(r.Json()["current"], 1);
  r = Call(Req("POST", "/kv/c/cas", R"({"expected":1,"value":2})", Key("c3")));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Value("c"), 2);

  r = Call(Req("DELETE", "/kv/a", "", Key("d1")));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Value("a"), nullptr);
  r = Call(Req("DELETE", "/kv/a", "", Key("d2")));
  EXPECT_EQ(r.status, 404);
  // The first delete's retry gets its saved 200, not the current 404.
  r = Call(Req("DELETE", "/kv/a", "", Key("d1")));
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.replayed);
}

TEST_F(KvHttpTest, RetryIsReplayedAndReusedKeyIsRefused) {
  Resp first = Call(Req("POST", "/kv/n/incr", R"({"by":1})", Key("k")));
  ASSERT_EQ(first.status, 200);
  EXPECT_FALSE(first.replayed);
  Resp retry = Call(Req("POST", "/kv/n/incr", R"({"by":1})", Key("k")));
  EXPECT_EQ(retry.status, 200);
  EXPECT_TRUE(retry.replayed);
  EXPECT_EQ(retry.body, first.body);
  // Bare token form of the same key.
  retry = Call(Req("POST", "/kv/n/incr", R"({"by":1})", "Idempotency-Key: k\r\n"));
  EXPECT_TRUE(retry.replayed);
  Resp reused = Call(Req("POST", "/kv/n/incr", R"({"by":2})", Key("k")));
  EXPECT_EQ(reused.status, 422);
  EXPECT_EQ(reused.Json()["error"]["code"], "idempotency_key_reused");
  EXPECT_EQ(Value("n"), 1);

  // baton's own client headers, with an acknowledged watermark.
  const std::string c = "Baton-Client-Id: cl\r\nBaton-Seq: 1\r\n";
  EXPECT_EQ(Call(Req("POST", "/kv/n/incr", "", c)).status, 200);
  EXPECT_TRUE(Call(Req("POST", "/kv/n/incr", "", c)).replayed);
  EXPECT_EQ(Call(Req("POST", "/kv/n/incr", "",
                     "Baton-Client-Id: cl\r\nBaton-Seq: 2\r\nBaton-Ack: 1\r\n"))
                .status,
            200);
  EXPECT_EQ(Value("n"), 3);
}

TEST_F(KvHttpTest, BadRequestsGetTheRight4xxAndChangeNothing) {
  ASSERT_EQ(Call(Req("PUT", "/kv/n", R"({"value":1})")).status, 200);
  struct Case {
    std::string raw;
    int status;
  } cases[] = {
      {Req("GET", "/nope"), 404},
      {Req("GET", "/kv/n/incr"), 405},
      {Req("PATCH", "/kv/n", R"({"value":9})"), 405},
      {Req("PUT", "/kv/n", R"({"value":)"), 400},
      {Req("PUT", "/kv/n", R"([1,2])"), 400},
      {Req("PUT", "/kv/n", R"({"nope":9})"), 400},
      {Req("POST", "/kv/n/incr", R"({"by":"x"})"), 400},
      {Req("POST", "/kv/n/append", R"({"value":"x"})"), 412},
      {Req("POST", "/kv/n/incr", R"({"by":9223372036854775807})"), 412},
      {Req("POST", "/kv/n/cas", R"({"value":9})"), 400},
      {Req("PUT", "/kv/%FFfw", R"({"value":9})"), 400},
      {Req("POST", "/kv/n/incr", "", "Baton-Seq: 3\r\n"), 400},
      {Req("POST", "/kv/n/incr", "", "Baton-Client-Id: c\r\nBaton-Seq: x\r\n"), 400},
      {Req("POST", "/kv/n/incr", "", Key("z") + "Baton-Client-Id: c\r\nBaton-Seq: 1\r\n"), 400},
      {Req("POST", "/kv/n/incr", "", "Idempotency-Key: \"open\r\n"), 400},
  };
  for (const Case& c : cases) {
    Resp r = Call(c.raw);
    EXPECT_EQ(r.status, c.status) << c.raw << "\n-> " << r.body;
    EXPECT_TRUE(r.Json().contains("error")) << r.body;
  }
  EXPECT_EQ(Value("n"), 1);
  EXPECT_EQ(Call(Req("GET", "/kv/%FFfw")).status, 400);
}

TEST_F(KvHttpTest, MalformedAndOversizedRequestsAreRefused) {
  {
    Conn c(server_->port());
    c.Send("THIS IS NOT HTTP\r\n\r\n");
    Resp r = c.Read();
    EXPECT_EQ(r.status, 400);
    EXPECT_TRUE(c.ClosedWithin(std::chrono::milliseconds(2000)));
  }
  {
    Conn c(server_->port());
    c.Send(Req("PUT", "/kv/big", R"({"value":")" + std::string(5000, 'x') + "\"}"));
    EXPECT_EQ(c.Read().status, 413);
  }
  {
    Conn c(server_->port());
    c.Send(Req("GET", "/kv/n", "", "X-Big: " + std::string(3000, 'h') + "\r\n"));
    EXPECT_EQ(c.Read().status, 431);
  }
  EXPECT_EQ(Value("big"), nullptr);
}

TEST_F(KvHttpTest, KeepAliveAndPipelinedRequestsAreAnsweredInOrder) {
  Conn c(server_->port());
  for (int i = 1; i <= 5; ++i) {
    c.Send(Req("POST", "/kv/ka/incr", "", Key("ka" + std::to_string(i))));
    Resp r = c.Read();
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.Json()["value"], i);
  }
  // Pipelined: all requests in one write, before any response is read.
  std::string batch;
  for (int i = 1; i <= 10; ++i) {
    batch += Req("PUT", "/kv/p" + std::to_string(i),
                 R"({"value":)" + std::to_string(i) + "}",
                 Key("pp" + std::to_string(i)));
    batch += Req("GET", "/kv/p" + std::to_string(i));
  }
  c.Send(batch);
  for (int i = 1; i <= 10; ++i) {
    Resp put = c.Read();
    ASSERT_EQ(put.status, 200);
    EXPECT_EQ(put.Json()["key"], "p" + std::to_string(i));
    Resp get = c.Read();
    ASSERT_EQ(get.status, 200);
    EXPECT_EQ(get.Json()["value"], i);
  }
}

TEST_F(KvHttpTest, ExpectContinueGetsAnInterimResponse) {
  Conn c(server_->port());
  const std::string body = R"({"value":"after-100"})";
  c.Send("PUT /kv/e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n");
  EXPECT_EQ(c.Read().status, 100);
  c.Send(body);
  EXPECT_EQ(c.Read().status, 200);
  EXPECT_EQ(Value("e"), "after-100");
}

TEST_F(KvHttpTest, StoreUnavailableIs503WithRetryAfter) {
  ASSERT_TRUE(store_->Close().ok());
  for (const std::string& raw :
       {Req("GET", "/kv/x"), Req("POST", "/kv/x/incr", "", Key("u1"))}) {
    Resp r = Call(raw);
    EXPECT_EQ(r.status, 503) << r.body;
    EXPECT_EQ(r.retry_after, "1");
  }
}

TEST_F(KvHttpTest, SlowClientsAreTimedOut) {
  Conn idle(server_->port());
  Conn slow(server_->port());
  slow.Send("PUT /kv/slow HTTP/1.1\r\nHost: t\r\nContent-Length: 20\r\n\r\n{\"va");
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(idle.ClosedWithin(std::chrono::milliseconds(3000)));
  EXPECT_TRUE(slow.ClosedWithin(std::chrono::milliseconds(3000)));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_EQ(Value("slow"), nullptr);
  // The server still serves others.
  EXPECT_EQ(Call(Req("GET", "/kv/slow")).status, 404);
}

TEST_F(KvHttpTest, ConcurrentRetriesOfOneKeyIncrementOnce) {
  std::vector<std::thread> threads;
  std::vector<Resp> got(12);
  for (size_t i = 0; i < got.size(); ++i) {
    threads.emplace_back([&, i] {
      got[i] = Call(Req("POST", "/kv/once/incr", R"({"by":1})", Key("same")));
    });
  }
  for (auto& t : threads) t.join();
  int fresh = 0;
  for (const Resp& r : got) {
    // 200 (fresh or replay) or a retryable 409 while the first runs.
    ASSERT_TRUE(r.status == 200 || r.status == 409) << r.status << r.body;
    if (r.status == 200) {
      EXPECT_EQ(r.Json()["value"], 1);
      fresh += !r.replayed;
    } else {
      EXPECT_EQ(r.retry_after, "1");
    }
  }
  EXPECT_EQ(fresh, 1);
  EXPECT_EQ(Value("once"), 1);
}

// Issue 13: ~66,000 nested arrays (132 KB) crashed the server (stack overflow
// while the value was printed). Now refused before anything is built.
TEST_F(KvHttpTest, DeeplyNestedJsonIsRefusedAndTheServerLives) {
  Restart([](framework::HttpServerOptions& o) { o.max_body_bytes = 1 << 20; });
  const int n = 100000;
  const std::string body =
      "{\"value\":" + std::string(n, '[') + std::string(n, ']') + "}";
  Resp r = Call(Req("PUT", "/kv/d", body, Key("deep")));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("nested deeper than"), std::string::npos) << r.body;
  // Just within the limit (64 levels in all, the body's object included).
  const std::string ok =
      "{\"value\":" + std::string(63, '[') + std::string(63, ']') + "}";
  EXPECT_EQ(Call(Req("PUT", "/kv/d", ok, Key("ok"))).status, 200);
  const std::string over =
      "{\"value\":" + std::string(64, '[') + std::string(64, ']') + "}";
  EXPECT_EQ(Call(Req("PUT", "/kv/d", over, Key("over"))).status, 400);
  // Brackets inside strings do not count.
  EXPECT_EQ(Call(Req("PUT", "/kv/s", "{\"value\":\"" + std::string(500, '[') +
                                         "\"}",
                     Key("str")))
                .status,
            200);
  // Also as a compare-and-swap operand and an append.
  EXPECT_EQ(Call(Req("POST", "/kv/d/cas",
                     "{\"expected\":" + std::string(3000, '[') +
                         std::string(3000, ']') + ",\"value\":1}",
                     Key("cas")))
                .status,
            400);
  EXPECT_EQ(Value("d").dump(), std::string(63, '[') + std::string(63, ']'));
}

// Issue 13: `Transfer-Encoding: gzip` without Content-Length made the body
// be read as a second request, which was executed (request smuggling).
TEST_F(KvHttpTest, TransferEncodingOtherThanChunkedIsRefused) {
  Conn c(server_->port());
  c.Send(
      "POST /kv/t/incr HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
      "PUT /kv/smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\n"
      "Connection: close\r\n\r\n{\"value\":\"smug\"}");
  Resp r = c.Read();
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("bad_transfer_encoding"), std::string::npos);
  EXPECT_TRUE(c.ClosedWithin(std::chrono::milliseconds(2000)));
  EXPECT_EQ(Value("smuggled"), nullptr);
  EXPECT_EQ(Value("t"), nullptr);
  for (const char* te : {"gzip, chunked", "chunked, gzip", "identity",
                         "chunked\r\nTransfer-Encoding: chunked"}) {
    Conn d(server_->port());
    d.Send(std::string("POST /kv/t/incr HTTP/1.1\r\nHost: x\r\n"
                       "Transfer-Encoding: ") +
           te + "\r\n\r\n0\r\n\r\n");
    EXPECT_EQ(d.Read().status, 400) << te;
  }
  {
    Conn d(server_->port());
    d.Send("POST /kv/t/incr HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
           "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    EXPECT_EQ(d.Read().status, 400);
  }
  EXPECT_EQ(Value("t"), nullptr);
  // A chunked body alone is fine.
  Conn ok(server_->port());
  ok.Send("POST /kv/t/incr HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
          "\r\nIdempotency-Key: \"te\"\r\n\r\n8\r\n{\"by\":2}\r\n0\r\n\r\n");
  EXPECT_EQ(ok.Read().status, 200);
  EXPECT_EQ(Value("t"), 2);
}

// Issue 13: `by: 18446744073709551615` wrapped to -1 and decremented.
TEST_F(KvHttpTest, IncrementOutsideInt64IsRefused) {
  ASSERT_EQ(Call(Req("POST", "/kv/c/incr", R"({"by":5})", Key("c1"))).status,
            200);
  for (const char* by : {"18446744073709551615", "9223372036854775808",
                         "1e3", "-9223372036854775809"}) {
    Resp r = Call(Req("POST", "/kv/c/incr", std::string("{\"by\":") + by + "}",
                      Key(std::string("big-") + by)));
    EXPECT_EQ(r.status, 400) << by << " -> " << r.body;
  }
  EXPECT_EQ(Value("c"), 5);
  EXPECT_EQ(Call(Req("POST", "/kv/c/incr", R"({"by":-9223372036854775807})",
                     Key("c2")))
                .status,
            200);
}

// fuzz_kv_json: a value stored as 18446744073709551615 read back as -1, so
// incr by 1 stored 0.
TEST_F(KvHttpTest, IncrementOfAStoredValueOutsideInt64IsRefused) {
  ASSERT_EQ(Call(Req("PUT", "/kv/u", R"({"value":18446744073709551615})",
                     Key("u1")))
                .status,
            200);
  Resp r = Call(Req("POST", "/kv/u/incr", R"({"by":1})", Key("u2")));
  EXPECT_EQ(r.status, 412) << r.body;
  EXPECT_NE(r.body.find("signed 64-bit"), std::string::npos) << r.body;
  EXPECT_EQ(Call(Req("GET", "/kv/u")).body.find("18446744073709551615") !=
                std::string::npos,
            true);
}

// Issue 13: no connection cap. Beyond the cap a connection gets a 503 and
// is closed; the ones within it keep working.
TEST_F(KvHttpTest, ConnectionsBeyondTheCapAreRefused) {
  Restart([](framework::HttpServerOptions& o) {
    o.max_connections = 4;
    o.idle_timeout = absl::Seconds(10);
  });
  std::vector<std::unique_ptr<Conn>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(std::make_unique<Conn>(server_->port()));
    held.back()->Send(Req("GET", "/kv/none"));
    EXPECT_EQ(held.back()->Read().status, 404);
  }
  Conn extra(server_->port());
  Resp r = extra.Read();
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_NE(r.body.find("too_many_connections"), std::string::npos);
  EXPECT_EQ(server_->Stats().connections_refused, 1u);
  EXPECT_EQ(server_->Stats().connections_open, 4u);
  held.pop_back();  // One closes: room for a new one.
  for (int i = 0; i < 100 && server_->Stats().connections_open > 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Conn again(server_->port());
  again.Send(Req("GET", "/kv/none"));
  EXPECT_EQ(again.Read().status, 404);
}

// Issue 14 (drain): CloseConnections closes idle connections on an address
// at once and a busy one right after its reply, marked Connection: close.
TEST_F(KvHttpTest, CloseConnectionsClosesIdleOnesAndMarksBusyOnes) {
  Restart([](framework::HttpServerOptions& o) {
    o.idle_timeout = absl::Seconds(10);
  });
  Conn idle(server_->port());
  idle.Send(Req("GET", "/kv/none"));
  EXPECT_EQ(idle.Read().status, 404);
  EXPECT_EQ(server_->CloseConnections("10.9.9.9"), 0u);
  EXPECT_GE(server_->CloseConnections("127.0.0.1"), 1u);
  EXPECT_TRUE(idle.ClosedWithin(std::chrono::milliseconds(2000)));
}

}  // namespace
}  // namespace baton::kvservice

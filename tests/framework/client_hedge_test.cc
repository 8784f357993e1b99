// Hedged attempts, in real time: a second attempt of the same request id goes
// out after the hedge delay without cancelling the first, and the first
// answer wins; a "request in progress" answer to one attempt while the other
// runs means "keep waiting". Against a real framework::HttpServer and
// RequestPipeline on the in-memory store with a slow, counting handler, both
// attempts of a hedged write reach the server and the write executes once:
// one execution, identical replies.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "framework/client/client.h"
#include "framework/client/transport.h"
#include "framework/pipeline.h"
#include "gtest/gtest.h"
#include "tests/framework/client_test_server.h"

namespace baton::framework::client {
namespace {

// Attempts wait until released (by their order number) and then answer what
// they were given; records what was sent.
class GatedTransport : public Transport {
 public:
  absl::StatusOr<Response> Attempt(const Call&, const IdHeaders& id, absl::Duration,
                                   bool) override {
    absl::MutexLock lock(&mu_);
    const size_t n = sent_.size();
    sent_.push_back(id);
    auto released = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return answers_.size() > n && answers_[n].has_value();
    };
    mu_.Await(absl::Condition(&released));
    return *answers_[n];
  }
  // Lets attempt `n` (0-based) answer `r`.
  void Release(size_t n, absl::StatusOr<Response> r) {
    absl::MutexLock lock(&mu_);
    if (answers_.size() <= n) answers_.resize(n + 1);
    answers_[n] = std::move(r);
  }
  void AwaitSent(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return sent_.size() >= n; };
    mu_.Await(absl::Condition(&enough));
  }
  std::vector<IdHeaders> sent() {
    absl::MutexLock lock(&mu_);
    return sent_;
  }

 private:
  absl::Mutex mu_;
  std::vector<IdHeaders> sent_ ABSL_GUARDED_BY(mu_);
  std::vector<std::optional<absl::StatusOr<Response>>> answers_ ABSL_GUARDED_BY(mu_);
};

Response Http(int status, std::string body, std::string error_code = "") {
  Response r;
  r.http_status = status;
  r.code = CodeForHttpStatus(status);
  r.body = std::move(body);
  r.error_code = std::move(error_code);
  return r;
}

ClientOptions HedgingOptions(absl::Duration delay) {
  ClientOptions o;
  o.client_id = "c-hedge";
  o.retry.attempt_timeout = absl::Seconds(10);
  o.retry.hedge.enabled = true;
  o.retry.hedge.delay = delay;
  return o;
}

const Call kCall{"POST", "/kv/a/incr", "{}"};

TEST(HedgeTest, TheHedgeAnswersFirstAndTheSlowAttemptIsDiscarded) {
  auto t = std::make_unique<GatedTransport>();
  GatedTransport* tp = t.get();
  auto c = std::make_unique<RetryingClient>(std::move(t),
                                            HedgingOptions(absl::Milliseconds(20)));
  std::future<CallResult> f = c->SendAsync(kCall);
  tp->AwaitSent(2);  // The first attempt is stuck: the hedge went out.
  tp->Release(1, Http(200, "from the hedge"));
  CallResult r = f.get();
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.response.body, "from the hedge");
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(r.hedges, 1);
  EXPECT_EQ(r.outage, absl::ZeroDuration()) << "no attempt failed";
  const std::vector<IdHeaders> sent = tp->sent();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].client_id, sent[1].client_id);
  EXPECT_EQ(sent[0].seq, sent[1].seq) << "a hedge is the same request";
  // The first attempt still runs; its late answer is dropped, and the client
  // waits for it before it goes away.
  tp->Release(0, Http(200, "late"));
  c.reset();
}

TEST(HedgeTest, InProgressWhileTheOtherAttemptRunsMeansKeepWaiting) {
  auto t = std::make_unique<GatedTransport>();
  GatedTransport* tp = t.get();
  RetryingClient c(std::move(t), HedgingOptions(absl::Milliseconds(20)));
  std::future<CallResult> f = c.SendAsync(kCall);
  tp->AwaitSent(2);
  // The server answers the hedge: the first attempt of this id is running.
  tp->Release(1, Http(409, "", "request_in_progress"));
  // Were the 409 taken as the round's failure, a retry would follow (and
  // get this answer).
  tp->Release(2, Http(200, "a retry"));
  tp->Release(3, Http(200, "a retry's hedge"));
  absl::SleepFor(absl::Milliseconds(50));
  tp->Release(0, Http(200, "executed once"));
  CallResult r = f.get();
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.response.body, "executed once");
  EXPECT_EQ(r.attempts, 2) << "no retry round after the 409";
  EXPECT_EQ(tp->sent().size(), 2u);
}

TEST(HedgeTest, BothFailedIsARetryWithTheSameId) {
  auto t = std::make_unique<GatedTransport>();
  GatedTransport* tp = t.get();
  RetryingClient c(std::move(t), HedgingOptions(absl::Milliseconds(20)));
  std::future<CallResult> f = c.SendAsync(kCall);
  tp->AwaitSent(2);
  tp->Release(0, absl::UnavailableError("reset"));
  tp->Release(1, absl::UnavailableError("reset"));
  tp->AwaitSent(3);
  tp->Release(2, Http(200, "third"));
  tp->Release(3, Http(200, "fourth"));  // If the retry round hedged too.
  CallResult r = f.get();
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_GE(r.attempts, 3);
  for (const IdHeaders& id : tp->sent()) EXPECT_EQ(id.seq, tp->sent()[0].seq);
  EXPECT_GT(r.outage, absl::ZeroDuration());
}

// Records every answer the transport got, including the discarded ones.
class RecordingTransport : public Transport {
 public:
  explicit RecordingTransport(std::unique_ptr<Transport> inner) : inner_(std::move(inner)) {}
  absl::StatusOr<Response> Attempt(const Call& call, const IdHeaders& id,
                                   absl::Duration timeout, bool fresh) override {
    absl::StatusOr<Response> r = inner_->Attempt(call, id, timeout, fresh);
    absl::MutexLock lock(&mu_);
    answers_.push_back(r);
    return r;
  }
  std::vector<absl::StatusOr<Response>> answers() {
    absl::MutexLock lock(&mu_);
    return answers_;
  }
  void AwaitAnswers(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return answers_.size() >= n;
    };
    mu_.Await(absl::Condition(&enough));
  }

 private:
  std::unique_ptr<Transport> inner_;
  absl::Mutex mu_;
  std::vector<absl::StatusOr<Response>> answers_ ABSL_GUARDED_BY(mu_);
};

TEST(HedgeTest, AHedgedWriteExecutesOnceOnARealServer) {
  // Slow enough that the hedge arrives while the first attempt runs.
  testing::SlowCountingServer server(absl::Milliseconds(150));
  ASSERT_TRUE(server.ok());

  HttpTransportOptions ho;
  ho.port = server.port();
  auto http = MakeHttpTransport(ho);
  ASSERT_TRUE(http.ok());
  auto recording = std::make_unique<RecordingTransport>(*std::move(http));
  RecordingTransport* rec = recording.get();
  auto c = std::make_unique<RetryingClient>(std::move(recording),
                                            HedgingOptions(absl::Milliseconds(30)));
  constexpr int kWrites = 3;
  for (int i = 1; i <= kWrites; ++i) {
    CallResult r = c->Send(kCall);
    ASSERT_TRUE(r.status.ok()) << r.status;
    EXPECT_EQ(r.response.http_status, 200);
    EXPECT_EQ(r.response.body, absl::StrCat("{\"n\":", i, ",\"principal\":\"\"}"));
    EXPECT_EQ(r.attempts, 2);
    EXPECT_EQ(r.hedges, 1);
    // Both attempts answered, with the same reply: one executed, the other
    // waited for it and got the stored reply.
    rec->AwaitAnswers(2 * i);
    const auto answers = rec->answers();
    const auto& a = answers[2 * i - 2];
    const auto& b = answers[2 * i - 1];
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->http_status, 200);
    EXPECT_EQ(a->body, b->body);
    EXPECT_NE(a->replayed, b->replayed) << "one execution, one replay";
  }
  EXPECT_EQ(server.executions(), kWrites);
  const PipelineStats stats = server.pipeline().Stats();
  EXPECT_EQ(stats.executed, static_cast<uint64_t>(kWrites));
  EXPECT_EQ(stats.replayed, static_cast<uint64_t>(kWrites));
  c.reset();
}

}  // namespace
}  // namespace baton::framework::client

#include "framework/testing/harness.h"

#include <algorithm>
#include <exception>
#include <sstream>
#include <thread>
#include <variant>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "framework/request_builder.h"
#include "spdlog/spdlog.h"

namespace baton::testing {

using framework::Handler;
using framework::PipelineResult;
using framework::Reply;
using framework::Request;
using framework::RequestId;

namespace internal {

// What one scenario counts. Handlers and the store's hooks reach it through
// HarnessState::current.
struct ScenarioState {
  // Tells this scenario from an earlier one at the same address.
  const uint64_t generation = NextGeneration();
  std::atomic<int> runs{0};
  std::atomic<int> committed{0};

  // SendConcurrently's hold: the first handler run of each copy, once it
  // returned, waits until `hold_for` copies have run their handlers.
  absl::Mutex mu;
  int hold_for ABSL_GUARDED_BY(mu) = 0;
  int arrived ABSL_GUARDED_BY(mu) = 0;
  bool hold_failed ABSL_GUARDED_BY(mu) = false;

 private:
  static uint64_t NextGeneration() {
    static std::atomic<uint64_t> next{1};
    return next.fetch_add(1);
  }
};

struct HarnessState {
  std::atomic<ScenarioState*> current{nullptr};

  absl::Mutex mu;
  // Commits with writes that a counted handler run handed to the store, by
  // FaultStore sequence: counted as committed when durable.
  absl::flat_hash_map<uint64_t, ScenarioState*> commit_owner
      ABSL_GUARDED_BY(mu);
  // Asynchronous attempts whose callback has not run.
  int outstanding ABSL_GUARDED_BY(mu) = 0;
};

}  // namespace internal

namespace {

using internal::HarnessState;
using internal::ScenarioState;

// The scenario whose handler run last returned on this thread; its commit
// is the next commit with writes made on this thread (the pipeline commits
// right after the handler returns, on the same thread).
struct RunTag {
  ScenarioState* scenario = nullptr;
  uint64_t generation = 0;
};
thread_local RunTag tl_run;

// The scenario of `tag` if it is `state`'s current one (then it is alive).
ScenarioState* CurrentRun(const RunTag& tag, HarnessState* state) {
  ScenarioState* current = state->current.load();
  if (tag.scenario == nullptr || tag.scenario != current ||
      current->generation != tag.generation) {
    return nullptr;
  }
  return current;
}
// This thread's next handler run is a concurrent copy's first: hold it
// (after it returns, before the pipeline commits it).
thread_local bool tl_hold = false;

// How long a concurrent copy waits after its first handler run for the
// others.
constexpr absl::Duration kHoldLimit = absl::Seconds(2);

void Hold(ScenarioState& s) {
  absl::MutexLock lock(&s.mu);
  ++s.arrived;
  auto all_in = [&s]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
    return s.arrived >= s.hold_for;
  };
  if (!s.mu.AwaitWithTimeout(absl::Condition(&all_in), kHoldLimit)) {
    s.hold_failed = true;
  }
}

// Counts the runs of a handler for the current scenario.
class CountingHandler : public Handler {
 public:
  CountingHandler(HarnessState* state, std::shared_ptr<Handler> inner)
      : state_(state), inner_(std::move(inner)) {}

  absl::StatusOr<Reply> Handle(const Request& request,
                               framework::Transaction& txn) override {
    ScenarioState* s = state_->current.load();
    if (s != nullptr) s->runs.fetch_add(1);
    tl_run = RunTag{};
    absl::StatusOr<Reply> reply = inner_->Handle(request, txn);
    if (s == nullptr) return reply;
    if (tl_hold) {
      // Every copy's first run reads before any copy commits.
      tl_hold = false;
      Hold(*s);
    }
    tl_run = RunTag{s, s->generation};
    return reply;
  }

 private:
  HarnessState* const state_;
  const std::shared_ptr<Handler> inner_;
};

std::string QuoteKey(std::string_view key) {
  std::string out = "\"";
  for (char c : key) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

bool Retryable(const Attempt& a) {
  if (a.ok()) return false;
  switch (a.result.status().code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kDeadlineExceeded:
      return true;
    default:
      return false;
  }
}

void Answered(Attempt* a) {
  if (a->result.ok()) {
    a->http_status = framework::HttpStatusForCode(a->result->reply.code);
    a->error_code.clear();
  } else {
    a->http_status = framework::HttpStatusForError(a->result.status());
    a->error_code = framework::ErrorName(a->result.status());
  }
}

}  // namespace

// --- Call -------------------------------------------------------------------

Call Call::Http(std::string method, std::string target, std::string body) {
  Call c;
  c.method_ = std::move(method);
  c.target_ = std::move(target);
  c.body_ = std::move(body);
  return c;
}

Call Call::Direct(std::shared_ptr<Handler> handler, Request request) {
  Call c;
  c.http_ = false;
  c.handler_ = std::move(handler);
  c.request_ = std::move(request);
  return c;
}

Call& Call::Header(std::string name, std::string value) & {
  if (http_) {
    headers_.emplace_back(std::move(name), std::move(value));
  } else {
    framework::AddMetadata(name, value, &request_.metadata);
  }
  return *this;
}

Call& Call::Key(std::string key) & {
  if (http_) return Header("Idempotency-Key", QuoteKey(key));
  id_ = RequestId::Key(std::move(key));
  return *this;
}

Call& Call::ClientSeq(std::string client, uint64_t seq,
                      std::optional<uint64_t> acked) & {
  if (!http_) {
    id_ = RequestId::ClientSeq(std::move(client), seq, acked);
    return *this;
  }
  Header("Baton-Client-Id", std::move(client));
  Header("Baton-Seq", absl::StrCat(seq));
  if (acked) Header("Baton-Ack", absl::StrCat(*acked));
  return *this;
}

Call& Call::Principal(std::string principal) & {
  if (http_) {
    principal_ = std::move(principal);
  } else {
    request_.principal = std::move(principal);
  }
  return *this;
}

Call& Call::LocalAddress(std::string address) & {
  if (http_) {
    local_address_ = std::move(address);
  } else {
    request_.local_address = std::move(address);
  }
  return *this;
}

std::string Call::Describe() const {
  if (http_) return absl::StrCat(method_, " ", target_);
  return request_.operation.empty() ? request_.path : request_.operation;
}

Call Get(std::string target) { return Call::Http("GET", std::move(target)); }
Call Post(std::string target, std::string body) {
  return Call::Http("POST", std::move(target), std::move(body));
}
Call Put(std::string target, std::string body) {
  return Call::Http("PUT", std::move(target), std::move(body));
}
Call Delete(std::string target) {
  return Call::Http("DELETE", std::move(target));
}

// --- Attempt, Report ----------------------------------------------------------

std::string_view Attempt::body() const {
  if (result.ok()) return result->reply.body;
  return std::string_view(result.status().message().data(),
                          result.status().message().size());
}

int Report::replies() const {
  return static_cast<int>(std::count_if(attempts.begin(), attempts.end(),
                                        [](const Attempt& a) { return a.ok(); }));
}

int Report::replays() const {
  return static_cast<int>(std::count_if(
      attempts.begin(), attempts.end(),
      [](const Attempt& a) { return a.replayed(); }));
}

bool Report::SameReplies() const {
  const Reply* first = nullptr;
  for (const Attempt& a : attempts) {
    if (!a.ok()) continue;
    if (first == nullptr) {
      first = &a.reply();
    } else if (!(a.reply() == *first)) {
      return false;
    }
  }
  return true;
}

bool Report::ExactlyOnce() const {
  return !attempts.empty() && replies() == static_cast<int>(attempts.size()) &&
         SameReplies() && committed_runs == 1;
}

std::string Report::ToString() const {
  std::ostringstream os;
  os << call << ": " << attempts.size() << " attempt(s), handler ran "
     << handler_runs << " time(s), " << committed_runs << " run(s) committed";
  if (!SameReplies()) os << ", REPLIES DIFFER";
  for (size_t i = 0; i < attempts.size(); ++i) {
    const Attempt& a = attempts[i];
    std::string_view body = a.body();
    os << "\n  #" << i << " server " << a.server << ": " << a.http_status;
    if (!a.ok()) os << " " << a.error_code;
    if (a.replayed()) os << " replayed";
    if (a.reply_lost) os << " (reply lost)";
    os << ": " << body.substr(0, 200) << (body.size() > 200 ? "..." : "");
  }
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Report& report) {
  return os << report.ToString();
}

// --- Harness ------------------------------------------------------------------

struct Harness::Resolved {
  std::shared_ptr<Handler> owned;  // Direct calls: the counting wrapper.
  Handler* handler = nullptr;
  RequestId id;
  Request request;
};

Harness::Harness(HarnessOptions options)
    : options_(std::move(options)),
      state_(std::make_unique<internal::HarnessState>()) {
  storage::MemoryStoreOptions store_options;
  store_options.async_commits =
      options_.execution == HarnessOptions::Execution::kInline;
  store_options.stale_reads_are_cheaper = options_.etcd_like_reads;
  absl::StatusOr<std::unique_ptr<storage::MemoryStore>> store =
      storage::OpenMemoryStore(store_options);
  if (!store.ok()) {
    spdlog::critical("test harness: {}", std::string(store.status().message()));
    std::abort();
  }
  store_ = *std::move(store);
  faults_ = std::make_unique<FaultStore>(*store_);
  HarnessState* state = state_.get();
  faults_->AddBeforeCommitHook([state](const CommitInfo& info) {
    if (info.writes.empty()) return;
    ScenarioState* run = CurrentRun(tl_run, state);
    if (run == nullptr) return;
    tl_run = RunTag{};
    absl::MutexLock lock(&state->mu);
    state->commit_owner[info.sequence] = run;
  });
  faults_->AddDurableHook([state](const CommitInfo& info, uint64_t) {
    absl::MutexLock lock(&state->mu);
    auto it = state->commit_owner.find(info.sequence);
    if (it == state->commit_owner.end()) return;
    it->second->committed.fetch_add(1);
    state->commit_owner.erase(it);
  });
}

Harness::~Harness() {
  // Attempts that timed out may still be running in a pipeline.
  absl::MutexLock lock(&state_->mu);
  state_->mu.Await(absl::Condition(
      +[](internal::HarnessState* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) {
        return s->outstanding == 0;
      },
      state_.get()));
}

absl::Status Harness::Route(std::string_view method, std::string_view pattern,
                            std::shared_ptr<Handler> handler) {
  if (handler == nullptr) return router_.Add(method, pattern, nullptr);
  return router_.Add(method, pattern,
                     std::make_shared<CountingHandler>(state_.get(),
                                                       std::move(handler)));
}

absl::Status Harness::Route(std::string_view method, std::string_view pattern,
                            framework::HandlerFunction handler) {
  return Route(method, pattern, framework::MakeHandler(std::move(handler)));
}

absl::Status Harness::Routes(const framework::Router& router) {
  absl::Status first;
  router.ForEach([&](std::string_view method, std::string_view pattern,
                     const std::shared_ptr<Handler>& handler) {
    first.Update(Route(method, pattern, handler));
  });
  return first;
}

absl::Status Harness::Put(std::string_view key, std::string_view value) {
  return store_
      ->Commit({}, {storage::Write::Put(std::string(key), std::string(value))})
      .status();
}

absl::StatusOr<storage::Versioned> Harness::Get(std::string_view key) {
  return store_->Get(key);
}

std::optional<std::string> Harness::Value(std::string_view key) {
  absl::StatusOr<storage::Versioned> v = store_->Get(key);
  if (!v.ok() || !v->present()) return std::nullopt;
  return std::move(v->value);
}

framework::RequestPipeline& Harness::pipeline(int server) {
  const size_t i = static_cast<size_t>(std::max(server, 0));
  while (servers_.size() <= i) {
    servers_.push_back(std::make_unique<framework::RequestPipeline>(
        *faults_, clock_, options_.pipeline));
  }
  return *servers_[i];
}

void Harness::RestartServers() {
  const size_t n = servers_.size();
  servers_.clear();
  if (n > 0) pipeline(static_cast<int>(n) - 1);
}

absl::StatusOr<size_t> Harness::CollectGarbage() {
  tl_run = RunTag{};
  size_t total = 0;
  pipeline(0);
  for (auto& p : servers_) {
    absl::StatusOr<size_t> n = p->CollectGarbage();
    if (!n.ok()) return n.status();
    total += *n;
  }
  return total;
}

std::optional<Harness::Resolved> Harness::Resolve(const Call& call,
                                                  Attempt* refused) {
  Resolved r;
  if (!call.http_) {
    r.owned = std::make_shared<CountingHandler>(state_.get(), call.handler_);
    r.handler = r.owned.get();
    r.id = call.id_;
    r.request = call.request_;
    return r;
  }
  std::vector<framework::HttpHeader> headers;
  headers.reserve(call.headers_.size());
  for (const auto& [name, value] : call.headers_) headers.push_back({name, value});
  auto built = framework::BuildHttpRequest(
      router_, {call.method_, call.target_, headers, call.body_,
                call.local_address_, call.principal_, &options_.authenticate});
  if (auto* e = std::get_if<framework::HttpRequestError>(&built)) {
    absl::StatusCode code = absl::StatusCode::kInvalidArgument;
    switch (e->status) {
      case 401: code = absl::StatusCode::kUnauthenticated; break;
      case 403: code = absl::StatusCode::kPermissionDenied; break;
      case 404: code = absl::StatusCode::kNotFound; break;
      case 405: code = absl::StatusCode::kUnimplemented; break;
    }
    refused->result = absl::Status(code, e->message);
    refused->http_status = e->status;
    refused->error_code = e->code;
    return std::nullopt;
  }
  auto& routed = std::get<framework::RoutedRequest>(built);
  r.handler = routed.handler;
  r.id = std::move(routed.id);
  r.request = std::move(routed.request);
  return r;
}

Attempt Harness::RunAttempt(const Call& call, int server, bool hold) {
  Attempt a;
  a.server = server;
  std::optional<Resolved> r = Resolve(call, &a);
  if (!r) return a;
  framework::RequestPipeline& p = pipeline(server);
  tl_run = RunTag{};
  tl_hold = hold;
  if (options_.execution == HarnessOptions::Execution::kBlocking) {
    // As the front ends do around the blocking path.
    try {
      a.result = p.Execute(r->id, r->request, *r->handler);
    } catch (const std::exception& e) {
      spdlog::error("handler for {} threw: {}", r->request.operation, e.what());
      a.result = absl::InternalError("handler failed");
    } catch (...) {
      a.result = absl::InternalError("handler failed");
    }
  } else {
    struct Pending {
      Resolved resolved;
      absl::StatusOr<PipelineResult> result;
      absl::Notification done;
    };
    auto pending = std::make_shared<Pending>();
    pending->resolved = *std::move(r);
    HarnessState* state = state_.get();
    {
      absl::MutexLock lock(&state->mu);
      ++state->outstanding;
    }
    p.ExecuteAsync(pending->resolved.id, pending->resolved.request,
                   *pending->resolved.handler,
                   [pending, state](absl::StatusOr<PipelineResult> result) {
                     pending->result = std::move(result);
                     {
                       absl::MutexLock lock(&state->mu);
                       --state->outstanding;
                     }
                     pending->done.Notify();
                   });
    if (pending->done.WaitForNotificationWithTimeout(options_.attempt_timeout)) {
      a.result = std::move(pending->result);
    } else {
      a.result = absl::DeadlineExceededError(
          absl::StrCat("test harness: no answer within ",
                       absl::FormatDuration(options_.attempt_timeout)));
    }
  }
  tl_run = RunTag{};
  tl_hold = false;
  Answered(&a);
  return a;
}

Report Harness::RunScenario(const Call& call,
                            const std::function<void(Report&)>& body) {
  Report report;
  report.call = call.Describe();
  internal::ScenarioState scenario;
  state_->current.store(&scenario);
  body(report);
  state_->current.store(nullptr);
  report.handler_runs = scenario.runs.load();
  report.committed_runs = scenario.committed.load();
  absl::MutexLock lock(&state_->mu);
  for (auto it = state_->commit_owner.begin(); it != state_->commit_owner.end();) {
    if (it->second == &scenario) {
      state_->commit_owner.erase(it++);
    } else {
      ++it;
    }
  }
  return report;
}

Report Harness::Send(const Call& call) {
  return RunScenario(call, [&](Report& report) {
    report.attempts.push_back(RunAttempt(call, 0));
  });
}

Report Harness::Retry(const Call& call, RetryOptions options) {
  return RunScenario(call, [&](Report& report) {
    report.attempts.push_back(RunAttempt(call, 0));
    report.attempts.back().reply_lost = options.lose_first_reply;
    for (int i = 0; i < options.retries; ++i) {
      if (options.restart) RestartServers();
      clock_.Advance(options.wait);
      if (options.collect_garbage) {
        absl::StatusOr<size_t> n = CollectGarbage();
        if (!n.ok()) spdlog::warn("test harness: GC: {}", n.status().ToString());
      }
      report.attempts.push_back(RunAttempt(call, 0));
    }
  });
}

Report Harness::LoseReplyThenRetry(const Call& call, RetryOptions options) {
  options.lose_first_reply = true;
  return Retry(call, options);
}

Report Harness::SendConcurrently(const Call& call, int copies,
                                 bool same_server) {
  copies = std::max(copies, 1);
  const bool hold = !same_server && copies > 1;
  for (int i = 0; i < (same_server ? 1 : copies); ++i) pipeline(i);
  return RunScenario(call, [&](Report& report) {
    internal::ScenarioState& scenario = *state_->current.load();
    {
      absl::MutexLock lock(&scenario.mu);
      scenario.hold_for = hold ? copies : 0;
    }
    report.attempts.resize(static_cast<size_t>(copies));
    std::vector<std::thread> threads;
    for (int i = 0; i < copies; ++i) {
      threads.emplace_back([&, i] {
        report.attempts[static_cast<size_t>(i)] =
            RunAttempt(call, same_server ? 0 : i, hold);
      });
    }
    for (std::thread& t : threads) t.join();
    absl::MutexLock lock(&scenario.mu);
    report.overlapped =
        hold && !scenario.hold_failed && scenario.arrived >= copies;
  });
}

Report Harness::SendWithConflicts(const Call& call, int conflicts) {
  const int rule =
      faults_->AddRule({Fault::Conflict(), nullptr, 0, std::max(conflicts, 0)});
  Report report = Send(call);
  faults_->RemoveRule(rule);
  return report;
}

Report Harness::SendWithFaults(const Call& call, std::vector<Fault> faults,
                               int retries) {
  std::vector<int> rules;
  for (Fault& f : faults) {
    rules.push_back(faults_->AddRule({std::move(f), nullptr, 0, 1}));
  }
  Report report = RunScenario(call, [&](Report& r) {
    r.attempts.push_back(RunAttempt(call, 0));
    for (int i = 0; i < retries && Retryable(r.attempts.back()); ++i) {
      r.attempts.push_back(RunAttempt(call, 0));
    }
  });
  for (int id : rules) faults_->RemoveRule(id);
  return report;
}

}  // namespace baton::testing

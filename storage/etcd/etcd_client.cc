#include "storage/etcd/etcd_client.h"

#include <pthread.h>

#include <algorithm>
#include <climits>
#include <fstream>
#include <sstream>
#include <utility>

#include <grpcpp/alarm.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spdlog/spdlog.h"

namespace baton::storage::etcd_internal {
namespace {

// etcd reads the auth token from this gRPC metadata key.
constexpr char kTokenMetadata[] = "token";
// With this metadata a member without a leader refuses at once ("etcdserver:
// no leader", before anything reaches raft) instead of holding a write until
// the deadline, which would make its outcome unknown. etcd's own client sets
// it the same way (WithRequireLeader).
constexpr char kRequireLeaderMetadata[] = "hasleader";
constexpr char kRequireLeaderValue[] = "true";

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("etcd: cannot read ", what, " file \"", path, "\""));
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

gpr_timespec After(std::chrono::milliseconds d) {
  // A relative (GPR_TIMESPAN) deadline: gRPC adds it to its own clock when
  // the call starts, so this code reads no clock itself.
  return gpr_time_from_millis(d.count(), GPR_TIMESPAN);
}

gpr_timespec MonotonicFromNs(int64_t ns) {
  gpr_timespec t;
  t.tv_sec = ns / 1000000000;
  t.tv_nsec = static_cast<int32_t>(ns % 1000000000);
  t.clock_type = GPR_CLOCK_MONOTONIC;
  return t;
}

// The client whose callback runs on this thread, if any.
thread_local const void* tls_callback_client = nullptr;

bool MessageHas(const grpc::Status& s, std::initializer_list<const char*> needles) {
  for (const char* n : needles) {
    if (absl::StrContains(s.error_message(), n)) return true;
  }
  return false;
}

}  // namespace

FailureClass Classify(const grpc::Status& s, CallKind kind) {
  const bool read = kind == CallKind::kRead;
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      // gRPC could not connect, or etcd refused before proposing to raft:
      // nothing reached the log.
      if (MessageHas(s, {"failed to connect", "Connection refused",
                         "connections to all backends failing",
                         "DNS resolution failed", "empty address list",
                         "etcdserver: no leader", "etcdserver: not capable"})) {
        return FailureClass::kNotApplied;
      }
      // Anything else (socket closed mid-call, etcd's "request timed out",
      // "leader changed", "server stopped") may come after the proposal.
      return read ? FailureClass::kNotApplied : FailureClass::kUnknown;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      // Rate limiting happens before the proposal.
      if (MessageHas(s, {"etcdserver: too many requests"})) {
        return FailureClass::kNotApplied;
      }
      return FailureClass::kFinal;
    case grpc::StatusCode::UNAUTHENTICATED:
      if (MessageHas(s, {"invalid auth token", "auth token"})) {
        return FailureClass::kBadToken;
      }
      return FailureClass::kFinal;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::ABORTED:
      return read ? FailureClass::kNotApplied : FailureClass::kUnknown;
    default:
      return FailureClass::kFinal;
  }
}

absl::Status FinalStatus(const grpc::Status& s, const std::string& target) {
  const std::string msg = absl::StrCat("etcd at ", target, ": ", s.error_message());
  if (s.error_code() == grpc::StatusCode::INVALID_ARGUMENT &&
      MessageHas(s, {"request is too large", "too many operations in txn"})) {
    return absl::ResourceExhaustedError(
        absl::StrCat(msg, " (server limit lower than EtcdOptions says?)"));
  }
  if (s.error_code() == grpc::StatusCode::INVALID_ARGUMENT &&
      MessageHas(s, {"user name is empty"})) {
    return absl::UnauthenticatedError(
        absl::StrCat(msg, " (etcd has auth enabled: set EtcdOptions.username and password)"));
  }
  if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
      MessageHas(s, {"database space exceeded"})) {
    return absl::UnavailableError(absl::StrCat(
        msg, " (etcd's NOSPACE alarm: compact and defragment, then disarm)"));
  }
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), msg);
}

absl::StatusOr<std::unique_ptr<Client>> Client::Create(const EtcdOptions& options) {
  if (options.endpoints.empty()) {
    return absl::InvalidArgumentError("etcd: no endpoints given");
  }
  if (options.key_prefix.empty()) {
    return absl::InvalidArgumentError(
        "etcd: key_prefix must not be empty (etcd refuses the empty key)");
  }
  if (options.max_txn_ops == 0 || options.max_request_bytes == 0) {
    return absl::InvalidArgumentError("etcd: limits must be positive");
  }
  std::unique_ptr<Client> client(new Client(options));

  bool tls = !options.tls_ca_file.empty();
  std::vector<std::string> targets;
  for (std::string t : options.endpoints) {
    if (absl::StartsWith(t, "https://")) {
      tls = true;
      t = t.substr(8);
    } else if (absl::StartsWith(t, "http://")) {
      t = t.substr(7);
    }
    while (!t.empty() && t.back() == '/') t.pop_back();
    if (t.empty()) return absl::InvalidArgumentError("etcd: empty endpoint");
    targets.push_back(std::move(t));
  }

  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (tls) {
    grpc::SslCredentialsOptions ssl;
    if (!options.tls_ca_file.empty()) {
      absl::StatusOr<std::string> ca = ReadFile(options.tls_ca_file, "TLS CA");
      if (!ca.ok()) return ca.status();
      ssl.pem_root_certs = *ca;
    }
    if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
      return absl::InvalidArgumentError(
          "etcd: tls_cert_file and tls_key_file go together");
    }
    if (!options.tls_cert_file.empty()) {
      absl::StatusOr<std::string> cert = ReadFile(options.tls_cert_file, "TLS certificate");
      if (!cert.ok()) return cert.status();
      absl::StatusOr<std::string> key = ReadFile(options.tls_key_file, "TLS key");
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *cert;
      ssl.pem_private_key = *key;
    }
    creds = grpc::SslCredentials(ssl);
  } else {
    creds = grpc::InsecureChannelCredentials();
  }

  for (const std::string& target : targets) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(
        static_cast<int>(std::min<size_t>(options.max_response_bytes, INT_MAX)));
    // Reconnect soon after a member comes back, so fail-back and a restarted
    // single node are noticed within a second rather than gRPC's default
    // backoff of up to two minutes.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    // gRPC also takes this as the least time a connection attempt (TCP and
    // HTTP/2 handshake) is given: at 100 ms, a member slow to send its
    // SETTINGS (starting up, or on a loaded machine) was never reached.
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
                static_cast<int>(std::clamp<int64_t>(options.dial_timeout.count(), 100, 20000)));
    // Notice a silently dead peer; etcd lets clients ping every 5 s or less
    // often (--grpc-keepalive-min-time).
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
    // Each store its own connections, so closing one store (or a test's
    // killed member) does not disturb another.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto ep = std::make_unique<Endpoint>();
    ep->target = target;
    ep->channel = grpc::CreateCustomChannel(target, creds, args);
    ep->kv = etcdserverpb::KV::NewStub(ep->channel);
    ep->maintenance = etcdserverpb::Maintenance::NewStub(ep->channel);
    ep->auth = etcdserverpb::Auth::NewStub(ep->channel);
    client->endpoints_.push_back(std::move(ep));
  }
  client->last_term_.assign(client->endpoints_.size(), 0);
  {
    absl::MutexLock lock(&client->calls_mu_);
    client->failed_.assign(client->endpoints_.size(), std::string());
    client->members_.assign(client->endpoints_.size(), MemberView());
    client->probing_.assign(client->endpoints_.size(), false);
  }
  Client* raw = client.get();
  client->connect_thread_ = std::thread([raw] { raw->ConnectLoop(); });
  return client;
}


std::string Client::Token() const {
  absl::MutexLock lock(&token_mu_);
  return token_;
}

std::string Client::Prepare(grpc::ClientContext& context) {
  context.set_deadline(After(options_.request_timeout));
  context.AddMetadata(kRequireLeaderMetadata, kRequireLeaderValue);
  if (options_.username.empty()) return std::string();
  std::string token = Token();
  if (!token.empty()) context.AddMetadata(kTokenMetadata, token);
  return token;
}

Endpoint& Client::CurrentEndpoint() {
  return *endpoints_[current_.load() % endpoints_.size()];
}

EtcdStoreStats Client::Stats() const {
  EtcdStoreStats s;
  s.failovers = failovers_.load();
  s.unknown_outcomes = unknown_outcomes_.load();
  s.authentications = authentications_.load();
  s.probe_failures = probe_failures_.load();
  s.cancelled_calls = cancelled_calls_.load();
  return s;
}

int64_t Client::NowNs() {
  const gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);
  return static_cast<int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec;
}

bool Client::WaitConnected(Endpoint& ep, bool give_up_on_failure) {
  grpc_connectivity_state state = ep.channel->GetState(/*try_to_connect=*/true);
  if (state == GRPC_CHANNEL_READY) return true;
  // An absolute deadline (a relative one would restart at every state
  // change).
  const gpr_timespec deadline = gpr_time_add(
      gpr_now(GPR_CLOCK_MONOTONIC), After(options_.dial_timeout));
  for (;;) {
    if (state == GRPC_CHANNEL_READY) return true;
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE && give_up_on_failure) return false;
    if (!ep.channel->WaitForStateChange(state, deadline)) return false;
    state = ep.channel->GetState(/*try_to_connect=*/true);
  }
}

absl::Status Client::EnsureToken(Endpoint& ep, const std::string* stale) {
  if (options_.username.empty()) return absl::OkStatus();
  absl::MutexLock lock(&token_mu_);
  if (authenticated_ && (stale == nullptr || token_ != *stale)) return absl::OkStatus();
  etcdserverpb::AuthenticateRequest req;
  req.set_name(options_.username);
  req.set_password(options_.password);
  etcdserverpb::AuthenticateResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(After(options_.request_timeout));
  grpc::Status s = ep.auth->Authenticate(&ctx, req, &resp);
  if (!s.ok() && MessageHas(s, {"authentication is not enabled"})) {
    // Credentials configured, auth off on the cluster: go on without a token.
    token_.clear();
    authenticated_ = true;
    return absl::OkStatus();
  }
  if (!s.ok()) {
    if (Classify(s, CallKind::kRead) == FailureClass::kNotApplied) {
      return absl::UnavailableError(
          absl::StrCat(ep.target, ": authenticate: ", s.error_message()));
    }
    // etcd answers a wrong user or password with InvalidArgument.
    return absl::UnauthenticatedError(absl::StrCat(
        "etcd at ", ep.target, ": authentication as user \"", options_.username,
        "\" failed: ", s.error_message()));
  }
  token_ = resp.token();
  authenticated_ = true;
  authentications_.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

void Client::MoveTo(size_t from, size_t to, const char* why) {
  if (from == to) return;
  size_t expected = from;
  if (current_.compare_exchange_strong(expected, to)) {
    failovers_.fetch_add(1, std::memory_order_relaxed);
    spdlog::info("etcd: now using endpoint {} ({})", endpoints_[to]->target, why);
  }
}

MemberRank RankMember(const MemberView& m, int64_t now_ns, int64_t silent_after_ns) {
  if (m.marked_failed || m.probe_failed) return MemberRank::kSilent;
  if (m.probe_sent_ns != 0 && now_ns - m.probe_sent_ns > silent_after_ns) {
    return MemberRank::kSilent;
  }
  if (m.call_failed_ns != 0 && m.call_failed_ns >= m.answered_ns) return MemberRank::kSuspect;
  if (!m.answered) return MemberRank::kUnknown;
  return m.has_leader ? MemberRank::kReady : MemberRank::kNoLeader;
}

std::optional<size_t> NextMember(const std::vector<MemberRank>& ranks,
                                 const std::vector<bool>& tried) {
  const bool all_silent = std::all_of(ranks.begin(), ranks.end(),
                                      [](MemberRank r) { return r == MemberRank::kSilent; });
  std::optional<size_t> best;
  for (size_t i = 0; i < ranks.size(); ++i) {
    if (tried[i] || (ranks[i] == MemberRank::kSilent && !all_silent)) continue;
    if (!best || ranks[i] < ranks[*best]) best = i;
  }
  return best;
}

MemberRank Client::RankOf(size_t i) const {
  const int64_t silent_after =
      std::chrono::nanoseconds(options_.health_probe_silent_after).count();
  absl::MutexLock lock(&calls_mu_);
  MemberView m = members_[i];
  m.marked_failed = !failed_[i].empty();
  return RankMember(m, NowNs(), silent_after);
}

std::vector<MemberRank> Client::Ranks() const {
  std::vector<MemberRank> ranks;
  ranks.reserve(endpoints_.size());
  for (size_t i = 0; i < endpoints_.size(); ++i) ranks.push_back(RankOf(i));
  return ranks;
}

std::optional<size_t> Client::Next(const std::vector<bool>& tried,
                                   std::vector<std::string>* why) const {
  const std::vector<MemberRank> ranks = Ranks();
  const std::optional<size_t> next = NextMember(ranks, tried);
  if (why != nullptr && !next) {
    for (size_t i = 0; i < ranks.size(); ++i) {
      if (!tried[i] && ranks[i] == MemberRank::kSilent) {
        why->push_back(absl::StrCat(endpoints_[i]->target,
                                    ": skipped (does not answer its health probes)"));
      }
    }
  }
  return next;
}

void Client::NoteCall(size_t endpoint, bool failed) {
  absl::MutexLock lock(&calls_mu_);
  MemberView& m = members_[endpoint];
  if (failed) {
    m.call_failed_ns = NowNs();
  } else if (m.call_failed_ns != 0) {
    m.answered_ns = NowNs();
  }
}

size_t Client::StartEndpoint() {
  const size_t current = current_.load() % endpoints_.size();
  // A current member that went silent (a crashed host) is not where a call
  // starts while another member answers.
  if (options_.health_probe_interval.count() > 0 && endpoints_.size() > 1 &&
      RankOf(current) == MemberRank::kSilent) {
    const std::vector<MemberRank> ranks = Ranks();
    const std::optional<size_t> next =
        NextMember(ranks, std::vector<bool>(endpoints_.size(), false));
    if (next && ranks[*next] != MemberRank::kSilent) return *next;
  }
  // With a health probe, it alone decides when to go back to the first
  // endpoint (once that member has a leader and has caught up).
  if (current == 0 || options_.health_probe_interval.count() > 0) return current;
  // The first endpoint is the preferred one (deployments list the host's own
  // member first). A call moved away when it was down; once it is back, go
  // back to it, so that the crash of the member this client moved to does
  // not cost a request timeout first.
  const int64_t now_ns = NowNs();
  int64_t last = last_fail_back_probe_ns_.load(std::memory_order_relaxed);
  if (now_ns - last < std::chrono::nanoseconds(kFailBackProbeInterval).count() ||
      !last_fail_back_probe_ns_.compare_exchange_strong(last, now_ns)) {
    return current;
  }
  // try_to_connect: an idle channel starts connecting, so a later probe
  // finds it ready.
  Endpoint& first = *endpoints_[0];
  if (first.channel->GetState(/*try_to_connect=*/true) != GRPC_CHANNEL_READY) return current;
  MoveTo(current, 0, "the first endpoint is back");
  return current_.load() % endpoints_.size();
}

// ------------------------------------------------------ calls in flight ----

bool Client::Register(InFlight* call) {
  absl::MutexLock lock(&calls_mu_);
  if (!failed_[call->endpoint].empty()) {
    call->cancelled_because = failed_[call->endpoint];
    return false;
  }
  in_flight_.insert(call);
  if (closing_) {
    call->cancelled_because = "the store is closing";
    call->context->TryCancel();
  }
  return true;
}

void Client::MarkFailed(size_t endpoint, std::string why) {
  absl::MutexLock lock(&calls_mu_);
  failed_[endpoint] = std::move(why);
}

void Client::Unregister(InFlight* call) {
  absl::MutexLock lock(&calls_mu_);
  in_flight_.erase(call);
}

void Client::CancelCalls(size_t endpoint, int64_t before_ns, const std::string& why) {
  size_t n = 0;
  {
    absl::MutexLock lock(&calls_mu_);
    for (InFlight* f : in_flight_) {
      if (f->endpoint != endpoint || f->started_ns >= before_ns || !f->cancelled_because.empty()) {
        continue;
      }
      f->cancelled_because = why;
      f->context->TryCancel();
      ++n;
    }
  }
  if (n == 0) return;
  cancelled_calls_.fetch_add(n, std::memory_order_relaxed);
  spdlog::warn("etcd at {}: cancelled {} unanswered call(s): {}", endpoints_[endpoint]->target,
               n, why);
}

// ------------------------------------------------------------- the walk ----

// The endpoints one call tries, from the start endpoint on, and what each
// attempt's outcome means: the one fail-over algorithm of Call() and
// TxnAsync().
class Client::Walk {
 public:
  Walk(Client& c, CallKind kind)
      : c_(c),
        kind_(kind),
        n_(c.endpoints_.size()),
        current_(c.current_.load() % n_),
        at_(c.StartEndpoint()),
        tried_(n_, false) {}

  bool exhausted() const { return !at_.has_value(); }
  size_t index() const { return *at_; }
  Endpoint& endpoint() const { return *c_.endpoints_[index()]; }

  // Gives up on the endpoint in hand, for `why`; the next one is chosen now,
  // from what the probes know at this moment (a member that went silent
  // since the call started is skipped).
  void Skip(std::string why) {
    why_.push_back(std::move(why));
    tried_[*at_] = true;
    at_ = c_.Next(tried_, &why_);
    refreshed_ = false;
  }
  void SkipUnconnected() {
    Skip(absl::StrCat(endpoint().target, ": not connected within ",
                      c_.options_.dial_timeout.count(), " ms (or refused)"));
  }
  // Whether a member that is not silent is left to try after the one in
  // hand: then a connection that failed (refused, unreachable) is given up
  // at once instead of waiting dial_timeout for it to come back.
  bool HasAlternative() const {
    std::vector<bool> tried = tried_;
    tried[*at_] = true;
    const std::optional<size_t> next = c_.Next(tried, nullptr);
    return next && c_.RankOf(*next) != MemberRank::kSilent;
  }

  // Before sending on the endpoint in hand: the auth token. OK: send;
  // kUnavailable: Skip()ped, try the next; other: the call's result.
  absl::Status Authenticate() {
    absl::Status auth = c_.EnsureToken(endpoint(), /*stale=*/nullptr);
    if (absl::IsUnavailable(auth)) {
      Skip(std::string(auth.message()));
    }
    return auth;
  }

  enum class Step {
    kReturn,  // *result is the call's outcome
    kRetry,   // send again on the same endpoint (new token)
    kNext,    // try the next endpoint (if any)
  };
  // After an attempt that carried `token` ended with `s`; `cancelled`: why
  // the probe cancelled it, if it did.
  Step After(const grpc::Status& s, const std::string& token, const std::string& cancelled,
             absl::Status* result) {
    const size_t i = index();
    Endpoint& ep = endpoint();
    if (s.ok()) {
      c_.NoteCall(i, /*failed=*/false);
      c_.MoveTo(current_, i, "answered");
      *result = absl::OkStatus();
      return Step::kReturn;
    }
    const std::string message =
        cancelled.empty() ? s.error_message() : absl::StrCat("cancelled: ", cancelled);
    const FailureClass fc = Classify(s, kind_);
    // Not a definite answer from etcd: the member ranks below those that
    // answer until a probe or a call hears from it again.
    if (fc == FailureClass::kNotApplied || fc == FailureClass::kUnknown) {
      c_.NoteCall(i, /*failed=*/true);
    }
    if (fc == FailureClass::kBadToken && !refreshed_ && !c_.options_.username.empty()) {
      // etcd checks the token before proposing: nothing was applied.
      refreshed_ = true;
      absl::Status again = c_.EnsureToken(ep, &token);
      if (again.ok()) return Step::kRetry;
      if (!absl::IsUnavailable(again)) {
        *result = again;
        return Step::kReturn;
      }
      Skip(std::string(again.message()));
      return Step::kNext;
    }
    if (fc == FailureClass::kNotApplied) {
      Skip(absl::StrCat(ep.target, ": ", message));
      return Step::kNext;
    }
    if (fc == FailureClass::kUnknown) {
      c_.unknown_outcomes_.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("etcd at {}: commit sent but not answered ({}): outcome unknown", ep.target,
                   message);
      // The member did not answer: let the next call start elsewhere. (A
      // call the probe cancelled: the probe has moved, if it had to.)
      if (n_ > 1 && cancelled.empty()) {
        std::vector<bool> others(n_, false);
        others[i] = true;
        if (std::optional<size_t> next = c_.Next(others, nullptr)) {
          c_.MoveTo(i, *next, "a commit was not answered");
        }
      }
      *result = absl::UnknownError(
          absl::StrCat("etcd at ", ep.target, ": commit sent but not answered (", message,
                       "); its outcome is unknown: resolve by reading"));
      return Step::kReturn;
    }
    *result = FinalStatus(s, ep.target);
    return Step::kReturn;
  }

  absl::Status Unavailable() const {
    return absl::UnavailableError(
        absl::StrCat("etcd: no endpoint could serve the request, nothing was written: ",
                     absl::StrJoin(why_, "; ")));
  }

 private:
  Client& c_;
  const CallKind kind_;
  const size_t n_;
  // The current endpoint when the call started (the walk may start at
  // another one, when it went silent).
  const size_t current_;
  std::optional<size_t> at_;  // the endpoint in hand; nullopt: exhausted
  std::vector<bool> tried_;
  bool refreshed_ = false;
  std::vector<std::string> why_;
};

absl::Status Client::Call(CallKind kind, const Rpc& rpc) {
  Walk walk(*this, kind);
  while (!walk.exhausted()) {
    Endpoint& ep = walk.endpoint();
    if (!WaitConnected(ep, walk.HasAlternative())) {
      walk.SkipUnconnected();
      continue;
    }
    if (absl::Status auth = walk.Authenticate(); !auth.ok()) {
      if (absl::IsUnavailable(auth)) continue;
      return auth;
    }
    for (;;) {
      grpc::ClientContext ctx;
      const std::string token = Prepare(ctx);
      InFlight call{&ctx, walk.index(), NowNs(), {}};
      if (!Register(&call)) {
        walk.Skip(absl::StrCat(ep.target, ": ", call.cancelled_because));
        break;
      }
      const grpc::Status s = rpc(ep, ctx);
      Unregister(&call);
      absl::Status result;
      const Walk::Step step = walk.After(s, token, call.cancelled_because, &result);
      if (step == Walk::Step::kReturn) return result;
      if (step == Walk::Step::kNext) break;
    }
  }
  return walk.Unavailable();
}

// ------------------------------------------------- asynchronous calls ----

// Runs `fn` as a callback of this client: a synchronous call made from it
// must not wait for another callback (Client::InCallback).
template <typename Fn>
void RunAsCallback(const Client* c, Fn&& fn) {
  const void* outer = tls_callback_client;
  tls_callback_client = c;
  fn();
  tls_callback_client = outer;
}

// One TxnAsync() call: the walk of Call() as a chain of callbacks (wait for
// the connection, send, judge the answer), on gRPC's callback threads. On the
// heap; deletes itself after calling back.
class Client::AsyncTxn : public Client::ConnectWaiter {
 public:
  AsyncTxn(Client& c, CallKind kind, const etcdserverpb::TxnRequest* request,
           etcdserverpb::TxnResponse* response, Done done)
      : c_(c), walk_(c, kind), request_(request), response_(response), done_(std::move(done)) {}

  void Attempt() {
    if (walk_.exhausted() || c_.Closing()) {
      return Finish(c_.Closing() ? absl::UnavailableError("etcd: the store is closing")
                                 : walk_.Unavailable());
    }
    const grpc_connectivity_state state =
        walk_.endpoint().channel->GetState(/*try_to_connect=*/true);
    if (state == GRPC_CHANNEL_READY) return Send();
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE && walk_.HasAlternative()) {
      walk_.SkipUnconnected();
      return Attempt();
    }
    // Not connected (a rare path: a member down or just restarted): wait
    // for it on the connection thread until the dial deadline.
    dial_deadline_ = MonotonicFromNs(NowNs() +
                                     std::chrono::nanoseconds(c_.options_.dial_timeout).count());
    WaitForChange();
  }

  // On the connection thread: the channel's state changed, or (ok false)
  // the dial deadline passed.
  void Connected(bool ok) override {
    const grpc_connectivity_state state =
        walk_.endpoint().channel->GetState(/*try_to_connect=*/true);
    if (state == GRPC_CHANNEL_READY) return Send();
    if (!ok || c_.Closing() ||
        (state == GRPC_CHANNEL_TRANSIENT_FAILURE && walk_.HasAlternative())) {
      walk_.SkipUnconnected();
      return Attempt();
    }
    WaitForChange();
  }

 private:
  void WaitForChange() {
    const grpc_connectivity_state state =
        walk_.endpoint().channel->GetState(/*try_to_connect=*/true);
    if (state == GRPC_CHANNEL_READY) return Send();
    walk_.endpoint().channel->NotifyOnStateChange(state, dial_deadline_, &c_.connect_cq_, this);
  }

  void Send() {
    if (absl::Status auth = walk_.Authenticate(); !auth.ok()) {
      if (absl::IsUnavailable(auth)) return Attempt();
      return Finish(auth);
    }
    context_ = std::make_unique<grpc::ClientContext>();
    token_ = c_.Prepare(*context_);
    call_ = InFlight{context_.get(), walk_.index(), NowNs(), {}};
    if (!c_.Register(&call_)) {
      walk_.Skip(absl::StrCat(walk_.endpoint().target, ": ", call_.cancelled_because));
      return Attempt();
    }
    walk_.endpoint().kv->async()->Txn(context_.get(), request_, response_,
                                      [this](grpc::Status s) { Answered(std::move(s)); });
  }

  void Answered(grpc::Status status) {
    c_.Unregister(&call_);
    absl::Status result;
    switch (walk_.After(status, token_, call_.cancelled_because, &result)) {
      case Walk::Step::kReturn:
        return Finish(result);
      case Walk::Step::kRetry:
        return Send();
      case Walk::Step::kNext:
        return Attempt();
    }
  }

  void Finish(absl::Status result) {
    Done done = std::move(done_);
    Client& c = c_;
    delete this;
    RunAsCallback(&c, [&] { done(std::move(result)); });
    c.AsyncFinished();
  }

  Client& c_;
  Walk walk_;
  const etcdserverpb::TxnRequest* const request_;
  etcdserverpb::TxnResponse* const response_;
  Done done_;
  gpr_timespec dial_deadline_{};
  std::unique_ptr<grpc::ClientContext> context_;
  std::string token_;
  InFlight call_;
};

// A RunAt() alarm. On the heap; deletes itself once it fired or was
// cancelled.
class Client::Alarm {
 public:
  Alarm(Client& c, absl::AnyInvocable<void()> fn) : c_(c), fn_(std::move(fn)) {}
  void Set(int64_t deadline_ns) {
    alarm_.Set(MonotonicFromNs(deadline_ns), [this](bool fired) { Fired(fired); });
  }
  void Cancel() { alarm_.Cancel(); }

 private:
  void Fired(bool fired) {
    {
      absl::MutexLock lock(&c_.calls_mu_);
      c_.alarms_.erase(this);
    }
    if (fired) RunAsCallback(&c_, [this] { fn_(); });
    Client& c = c_;
    // grpc::Alarm may not be destroyed from its own callback before it
    // returns; gRPC holds its own reference meanwhile.
    delete this;
    c.AsyncFinished();
  }

  Client& c_;
  absl::AnyInvocable<void()> fn_;
  grpc::Alarm alarm_;
};

// One asynchronous status probe of a member. On the heap; deletes itself in
// ProbeAnswered.
class Client::Probe {
 public:
  Probe(size_t endpoint, int64_t sent_ns) : endpoint_(endpoint), sent_ns_(sent_ns) {}
  size_t endpoint() const { return endpoint_; }
  int64_t sent_ns() const { return sent_ns_; }
  grpc::ClientContext& context() { return context_; }
  const etcdserverpb::StatusRequest& request() const { return request_; }
  etcdserverpb::StatusResponse& response() { return response_; }
  void Cancel() { context_.TryCancel(); }

 private:
  const size_t endpoint_;
  const int64_t sent_ns_;
  grpc::ClientContext context_;
  etcdserverpb::StatusRequest request_;
  etcdserverpb::StatusResponse response_;
};

bool Client::Closing() const {
  absl::MutexLock lock(&calls_mu_);
  return closing_;
}

bool Client::BeginAsync() {
  absl::MutexLock lock(&calls_mu_);
  if (closing_) return false;
  ++pending_async_;
  return true;
}

void Client::AsyncFinished() {
  absl::MutexLock lock(&calls_mu_);
  --pending_async_;
}

bool Client::InCallback() const { return tls_callback_client == this; }

void Client::TxnAsync(CallKind kind, const etcdserverpb::TxnRequest* request,
                      etcdserverpb::TxnResponse* response, Done done) {
  if (!BeginAsync()) {
    done(absl::UnavailableError("etcd: the store is closing; nothing was written"));
    return;
  }
  (new AsyncTxn(*this, kind, request, response, std::move(done)))->Attempt();
}

void Client::RunAt(int64_t deadline_ns, absl::AnyInvocable<void()> fn) {
  if (!BeginAsync()) return;
  auto* a = new Alarm(*this, std::move(fn));
  {
    absl::MutexLock lock(&calls_mu_);
    alarms_.insert(a);
  }
  a->Set(deadline_ns);
}

void Client::ConnectLoop() {
  pthread_setname_np(pthread_self(), "etcd-connect");
  void* tag = nullptr;
  bool ok = false;
  while (connect_cq_.Next(&tag, &ok)) static_cast<ConnectWaiter*>(tag)->Connected(ok);
}

void Client::Shutdown() {
  {
    absl::MutexLock lock(&calls_mu_);
    if (shut_down_) return;
    closing_ = true;
    for (InFlight* f : in_flight_) {
      if (f->cancelled_because.empty()) f->cancelled_because = "the store is closing";
      f->context->TryCancel();
    }
    for (Alarm* a : alarms_) a->Cancel();
    for (Probe* p : probes_) p->Cancel();
    // Every asynchronous call and alarm has called back (a call waiting for
    // a connection does so by its dial deadline at the latest).
    calls_mu_.Await(absl::Condition(
        +[](size_t* pending) { return *pending == 0; }, &pending_async_));
    shut_down_ = true;
  }
  connect_cq_.Shutdown();
  if (connect_thread_.joinable()) connect_thread_.join();
}

Client::~Client() { Shutdown(); }

// --------------------------------------------------------- health probe ----

ProbeVerdict JudgeProbe(const MemberHealth& h, uint64_t previous_term) {
  if (!h.answered || h.leader == 0) return ProbeVerdict::kFailed;
  if (previous_term != 0 && h.term > previous_term) return ProbeVerdict::kLeaderChanged;
  return ProbeVerdict::kHealthy;
}

bool CaughtUp(const MemberHealth& preferred, const MemberHealth& in_use) {
  return preferred.answered && preferred.leader != 0 &&
         preferred.applied_index >= in_use.raft_index;
}

MemberHealth Client::StatusOf(size_t i, std::chrono::milliseconds timeout) {
  Endpoint& ep = *endpoints_[i];
  MemberHealth h;
  if (absl::Status auth = EnsureToken(ep, /*stale=*/nullptr); !auth.ok()) {
    h.error = std::string(auth.message());
    return h;
  }
  // A connection is given dial_timeout to come up, as calls give it (a
  // refused one fails at once when there are other members).
  if (!WaitConnected(ep, /*give_up_on_failure=*/endpoints_.size() > 1)) {
    h.error = absl::StrCat("not connected within ", options_.dial_timeout.count(), " ms");
    return h;
  }
  grpc::ClientContext ctx;
  Prepare(ctx);  // the token and require-leader ...
  ctx.set_deadline(After(timeout));  // ... with the probe's own deadline
  etcdserverpb::StatusResponse resp;
  const grpc::Status s = ep.maintenance->Status(&ctx, etcdserverpb::StatusRequest(), &resp);
  if (!s.ok()) {
    h.error = s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED
                  ? absl::StrCat("no status within ", timeout.count(), " ms")
                  : s.error_message();
    return h;
  }
  h.answered = true;
  h.leader = resp.leader();
  h.term = resp.raftterm();
  h.raft_index = resp.raftindex();
  h.applied_index = resp.raftappliedindex();
  h.db_size = resp.dbsize();
  h.db_size_in_use = resp.dbsizeinuse();
  h.revision = resp.header().revision();
  h.alarms.assign(resp.errors().begin(), resp.errors().end());
  return h;
}

void Client::StartProbes(size_t i) {
  {
    absl::MutexLock lock(&calls_mu_);
    if (probing_[i]) return;
    probing_[i] = true;
  }
  ProbeTick(i);
}

void Client::ProbeTick(size_t i) {
  const int64_t now = NowNs();
  if (!SendProbe(i, now)) {
    RunAt(now + std::chrono::nanoseconds(options_.health_probe_interval).count(),
          [this, i] { ProbeTick(i); });
  }
}

bool Client::SendProbe(size_t i, int64_t now_ns) {
  const grpc_connectivity_state state = endpoints_[i]->channel->GetState(/*try_to_connect=*/true);
  {
    absl::MutexLock lock(&calls_mu_);
    MemberView& m = members_[i];
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) {
      m.probe_failed = true;  // refused or unreachable: silent until it connects
      m.has_leader = false;
      return false;
    }
    // Connecting (or idle, now connecting): nothing to learn yet.
    if (state != GRPC_CHANNEL_READY) return false;
  }
  if (!BeginAsync()) return true;  // closing: the chain ends
  auto* probe = new Probe(i, now_ns);
  {
    absl::MutexLock lock(&calls_mu_);
    members_[i].probe_sent_ns = now_ns;
    probes_.insert(probe);
    if (closing_) probe->Cancel();
  }
  // No require-leader: a member without a leader answers, and says so.
  probe->context().set_deadline(After(options_.health_probe_timeout));
  if (!options_.username.empty()) {
    const std::string token = Token();
    if (!token.empty()) probe->context().AddMetadata(kTokenMetadata, token);
  }
  endpoints_[i]->maintenance->async()->Status(
      &probe->context(), &probe->request(), &probe->response(),
      [this, probe](grpc::Status s) { ProbeAnswered(probe, s); });
  return true;
}

void Client::ProbeAnswered(Probe* probe, const grpc::Status& s) {
  // Any answer from etcd itself (even a refusal) shows the member alive.
  const bool answered = s.ok() || Classify(s, CallKind::kRead) != FailureClass::kNotApplied;
  const size_t i = probe->endpoint();
  {
    absl::MutexLock lock(&calls_mu_);
    probes_.erase(probe);
    MemberView& m = members_[i];
    m.probe_sent_ns = 0;
    m.probe_failed = !answered;
    if (answered) {
      m.answered = true;
      m.answered_ns = NowNs();
      m.has_leader = s.ok() && probe->response().leader() != 0;
      // Found back: calls may go there again.
      if (m.has_leader) failed_[i].clear();
    } else {
      m.has_leader = false;
    }
  }
  // The next probe one interval after this one was sent (at once when it
  // took longer).
  const int64_t next =
      probe->sent_ns() + std::chrono::nanoseconds(options_.health_probe_interval).count();
  delete probe;
  RunAt(next, [this, i] { ProbeTick(i); });
  AsyncFinished();
}

void Client::NoteProbe(size_t i, const MemberHealth& h) {
  absl::MutexLock lock(&calls_mu_);
  MemberView& m = members_[i];
  m.probe_failed = !h.answered;
  if (h.answered) {
    m.answered = true;
    m.answered_ns = NowNs();
  }
  m.has_leader = h.answered && h.leader != 0;
}

std::optional<MemberHealth> Client::LastHealth() const {
  absl::MutexLock lock(&health_mu_);
  return last_health_;
}

void Client::ProbeOnce() {
  const size_t n = endpoints_.size();
  const size_t cur = current_.load() % n;
  // A leader change seen one probe ago: what was sent to that member before
  // it and is still unanswered was most likely dropped with the old leader
  // (etcd 3.4 would hold it until the request's deadline).
  if (leader_change_) {
    const auto [e, at] = *leader_change_;
    leader_change_.reset();
    CancelCalls(e, at, "the member's raft leader changed while it waited");
  }
  const int64_t now = NowNs();
  // Every member, each on its own schedule (a chain of asynchronous probes
  // that this thread's waits do not delay): where calls go when they leave
  // the member in use. Started once; with one member there is no choice to
  // make.
  if (n > 1) {
    for (size_t j = 0; j < n; ++j) StartProbes(j);
  }
  const std::chrono::milliseconds timeout = options_.health_probe_timeout;
  const MemberHealth h = StatusOf(cur, timeout);
  const ProbeVerdict verdict = JudgeProbe(h, last_term_[cur]);
  // (Asked with require-leader: "no leader" comes back as no answer; it is
  // the verdict below that counts for the member in use.)
  NoteProbe(cur, h);
  if (h.answered) {
    last_term_[cur] = h.term;
    absl::MutexLock lock(&health_mu_);
    last_health_ = h;
  }
  if (verdict == ProbeVerdict::kLeaderChanged) leader_change_ = {cur, now};
  if (verdict == ProbeVerdict::kFailed) {
    probe_failures_.fetch_add(1, std::memory_order_relaxed);
    const std::string why = h.answered ? std::string("the member has no leader")
                                       : absl::StrCat("the member does not answer: ", h.error);
    // With other members to go to, no new call goes here until a probe
    // finds the member healthy; none of those in flight waits any longer.
    if (n > 1) MarkFailed(cur, absl::StrCat("failed its health probe (", why, ")"));
    CancelCalls(cur, INT64_MAX, why);
    // Another member with a leader: the ones whose probes answered with a
    // leader first, the first (the host's own) preferred; silent ones not
    // at all (a crashed host would hold this probe for its timeout).
    std::vector<bool> tried(n, false);
    tried[cur] = true;
    while (std::optional<size_t> next = Next(tried, nullptr)) {
      const size_t j = *next;
      tried[j] = true;
      const MemberHealth other = StatusOf(j, timeout);
      NoteProbe(j, other);
      if (JudgeProbe(other, 0) != ProbeVerdict::kHealthy) continue;
      MarkFailed(j, "");
      last_term_[j] = other.term;
      spdlog::warn("etcd at {}: {}; moving to {}", endpoints_[cur]->target, why,
                   endpoints_[j]->target);
      MoveTo(cur, j, "the health probe found the member in use failed");
      absl::MutexLock lock(&health_mu_);
      last_health_ = other;
      break;
    }
    return;
  }
  MarkFailed(cur, "");
  // Back to the first endpoint once it has a leader and has caught up. Its
  // own probe (sent above) says when it answers with a leader again; a
  // silent one is not waited for here. (Other members marked failed are
  // cleared by their probes.)
  if (cur == 0 || RankOf(0) != MemberRank::kReady) return;
  const MemberHealth first = StatusOf(0, timeout);
  NoteProbe(0, first);
  if (JudgeProbe(first, 0) != ProbeVerdict::kHealthy) return;
  MarkFailed(0, "");
  if (CaughtUp(first, h)) {
    last_term_[0] = first.term;
    MoveTo(cur, 0, "the first endpoint has a leader and has caught up");
  }
}

}  // namespace baton::storage::etcd_internal

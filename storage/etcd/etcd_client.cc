#include "storage/etcd/etcd_client.h"

#include <algorithm>
#include <climits>
#include <fstream>
#include <sstream>
#include <utility>

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
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
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
  return s;
}

bool Client::WaitConnected(Endpoint& ep) {
  grpc_connectivity_state state = ep.channel->GetState(/*try_to_connect=*/true);
  if (state == GRPC_CHANNEL_READY) return true;
  // An absolute deadline (WaitForConnected waits in a loop; a relative one
  // would restart at every state change).
  const gpr_timespec deadline = gpr_time_add(
      gpr_now(GPR_CLOCK_MONOTONIC), After(options_.dial_timeout));
  return ep.channel->WaitForConnected(deadline);
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

size_t Client::StartEndpoint() {
  const size_t current = current_.load() % endpoints_.size();
  if (current == 0) return 0;
  // The first endpoint is the preferred one (deployments list the host's own
  // member first). A call moved away when it was down; once it is back, go
  // back to it, so that the crash of the member this client moved to does
  // not cost a request timeout first.
  const gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);
  const int64_t now_ns = static_cast<int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec;
  int64_t last = last_fail_back_probe_ns_.load(std::memory_order_relaxed);
  if (now_ns - last < std::chrono::nanoseconds(kFailBackProbeInterval).count() ||
      !last_fail_back_probe_ns_.compare_exchange_strong(last, now_ns)) {
    return current;
  }
  // try_to_connect: an idle channel starts connecting, so a later probe
  // finds it ready.
  Endpoint& first = *endpoints_[0];
  if (first.channel->GetState(/*try_to_connect=*/true) != GRPC_CHANNEL_READY) return current;
  size_t expected = current;
  if (current_.compare_exchange_strong(expected, 0)) {
    failovers_.fetch_add(1, std::memory_order_relaxed);
    spdlog::info("etcd: back on the first endpoint {}", first.target);
    return 0;
  }
  return expected % endpoints_.size();
}

absl::Status Client::Call(CallKind kind, const Rpc& rpc) {
  const size_t n = endpoints_.size();
  const size_t start = StartEndpoint();
  std::vector<std::string> why;
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (start + k) % n;
    Endpoint& ep = *endpoints_[i];
    if (!WaitConnected(ep)) {
      why.push_back(absl::StrCat(ep.target, ": not connected within ",
                                 options_.dial_timeout.count(), " ms"));
      continue;
    }
    absl::Status auth = EnsureToken(ep, /*stale=*/nullptr);
    if (absl::IsUnavailable(auth)) {
      why.push_back(std::string(auth.message()));
      continue;
    }
    if (!auth.ok()) return auth;

    bool refreshed = false;
    for (;;) {
      grpc::ClientContext ctx;
      const std::string token = Prepare(ctx);
      const grpc::Status s = rpc(ep, ctx);
      if (s.ok()) {
        size_t expected = start;
        if (i != start && current_.compare_exchange_strong(expected, i)) {
          failovers_.fetch_add(1, std::memory_order_relaxed);
          spdlog::info("etcd: now using endpoint {}", ep.target);
        }
        return absl::OkStatus();
      }
      const FailureClass c = Classify(s, kind);
      if (c == FailureClass::kBadToken && !refreshed && !options_.username.empty()) {
        // etcd checks the token before proposing: nothing was applied.
        refreshed = true;
        absl::Status again = EnsureToken(ep, &token);
        if (again.ok()) continue;
        if (!absl::IsUnavailable(again)) return again;
        why.push_back(std::string(again.message()));
        break;
      }
      if (c == FailureClass::kNotApplied) {
        why.push_back(absl::StrCat(ep.target, ": ", s.error_message()));
        break;
      }
      if (c == FailureClass::kUnknown) {
        unknown_outcomes_.fetch_add(1, std::memory_order_relaxed);
        spdlog::warn("etcd at {}: commit sent but not answered ({}): outcome unknown",
                     ep.target, s.error_message());
        // The member did not answer: let the next call start elsewhere.
        size_t expected = i;
        if (n > 1 && current_.compare_exchange_strong(expected, (i + 1) % n)) {
          failovers_.fetch_add(1, std::memory_order_relaxed);
        }
        return absl::UnknownError(absl::StrCat(
            "etcd at ", ep.target, ": commit sent but not answered (",
            s.error_message(), "); its outcome is unknown: resolve by reading"));
      }
      return FinalStatus(s, ep.target);
    }
  }
  return absl::UnavailableError(absl::StrCat(
      "etcd: no endpoint could serve the request, nothing was written: ",
      absl::StrJoin(why, "; ")));
}

}  // namespace baton::storage::etcd_internal

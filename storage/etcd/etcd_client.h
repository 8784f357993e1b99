// Internal to the etcd backend (and its benchmark): the gRPC connection to an
// etcd cluster, with fail-over between endpoints, auth tokens and the mapping
// of gRPC/etcd errors onto baton's codes. Includes gRPC and the generated etcd
// API; nothing outside storage/etcd/ and bench/etcd_* should include it.
//
// Thread-safe: the endpoint list is fixed at creation; the current endpoint
// and the auth token are guarded; gRPC stubs are themselves thread-safe.
#ifndef BATON_STORAGE_ETCD_ETCD_CLIENT_H_
#define BATON_STORAGE_ETCD_ETCD_CLIENT_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "storage/etcd/etcd_store.h"
#include "storage/etcd/proto/rpc.grpc.pb.h"

namespace baton::storage::etcd_internal {

// How often a client that moved off the first endpoint checks whether it can
// go back to it.
inline constexpr std::chrono::milliseconds kFailBackProbeInterval{1000};

// One member's connection.
struct Endpoint {
  std::string target;  // host:port, as given to gRPC
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<etcdserverpb::KV::Stub> kv;
  std::unique_ptr<etcdserverpb::Maintenance::Stub> maintenance;
  std::unique_ptr<etcdserverpb::Auth::Stub> auth;
};

// Whether a request may be sent again elsewhere after an ambiguous failure.
enum class CallKind {
  kRead,   // idempotent: any transport failure moves on to the next endpoint
  kWrite,  // a failure after sending is kUnknown, never retried
};

// How one failed RPC is to be treated (exposed for unit tests).
enum class FailureClass {
  kNotApplied,     // nothing happened; try the next endpoint
  kBadToken,       // etcd says the auth token is invalid/expired: re-auth
  kUnknown,        // sent, outcome unknown (writes only)
  kFinal,          // a definite answer (e.g. permission denied): return it
};
FailureClass Classify(const grpc::Status& status, CallKind kind);

// The baton status for a final gRPC failure (kFinal in Classify).
absl::Status FinalStatus(const grpc::Status& status, const std::string& target);

class Client {
 public:
  static absl::StatusOr<std::unique_ptr<Client>> Create(const EtcdOptions& options);

  // Runs `rpc` on the current endpoint; on a failure that left nothing
  // applied, on the next ones, each at most once. `rpc` gets a fresh context
  // (deadline = request_timeout, auth token set) for each attempt and must
  // only issue the call (its response lives in the caller). Returns OK,
  // kUnavailable (naming every endpoint and why), kUnknown (writes), or a
  // final error.
  using Rpc = std::function<grpc::Status(Endpoint&, grpc::ClientContext&)>;
  [[nodiscard]] absl::Status Call(CallKind kind, const Rpc& rpc);

  // Sets the deadline, etcd's require-leader flag and the auth token on a
  // context, as Call() does (also for the benchmark's raw requests). Returns
  // the token it set ("" for none).
  std::string Prepare(grpc::ClientContext& context);

  Endpoint& CurrentEndpoint();
  const EtcdOptions& options() const { return options_; }
  EtcdStoreStats Stats() const;
  void CountUnknown() { unknown_outcomes_.fetch_add(1, std::memory_order_relaxed); }

 private:
  explicit Client(const EtcdOptions& options) : options_(options) {}

  // Connected within dial_timeout?
  bool WaitConnected(Endpoint& endpoint);
  // The endpoint a call starts at: the current one, or the first one again
  // when the current one is another and the first one's connection is up
  // (checked at most every kFailBackProbeInterval).
  size_t StartEndpoint();
  // Gets a token when auth is configured and none is held yet; with
  // `stale`, a new one unless another thread already replaced *stale (so a
  // token expiring under many callers costs one Authenticate, not one each).
  absl::Status EnsureToken(Endpoint& endpoint, const std::string* stale);
  std::string Token() const;

  const EtcdOptions options_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  std::atomic<size_t> current_{0};
  // gpr monotonic time (ns) of the last fail-back probe.
  std::atomic<int64_t> last_fail_back_probe_ns_{0};

  // Held across Authenticate, so that concurrent callers wait for one token
  // instead of each asking for their own.
  mutable absl::Mutex token_mu_;
  std::string token_ ABSL_GUARDED_BY(token_mu_);
  // True once Authenticate answered (token_ may stay empty: credentials were
  // configured but the cluster has auth disabled).
  bool authenticated_ ABSL_GUARDED_BY(token_mu_) = false;

  std::atomic<uint64_t> failovers_{0};
  std::atomic<uint64_t> unknown_outcomes_{0};
  std::atomic<uint64_t> authentications_{0};
};

}  // namespace baton::storage::etcd_internal

#endif  // BATON_STORAGE_ETCD_ETCD_CLIENT_H_

// Internal to the etcd backend (and its benchmark): the gRPC connection to an
// etcd cluster, with fail-over between endpoints, auth tokens, the mapping
// of gRPC/etcd errors onto baton's codes, asynchronous Txns for commits and
// the health probe that moves off a dead or leaderless member. Includes gRPC
// and the generated etcd API; nothing outside storage/etcd/ and bench/etcd_*
// should include it.
//
// Threads: asynchronous calls (TxnAsync) and RunAt() alarms call back on
// gRPC's callback threads (the thread that read the answer, usually: no
// hand-off); synchronous calls (Call) run on the caller's thread. One
// connection thread of the client waits for members that are not connected
// (and runs the calls that were waiting on it until they are sent).
// ProbeOnce() is driven by the store's probe thread; the status probes of
// every member that rank them for the calls' walks run as chains of
// asynchronous calls and alarms on gRPC's callback threads.
//
// Thread-safe: the endpoint list is fixed at creation; the current endpoint,
// the auth token and the calls in flight are guarded; gRPC stubs are
// themselves thread-safe.
#ifndef BATON_STORAGE_ETCD_ETCD_CLIENT_H_
#define BATON_STORAGE_ETCD_ETCD_CLIENT_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "storage/etcd/etcd_store.h"
#include "storage/etcd/proto/rpc.grpc.pb.h"

namespace baton::storage::etcd_internal {

// How often a client without a health probe that moved off the first
// endpoint checks whether it can go back to it.
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

// What one health probe learned about a member (Maintenance.Status).
struct MemberHealth {
  bool answered = false;
  std::string error;            // why not, when !answered
  uint64_t leader = 0;          // 0: no leader
  uint64_t term = 0;
  uint64_t raft_index = 0;
  uint64_t applied_index = 0;
  int64_t db_size = 0;
  int64_t db_size_in_use = 0;
  int64_t revision = 0;
  std::vector<std::string> alarms;
};

// What the probe does about the member in use (exposed for unit tests).
enum class ProbeVerdict {
  kHealthy,       // carry on
  kLeaderChanged, // new term: cancel what was sent before, after a grace
  kFailed,        // dead, unreachable or leaderless: move elsewhere now
};
// `previous_term`: the term the last probe of this member saw (0: none).
ProbeVerdict JudgeProbe(const MemberHealth& health, uint64_t previous_term);
// How a call ranks a member when it chooses where to go (exposed for unit
// tests). Lower is tried first.
enum class MemberRank {
  kReady,     // its last probe answered and saw a leader
  kNoLeader,  // its last probe answered without a leader (refuses fast)
  kUnknown,   // not probed yet (or probes off)
  kSuspect,   // a call to it failed after its last answer
  kSilent,    // its probe went unanswered (or the member in use failed its
              // probe): calls skip it while another member is not silent
};
// What the client knows of one member (from its probes and calls); times are
// NowNs().
struct MemberView {
  bool marked_failed = false;  // the probe of the member in use failed it
  int64_t probe_sent_ns = 0;   // a probe unanswered since (0: none)
  bool probe_failed = false;   // the last probe got no answer
  bool answered = false;       // a probe has answered
  bool has_leader = false;     // ... and saw a leader
  int64_t answered_ns = 0;     // when it last answered a probe or a call
  int64_t call_failed_ns = 0;  // when a call to it last failed (0: never)
};
MemberRank RankMember(const MemberView& m, int64_t now_ns, int64_t silent_after_ns);
// The next member a call tries, among those not `tried`: the lowest rank,
// then the lowest index (the host's own member is listed first). Silent
// members are skipped (nullopt when only they are left) unless every member
// is silent: then nothing is known and each is tried in turn.
std::optional<size_t> NextMember(const std::vector<MemberRank>& ranks,
                                 const std::vector<bool>& tried);

// Whether the preferred member may take over again from the one in use:
// it has a leader and has applied everything the one in use had in its log
// when it was probed just before.
bool CaughtUp(const MemberHealth& preferred, const MemberHealth& in_use);

class Client {
 public:
  static absl::StatusOr<std::unique_ptr<Client>> Create(const EtcdOptions& options);
  // Shutdown(), if not done.
  ~Client();

  // Runs `rpc` on the current endpoint; on a failure that left nothing
  // applied, on the next ones, each at most once. `rpc` gets a fresh context
  // (deadline = request_timeout, auth token set) for each attempt and must
  // only issue the call (its response lives in the caller). Returns OK,
  // kUnavailable (naming every endpoint and why), kUnknown (writes), or a
  // final error. Blocks the calling thread (also when it is the completion
  // thread: the call does not need it).
  using Rpc = std::function<grpc::Status(Endpoint&, grpc::ClientContext&)>;
  [[nodiscard]] absl::Status Call(CallKind kind, const Rpc& rpc);

  // Call() for one Txn, without blocking: the walk over the endpoints is
  // the same; `done` runs on a gRPC callback thread (or on the calling
  // thread, before TxnAsync returns, when the call ends without being sent:
  // closing, auth errors). `request` and `response` must stay valid until
  // `done` runs. `done` must be short: it holds a gRPC thread.
  using Done = absl::AnyInvocable<void(absl::Status)>;
  void TxnAsync(CallKind kind, const etcdserverpb::TxnRequest* request,
                etcdserverpb::TxnResponse* response, Done done);

  // Runs `fn` on a gRPC callback thread at `deadline_ns` (NowNs() time), or
  // never when the client shuts down first.
  void RunAt(int64_t deadline_ns, absl::AnyInvocable<void()> fn);

  // One health probe (EtcdOptions::health_probe_*): judges the member in
  // use, moves to another and cancels calls as the options say; asks every
  // other member for its status without waiting (the answers, or their
  // absence, rank the members for the calls' walks). Called by the store's
  // probe thread, never concurrently with itself.
  void ProbeOnce();
  // The last answer of the member in use to a probe (nullopt before the
  // first).
  std::optional<MemberHealth> LastHealth() const;
  // One Maintenance.Status on endpoint `i` alone, within `timeout`.
  MemberHealth StatusOf(size_t i, std::chrono::milliseconds timeout);

  // Cancels every call in flight and every later one, and waits until their
  // callbacks have run. Idempotent; not from a callback of this client.
  void Shutdown();

  // Sets the deadline, etcd's require-leader flag and the auth token on a
  // context, as Call() does (also for the benchmark's raw requests). Returns
  // the token it set ("" for none).
  std::string Prepare(grpc::ClientContext& context);

  Endpoint& CurrentEndpoint();
  size_t endpoint_count() const { return endpoints_.size(); }
  Endpoint& endpoint(size_t i) { return *endpoints_[i]; }
  const EtcdOptions& options() const { return options_; }
  EtcdStoreStats Stats() const;
  void CountUnknown() { unknown_outcomes_.fetch_add(1, std::memory_order_relaxed); }
  // True inside a callback of this client (TxnAsync's `done`, RunAt's
  // `fn`), where waiting for another of its answers could wait forever.
  bool InCallback() const;
  // The monotonic time the client's decisions use (gRPC's clock), in ns.
  static int64_t NowNs();

 private:
  class Walk;
  class AsyncTxn;
  class Alarm;
  class Probe;
  // Something waiting on connect_cq_ for a channel's state to change.
  struct ConnectWaiter {
    virtual ~ConnectWaiter() = default;
    // The state changed (ok) or the wait's deadline passed (!ok).
    virtual void Connected(bool ok) = 0;
  };
  // A call that the probe may cancel.
  struct InFlight {
    grpc::ClientContext* context = nullptr;
    size_t endpoint = 0;
    int64_t started_ns = 0;
    // Why it was cancelled, if it was (set under calls_mu_ while
    // registered).
    std::string cancelled_because;
  };

  explicit Client(const EtcdOptions& options) : options_(options) {}

  // Connected within dial_timeout? With `give_up_on_failure`, false as soon
  // as the connection attempt fails (refused, unreachable).
  bool WaitConnected(Endpoint& endpoint, bool give_up_on_failure);
  // The endpoint a call starts at: the current one; without a health probe,
  // the first one again when the current one is another and the first
  // one's connection is up (checked at most every kFailBackProbeInterval).
  size_t StartEndpoint();
  // Gets a token when auth is configured and none is held yet; with
  // `stale`, a new one unless another thread already replaced *stale (so a
  // token expiring under many callers costs one Authenticate, not one each).
  absl::Status EnsureToken(Endpoint& endpoint, const std::string* stale);
  std::string Token() const;
  // Makes `to` the current endpoint if `from` still is; logs and counts it.
  void MoveTo(size_t from, size_t to, const char* why);
  // The member ranks now (RankMember for each endpoint).
  MemberRank RankOf(size_t endpoint) const;
  std::vector<MemberRank> Ranks() const;
  // NextMember() on the ranks now; appends why silent members were skipped
  // to `why` (when it is not null).
  std::optional<size_t> Next(const std::vector<bool>& tried, std::vector<std::string>* why) const;
  // A call to `endpoint` failed without an answer from etcd (true) or was
  // answered (false).
  void NoteCall(size_t endpoint, bool failed);
  // Starts the chain of asynchronous status probes of `endpoint` (one each
  // health_probe_interval, on gRPC's threads) unless it runs; it ends when
  // the client shuts down.
  void StartProbes(size_t endpoint);
  // One link of the chain: a probe, or, when none could be sent, the next
  // link one interval later.
  void ProbeTick(size_t endpoint);
  // Sends a probe to `endpoint` (true: its answer schedules the next link).
  // A member whose connection failed counts as silent at once.
  bool SendProbe(size_t endpoint, int64_t now_ns);
  void ProbeAnswered(Probe* probe, const grpc::Status& status);
  // Records the answer of a synchronous probe (StatusOf) of `endpoint`.
  void NoteProbe(size_t endpoint, const MemberHealth& health);

  // False (and why in call->cancelled_because) when its endpoint is marked
  // failed: the call must not be sent.
  bool Register(InFlight* call);
  // Marks an endpoint failed by the probe (no calls go there), or clears
  // the mark (`why` empty).
  void MarkFailed(size_t endpoint, std::string why);
  void Unregister(InFlight* call);
  // Cancels the calls on `endpoint` started before `before_ns`.
  void CancelCalls(size_t endpoint, int64_t before_ns, const std::string& why);
  void ConnectLoop();
  bool Closing() const;
  // Counts an asynchronous call or alarm; false when closing.
  bool BeginAsync();
  void AsyncFinished();

  const EtcdOptions options_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  std::atomic<size_t> current_{0};
  // gpr monotonic time (ns) of the last fail-back check (no probe).
  std::atomic<int64_t> last_fail_back_probe_ns_{0};

  // Held across Authenticate, so that concurrent callers wait for one token
  // instead of each asking for their own.
  mutable absl::Mutex token_mu_;
  std::string token_ ABSL_GUARDED_BY(token_mu_);
  // True once Authenticate answered (token_ may stay empty: credentials were
  // configured but the cluster has auth disabled).
  bool authenticated_ ABSL_GUARDED_BY(token_mu_) = false;

  // Connection waits of asynchronous calls: NotifyOnStateChange needs a
  // completion queue, and the thread polling it is also what drives a
  // connection attempt that no call is waiting on yet. Idle while the
  // members are connected: answers do not pass through it.
  grpc::CompletionQueue connect_cq_;
  std::thread connect_thread_;

  // Calls in flight (sync and async), for cancellation; asynchronous work
  // (calls, alarms) not finished yet, for Shutdown.
  mutable absl::Mutex calls_mu_;
  absl::flat_hash_set<InFlight*> in_flight_ ABSL_GUARDED_BY(calls_mu_);
  absl::flat_hash_set<Alarm*> alarms_ ABSL_GUARDED_BY(calls_mu_);
  // Per endpoint: why the probe found it failed ("" = not marked).
  std::vector<std::string> failed_ ABSL_GUARDED_BY(calls_mu_);
  // Per endpoint: what probes and calls showed (failed_ aside).
  std::vector<MemberView> members_ ABSL_GUARDED_BY(calls_mu_);
  // Per endpoint: its chain of probes runs.
  std::vector<bool> probing_ ABSL_GUARDED_BY(calls_mu_);
  // Asynchronous probes out, for Shutdown.
  absl::flat_hash_set<Probe*> probes_ ABSL_GUARDED_BY(calls_mu_);
  size_t pending_async_ ABSL_GUARDED_BY(calls_mu_) = 0;
  bool closing_ ABSL_GUARDED_BY(calls_mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(calls_mu_) = false;

  // The probe's memory of the member in use (ProbeOnce only).
  std::vector<uint64_t> last_term_;
  // A leader change seen on endpoint .first at time .second: calls sent
  // there before it are cancelled at the next probe.
  std::optional<std::pair<size_t, int64_t>> leader_change_;
  mutable absl::Mutex health_mu_;
  std::optional<MemberHealth> last_health_ ABSL_GUARDED_BY(health_mu_);

  std::atomic<uint64_t> failovers_{0};
  std::atomic<uint64_t> unknown_outcomes_{0};
  std::atomic<uint64_t> authentications_{0};
  std::atomic<uint64_t> probe_failures_{0};
  std::atomic<uint64_t> cancelled_calls_{0};
};

}  // namespace baton::storage::etcd_internal

#endif  // BATON_STORAGE_ETCD_ETCD_CLIENT_H_

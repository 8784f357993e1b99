// The take-over agent embedded in a baton server: runs a TakeoverDaemon
// (takeover/daemon/daemon.h) inside the server process, so the server that
// answers on a service address is the one that holds it, and fences the
// server's commits by the addresses it holds (framework/fence.h).
//
//   auto config = ParseEmbeddedAgentConfig(takeover_yaml);   // exit 2 on error
//   auto agent = AgentSupervisor::Create(*config);  // or EmbeddedAgent::Create
//   pipeline.SetFenceTable(&(*agent)->fences());
//   (*agent)->RegisterAdminRoutes(admin);    // GET /baton/status, POST /baton/drain
//   ... open the store, start listening (HTTP, gRPC) ...
//   (*agent)->Start(store);                  // only now does it campaign
//   ... SIGTERM ...
//   (*agent)->Shutdown();                    // addresses released, grantors told
//   ... stop the listeners (in-flight requests finish) ...
//
// What it does:
//   - the daemon runs on its own io_context thread, at the config's `nice`
//     (default -10; that thread only, the server keeps its priority); its
//     health check kind is `external` (unless the config names another kind;
//     both then must hold);
//   - a store health loop calls StableStore::Ping() every
//     health_check.period (default 1 s); a ping that fails or takes longer
//     than health_check.timeout (default 1 s) is a failure; after
//     health_check.fall (default 3) failures in a row the agent reports
//     unhealthy (the daemon gives every address away), after
//     health_check.rise (default 2) successes healthy again;
//   - on a slot taken (SlotEvent held=true, epoch E) the fence is written
//     (FenceTable::Establish, on a fence thread, retried every 100 ms..1 s
//     while the store cannot be reached and the holding lasts); on a slot
//     removed the fence is marked released;
//   - GET /baton/status: the daemon's status document plus, per slot, the
//     fence ({"state","epoch","version","error"}) and top-level
//     "fences" (every slot reported here) and "server" counters
//     {"fenced_off","not_ready","fences_established","fence_refused",
//     "fence_errors","store_healthy","store_pings_failed"};
//     POST /baton/drain[?slot=N][&undo=1]: drain one slot (or every slot),
//     or undo it; answers {"slots": [slot numbers], "undo": bool}.
//
// Two ways to run the agent, one interface (ServerAgent):
//   - AgentSupervisor (baton-kvserver's default, `takeover_mode: process`):
//     the agent is a child process, `baton-takeoverd --parent-fd 3`
//     (takeover/daemon/parent_link.h), tied to the server by a socketpair.
//     The server's death is seen by the child at once (EOF) and turned into
//     a drain -- addresses removed, grantors told -- so a crashed server costs
//     about what a planned drain costs, instead of an address that stays in
//     the kernel until the grants lapse. The server sends the store's health
//     every health_check.period as a keepalive; a stopped or hung server
//     (3 periods of silence) is drained the same way. If the child dies, the
//     server marks every slot released at once (writes there answer 503) and
//     starts a new child after a back-off (100 ms doubling to 5 s; reset
//     after 30 s of life). Drain requests are replayed to a new child.
//   - EmbeddedAgent (`takeover_mode: thread`): the daemon on a thread of the
//     server; it dies with the server, and the address then stays until the
//     kernel fence element and the grants time out.
// In both, a slot is served only after the server wrote its fence from a
// held SlotEvent; a released SlotEvent (or the child's death) marks it
// released at once.
//
// Thread safety: Create/Start/Shutdown from one owning thread; fences(),
// StatusJson(), Drain() from any thread.
#ifndef BATON_FRAMEWORK_EMBEDDED_AGENT_H_
#define BATON_FRAMEWORK_EMBEDDED_AGENT_H_

// What this header pulls in is the interface only: the daemon, its drivers,
// Boost.Asio and the agent protocol stay in the .cc files (agent_thread.cc,
// agent_supervisor.cc); nlohmann::json is declared, not defined (include
// <nlohmann/json.hpp> to use a status document).
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "framework/admin/admin_server.h"
#include "framework/fence.h"
#include "storage/stable_store.h"
#include "takeover/daemon/config.h"

namespace baton::takeover {
struct SlotEvent;    // takeover/daemon/daemon.h
class AgentProcess;  // takeover/daemon/agent_process.h
}  // namespace baton::takeover

namespace baton::framework {

struct EmbeddedAgentConfig {
  takeover::DaemonConfig daemon;
  // The take-over section's YAML text as given (AgentSupervisor sends it to
  // its child). Set by ParseEmbeddedAgentConfig.
  std::string yaml;
};

// Parses the `takeover:` section (YAML text of a daemon config). A missing
// or `none` health_check becomes `external` (the store health loop).
// kInvalidArgument naming the key (prefixed "takeover.").
[[nodiscard]] absl::StatusOr<EmbeddedAgentConfig> ParseEmbeddedAgentConfig(
    std::string_view yaml);

// What a server needs of its take-over agent, however it runs: the fence
// table for the pipeline, the /baton routes, start, hand-over, status, drain.
// Also the store health loop and the fence writer, which both kinds share.
class ServerAgent {
 public:
  virtual ~ServerAgent();
  ServerAgent(const ServerAgent&) = delete;
  ServerAgent& operator=(const ServerAgent&) = delete;

  // The fence table to give the pipeline (RequestPipeline::SetFenceTable).
  FenceTable& fences() { return fences_; }

  // Adds GET /baton/status and POST /baton/drain to the operator plane.
  [[nodiscard]] absl::Status RegisterAdminRoutes(AdminRouter& router);

  // Starts the agent (it campaigns from now on), the fence thread and the
  // store health loop. `store` must outlive the agent. kUnavailable /
  // kPermissionDenied if the agent cannot start (EmbeddedAgent: the daemon's
  // Start; AgentSupervisor: the child cannot be spawned).
  [[nodiscard]] virtual absl::Status Start(storage::StableStore& store) = 0;

  // Graceful hand-over: every address released and the grantors told, then
  // the threads (and the child) stop. Blocks until then (at most ~10 s).
  // Idempotent.
  virtual void Shutdown() = 0;

  // The status document (see the file comment); kUnavailable if the agent
  // did not answer within `timeout` (or, supervised, no child runs now).
  [[nodiscard]] absl::StatusOr<nlohmann::json> StatusJson(
      absl::Duration timeout = absl::Seconds(2));

  // Operator drain of `slot` (nullopt: every slot), or undo (drain=false).
  // kInvalidArgument for a slot that does not exist; kUnavailable if the
  // agent does not run.
  [[nodiscard]] absl::Status Drain(std::optional<uint32_t> slot, bool drain);

  size_t slot_count() const { return config_.daemon.service_addresses.size(); }
  // The service addresses (numeric, slot order): listeners of their own, so
  // that a planned release ends exactly their connections (GrpcServerOptions
  // ::service_addresses).
  std::vector<std::string> service_addresses() const {
    std::vector<std::string> out;
    for (const auto& a : config_.daemon.service_addresses) out.push_back(a.address);
    return out;
  }

  // True while the agent runs and the store answers its health pings: this
  // host may hold addresses and serve (the server's /readyz).
  bool may_serve() const { return running() && store_healthy(); }

  // --- Hooks the server gives the agent (set before Start) ---
  // Closes this server's client connections on a local address (HTTP: idle
  // ones at once, busy ones right after their reply; gRPC: GOAWAY, running
  // calls finish) and returns how many are still open there (0: none left). Called, repeatedly until it returns 0
  // or the daemon's close_timeout passed, before a planned release of that
  // address (operator drain, health drain, shutdown), on an agent thread.
  // Default: none (nothing to close).
  using ConnectionCloser = std::function<size_t(const std::string& address)>;
  void SetConnectionCloser(ConnectionCloser closer) { closer_ = std::move(closer); }
  // The server's progress probe: true when its request event loop ran a
  // no-op within `timeout` (HttpServer::Probe). Called every
  // health_check.liveness / 6 on an agent thread; the supervised agent gets
  // its keepalive only after a probe that passed, so a stopped or hung
  // server is handed over after health_check.liveness (default 300 ms). The
  // in-process agent reports unhealthy instead. Default: always passes.
  using ProgressProbe = std::function<bool(absl::Duration timeout)>;
  void SetProgressProbe(ProgressProbe probe) { probe_ = std::move(probe); }
  // How long the server's requests have been waiting on store reads (zero:
  // none is; RequestPipeline::StoreWaitTime). A probe that fails while they
  // wait is the store's silence, not a hang: the keepalive goes on until the
  // silence reaches health_check.liveness_store (framework/agent_liveness.h).
  // Called on an agent thread after a probe that failed. Default: never
  // waiting.
  using StoreWaitProbe = std::function<absl::Duration()>;
  void SetStoreWaitProbe(StoreWaitProbe probe) {
    store_wait_ = std::move(probe);
  }

 protected:
  explicit ServerAgent(EmbeddedAgentConfig config);
  // The daemon's status document (before the fences are added).
  virtual absl::StatusOr<nlohmann::json> AgentStatus(absl::Duration timeout) = 0;
  // Passes an operator drain on (slot already checked).
  virtual absl::Status AgentDrain(uint32_t slot, bool drain) = 0;
  // Passes a change of health (store and, in-process, the event loop) on.
  virtual void AgentHealthy(bool healthy) = 0;
  // The server made progress (a probe passed): the supervised agent's
  // keepalive. Default: nothing.
  virtual void AgentKeepalive() {}
  virtual bool running() const = 0;

  void OnSlotEvent(const takeover::SlotEvent& event);
  // A planned release of `address` (the release gate): closes this server's
  // connections there on the close thread, then calls `done` (any thread).
  void OnReleasing(const std::string& address, std::function<void()> done);
  // The health to report: the store answers, and the event loop is live.
  bool healthy() const { return store_healthy_.load() && live_.load(); }
  // Every slot released (the agent is gone): writes there are refused.
  void ReleaseAll();
  void StartLoops(storage::StableStore& store);
  void StopLoops();
  bool store_healthy() const { return store_healthy_.load(); }

  EmbeddedAgentConfig config_;

 private:
  void FenceLoop();
  void HealthLoop();
  void LivenessLoop();
  void CloseLoop();

  FenceTable fences_;
  storage::StableStore* store_ = nullptr;
  std::thread fence_thread_, health_thread_, liveness_thread_, close_thread_;
  ConnectionCloser closer_;
  ProgressProbe probe_;
  StoreWaitProbe store_wait_;
  struct Closing {
    std::string address;
    std::function<void()> done;
  };
  std::deque<Closing> closing_ ABSL_GUARDED_BY(loops_mu_);
  absl::CondVar wake_close_;
  // The event loop passed its probe within health_check.liveness.
  std::atomic<bool> live_{true};
  // When the store ping now running started (0: none runs), for the stuck-
  // ping check of the liveness loop; set when it reported one.
  std::atomic<int64_t> ping_started_ns_{0};
  std::atomic<bool> ping_stuck_{false};
  absl::Mutex loops_mu_;
  // Holdings whose fence is to be written: (slot, epoch).
  std::deque<std::pair<uint32_t, uint64_t>> establish_ ABSL_GUARDED_BY(loops_mu_);
  bool stop_ ABSL_GUARDED_BY(loops_mu_) = false;
  absl::CondVar wake_fence_, wake_health_;
  std::atomic<bool> store_healthy_{true};
  std::atomic<uint64_t> pings_failed_{0};
};

// The agent on threads of the server (`takeover_mode: thread`).
class EmbeddedAgent final : public ServerAgent {
 public:
  // Validates the config and creates the daemon (not started). Errors as
  // TakeoverDaemon::Create (kInvalidArgument for config errors).
  static absl::StatusOr<std::unique_ptr<EmbeddedAgent>> Create(
      EmbeddedAgentConfig config);
  ~EmbeddedAgent() override;  // Shutdown() if still running.

  [[nodiscard]] absl::Status Start(storage::StableStore& store) override;
  void Shutdown() override;

 private:
  // The daemon, its io_context and the thread that runs it (agent_thread.cc).
  struct Runtime;

  explicit EmbeddedAgent(EmbeddedAgentConfig config);
  absl::StatusOr<nlohmann::json> AgentStatus(absl::Duration timeout) override;
  absl::Status AgentDrain(uint32_t slot, bool drain) override;
  void AgentHealthy(bool healthy) override;
  bool running() const override { return started_ && !shut_down_; }

  std::unique_ptr<Runtime> runtime_;
  // Written by the owning thread, read by request threads (StatusJson, Drain).
  std::atomic<bool> started_{false};
  std::atomic<bool> shut_down_{false};
};

// Options of AgentSupervisor.
struct AgentSupervisorOptions {
  // The baton-takeoverd binary to run as the child. Empty: FindTakeoverBinary().
  std::string binary;
  // Back-off before restarting a dead child: first, then doubled up to max.
  // Defaults: 100 ms, 5 s.
  absl::Duration restart_backoff = absl::Milliseconds(100);
  absl::Duration max_restart_backoff = absl::Seconds(5);
};

// The baton-takeoverd to supervise: beside /proc/self/exe, then (a build
// tree) ../../takeover/daemon/baton-takeoverd from it, then PATH.
// kNotFound if none is executable.
[[nodiscard]] absl::StatusOr<std::string> FindTakeoverBinary();

// The agent in a supervised child process (`takeover_mode: process`); see
// the file comment. The server's SIGINT/SIGTERM must be blocked before
// Start (the child gets a clean signal mask).
class AgentSupervisor final : public ServerAgent {
 public:
  // Checks the config (TakeoverDaemon::Validate: kInvalidArgument, key file
  // errors) and finds the binary (kNotFound). Nothing is started.
  static absl::StatusOr<std::unique_ptr<AgentSupervisor>> Create(
      EmbeddedAgentConfig config, AgentSupervisorOptions options = {});
  ~AgentSupervisor() override;  // Shutdown() if still running.

  // Spawns the first child and waits (at most 10 s) until its daemon
  // started. kUnavailable if the child cannot be spawned or exits first (e.g.
  // a bind or netlink failure, or a baton-takeoverd too old to know
  // --parent-fd); kFailedPrecondition if it speaks another version of the
  // agent protocol (takeover/daemon/agent_link_protocol.h).
  [[nodiscard]] absl::Status Start(storage::StableStore& store) override;
  // Asks the child to hand over, waits for it to exit (at most 10 s, then
  // SIGKILL), stops the threads.
  void Shutdown() override;

  // The current child's pid (0: none), how many children were started.
  int child_pid() const { return child_pid_.load(); }
  uint64_t starts() const { return starts_.load(); }

 private:
  // The supervision on one io_context thread: the child's process and link
  // (takeover/daemon/agent_process.h), the schedule (takeover/daemon/
  // supervisor_schedule.h) and its timers, the start and the shutdown
  // (agent_supervisor.cc).
  struct Runtime;

  AgentSupervisor(EmbeddedAgentConfig config, AgentSupervisorOptions options);
  absl::StatusOr<nlohmann::json> AgentStatus(absl::Duration timeout) override;
  absl::Status AgentDrain(uint32_t slot, bool drain) override;
  void AgentHealthy(bool healthy) override;
  void AgentKeepalive() override;
  bool running() const override { return started_ && !shut_down_; }

  // Writes one encoded message (takeover/daemon/agent_link_protocol.h) to
  // the current child; false if there is none or the write failed. Any
  // thread.
  bool SendLine(const std::string& line);

  AgentSupervisorOptions options_;
  std::unique_ptr<Runtime> runtime_;
  std::atomic<bool> started_{false};
  std::atomic<bool> shut_down_{false};
  std::atomic<int> child_pid_{0};
  std::atomic<uint64_t> starts_{0};

  struct PendingStatus;  // a status request waiting for the child's answer
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The current child (null: none); the io_context's thread replaces it,
  // request threads send through it.
  std::shared_ptr<takeover::AgentProcess> child_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<std::pair<uint64_t, std::shared_ptr<PendingStatus>>> pending_
      ABSL_GUARDED_BY(mu_);
  // Operator drains, replayed to a new child.
  std::vector<bool> drained_ ABSL_GUARDED_BY(mu_);
};

}  // namespace baton::framework

#endif  // BATON_FRAMEWORK_EMBEDDED_AGENT_H_

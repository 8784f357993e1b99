// The take-over agent embedded in a baton server: runs a TakeoverDaemon
// (takeover/daemon/daemon.h) inside the server process, so the server that
// answers on a service address is the one that holds it, and fences the
// server's commits by the addresses it holds (framework/fence.h).
//
//   auto config = ParseEmbeddedAgentConfig(takeover_yaml);   // exit 2 on error
//   auto agent = EmbeddedAgent::Create(*config);
//   pipeline.SetFenceTable(&(*agent)->fences());
//   (*agent)->RegisterRoutes(router);        // GET /baton/status, POST /baton/drain
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
// Thread safety: Create/Start/Shutdown from one owning thread; fences(),
// StatusJson(), Drain() from any thread.
#ifndef BATON_FRAMEWORK_EMBEDDED_AGENT_H_
#define BATON_FRAMEWORK_EMBEDDED_AGENT_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "framework/fence.h"
#include "framework/http_server.h"
#include "storage/stable_store.h"
#include "takeover/daemon/config.h"
#include "takeover/daemon/daemon.h"

namespace baton::framework {

struct EmbeddedAgentConfig {
  takeover::DaemonConfig daemon;
};

// Parses the `takeover:` section (YAML text of a daemon config). A missing
// or `none` health_check becomes `external` (the store health loop).
// kInvalidArgument naming the key (prefixed "takeover.").
[[nodiscard]] absl::StatusOr<EmbeddedAgentConfig> ParseEmbeddedAgentConfig(
    std::string_view yaml);

class EmbeddedAgent {
 public:
  // Validates the config and creates the daemon (not started). Errors as
  // TakeoverDaemon::Create (kInvalidArgument for config errors).
  static absl::StatusOr<std::unique_ptr<EmbeddedAgent>> Create(
      EmbeddedAgentConfig config);
  ~EmbeddedAgent();  // Shutdown() if still running.
  EmbeddedAgent(const EmbeddedAgent&) = delete;
  EmbeddedAgent& operator=(const EmbeddedAgent&) = delete;

  // The fence table to give the pipeline (RequestPipeline::SetFenceTable).
  FenceTable& fences() { return fences_; }

  // Adds GET /baton/status and POST /baton/drain to `router`.
  [[nodiscard]] absl::Status RegisterRoutes(Router& router);

  // Starts the daemon (it campaigns from now on), the fence thread and the
  // store health loop. `store` must outlive the agent. Errors from
  // TakeoverDaemon::Start (kUnavailable, kPermissionDenied).
  [[nodiscard]] absl::Status Start(storage::StableStore& store);

  // Graceful hand-over: the daemon releases every address and tells its
  // grantors (TakeoverDaemon::Shutdown), then the threads stop. Blocks until
  // then (at most ~10 s). Idempotent.
  void Shutdown();

  // The status document (see the file comment); kUnavailable if the daemon
  // did not answer within `timeout`.
  [[nodiscard]] absl::StatusOr<nlohmann::json> StatusJson(
      absl::Duration timeout = absl::Seconds(2));

  // Operator drain of `slot` (nullopt: every slot), or undo (drain=false).
  // kInvalidArgument for a slot that does not exist.
  [[nodiscard]] absl::Status Drain(std::optional<uint32_t> slot, bool drain);

  size_t slot_count() const { return config_.daemon.service_addresses.size(); }

 private:
  explicit EmbeddedAgent(EmbeddedAgentConfig config);
  void OnSlotEvent(const takeover::SlotEvent& event);
  void FenceLoop();
  void HealthLoop();

  EmbeddedAgentConfig config_;
  FenceTable fences_;
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<
      boost::asio::io_context::executor_type>>
      work_;
  std::unique_ptr<takeover::TakeoverDaemon> daemon_;
  storage::StableStore* store_ = nullptr;
  std::thread io_thread_, fence_thread_, health_thread_;
  // Written by the owning thread, read by request threads (StatusJson, Drain).
  std::atomic<bool> started_{false};
  std::atomic<bool> shut_down_{false};

  absl::Mutex mu_;
  // Holdings whose fence is to be written: (slot, epoch).
  std::deque<std::pair<uint32_t, uint64_t>> establish_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::CondVar wake_fence_, wake_health_;

  std::atomic<bool> store_healthy_{true};
  std::atomic<uint64_t> pings_failed_{0};
};

}  // namespace baton::framework

#endif  // BATON_FRAMEWORK_EMBEDDED_AGENT_H_

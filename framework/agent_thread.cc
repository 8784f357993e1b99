// EmbeddedAgent: the take-over daemon on a thread of the server
// (`takeover_mode: thread`, framework/embedded_agent.h).
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>
#include <utility>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "absl/synchronization/notification.h"
#include "framework/embedded_agent.h"
#include "spdlog/spdlog.h"
#include "takeover/daemon/daemon.h"
#include "takeover/drivers/clock.h"

namespace baton::framework {

struct EmbeddedAgent::Runtime {
  boost::asio::io_context io;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work;
  std::unique_ptr<takeover::TakeoverDaemon> daemon;
  std::thread thread;  // runs io
};

EmbeddedAgent::EmbeddedAgent(EmbeddedAgentConfig config)
    : ServerAgent(std::move(config)), runtime_(std::make_unique<Runtime>()) {}

absl::StatusOr<std::unique_ptr<EmbeddedAgent>> EmbeddedAgent::Create(
    EmbeddedAgentConfig config) {
  std::unique_ptr<EmbeddedAgent> agent(new EmbeddedAgent(std::move(config)));
  absl::StatusOr<std::unique_ptr<takeover::TakeoverDaemon>> daemon =
      takeover::TakeoverDaemon::Create(agent->runtime_->io,
                                       takeover::SteadyClock::Get(),
                                       agent->config_.daemon);
  if (!daemon.ok()) return daemon.status();
  agent->runtime_->daemon = *std::move(daemon);
  EmbeddedAgent* raw = agent.get();
  agent->runtime_->daemon->SetSlotListener(
      [raw](const takeover::SlotEvent& e) { raw->OnSlotEvent(e); });
  agent->runtime_->daemon->SetReleaseGate(
      [raw](const takeover::SlotEvent& e, std::function<void()> done) {
        raw->OnReleasing(e.address, std::move(done));
      });
  return agent;
}

EmbeddedAgent::~EmbeddedAgent() { Shutdown(); }

absl::Status EmbeddedAgent::Start(storage::StableStore& store) {
  if (started_) return absl::OkStatus();
  // Nothing runs on io_ yet, so the daemon may be started from here.
  if (absl::Status s = runtime_->daemon->Start(); !s.ok()) return s;
  started_ = true;
  runtime_->work.emplace(runtime_->io.get_executor());
  runtime_->thread = std::thread([this] {
    // The daemon's `nice` (default -10) for the agent's thread only: a
    // holder starved of CPU past its lease loses its addresses, while the
    // request threads keep the server's own priority. Linux nice is per
    // thread.
    if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)),
                      config_.daemon.nice) != 0) {
      spdlog::warn("take-over agent: cannot set nice {} on its thread: {}",
                   config_.daemon.nice, std::strerror(errno));
    }
    runtime_->io.run();
  });
  StartLoops(store);
  spdlog::info("take-over agent started: node {}, {} service address(es), "
               "in-process (takeover_mode thread)",
               config_.daemon.node_id, slot_count());
  return absl::OkStatus();
}

void EmbeddedAgent::Shutdown() {
  if (!started_ || shut_down_) return;
  shut_down_ = true;
  auto done = std::make_shared<absl::Notification>();
  boost::asio::post(runtime_->io, [this, done] {
    runtime_->daemon->Shutdown([done] { done->Notify(); });
  });
  if (!done->WaitForNotificationWithTimeout(absl::Seconds(10))) {
    spdlog::error("take-over agent: hand-over did not finish within 10 s");
  } else {
    spdlog::info("take-over agent: addresses released");
  }
  StopLoops();
  runtime_->work.reset();
  runtime_->io.stop();
  runtime_->thread.join();
}

void EmbeddedAgent::AgentHealthy(bool healthy) { runtime_->daemon->SetHealthy(healthy); }

absl::Status EmbeddedAgent::AgentDrain(uint32_t slot, bool drain) {
  runtime_->daemon->DrainSlot(slot, drain);
  return absl::OkStatus();
}

absl::StatusOr<nlohmann::json> EmbeddedAgent::AgentStatus(
    absl::Duration timeout) {
  struct Pending {
    nlohmann::json status;
    absl::Notification done;
  };
  auto pending = std::make_shared<Pending>();
  runtime_->daemon->GetStatusAsync([pending](nlohmann::json j) {
    pending->status = std::move(j);
    pending->done.Notify();
  });
  if (!pending->done.WaitForNotificationWithTimeout(timeout)) {
    return absl::UnavailableError("the take-over agent did not answer");
  }
  return std::move(pending->status);
}

}  // namespace baton::framework

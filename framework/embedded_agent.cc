#include "framework/embedded_agent.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include <boost/asio/post.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "framework/absl_compat.h"
#include "framework/clock.h"
#include "spdlog/spdlog.h"
#include "takeover/drivers/clock.h"

namespace baton::framework {

using internal::AV;

namespace {

nlohmann::json FenceJson(const FenceSlot& f) {
  nlohmann::json j = {{"slot", f.slot},
                      {"address", f.address},
                      {"state", std::string(FenceStateName(f.state))},
                      {"epoch", f.epoch},
                      {"version", f.version}};
  if (!f.error.empty()) j["error"] = f.error;
  return j;
}

// The value of `name` in the query string of `path` ("/x?a=1&b=2"), if any.
std::optional<std::string> QueryParam(std::string_view path,
                                      std::string_view name) {
  const size_t q = path.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  for (absl::string_view part :
       absl::StrSplit(AV(path.substr(q + 1)), '&', absl::SkipEmpty())) {
    const size_t eq = part.find('=');
    absl::string_view key = part.substr(0, eq);
    if (key == AV(name)) {
      return eq == absl::string_view::npos ? std::string()
                                           : std::string(part.substr(eq + 1));
    }
  }
  return std::nullopt;
}

Reply JsonError(absl::StatusCode code, absl::string_view message) {
  nlohmann::json j = {{"error", {{"message", std::string(message)}}}};
  return Reply::Json(code, j.dump());
}

}  // namespace

absl::StatusOr<EmbeddedAgentConfig> ParseEmbeddedAgentConfig(
    std::string_view yaml) {
  absl::StatusOr<takeover::DaemonConfig> daemon =
      takeover::ParseDaemonConfig(yaml);
  if (!daemon.ok()) {
    // The daemon names keys from the root of its own file ("config: peers:
    // missing"); here they live under `takeover.`.
    absl::string_view m = daemon.status().message();
    absl::ConsumePrefix(&m, "config: ");
    return absl::InvalidArgumentError(absl::StrCat("takeover.", m));
  }
  EmbeddedAgentConfig c;
  c.daemon = *std::move(daemon);
  if (c.daemon.health_check.kind == takeover::HealthCheckConfig::Kind::kNone) {
    c.daemon.health_check.kind = takeover::HealthCheckConfig::Kind::kExternal;
  }
  return c;
}

EmbeddedAgent::EmbeddedAgent(EmbeddedAgentConfig config)
    : config_(std::move(config)) {}

absl::StatusOr<std::unique_ptr<EmbeddedAgent>> EmbeddedAgent::Create(
    EmbeddedAgentConfig config) {
  std::unique_ptr<EmbeddedAgent> agent(new EmbeddedAgent(std::move(config)));
  absl::StatusOr<std::unique_ptr<takeover::TakeoverDaemon>> daemon =
      takeover::TakeoverDaemon::Create(agent->io_,
                                       takeover::SteadyClock::Get(),
                                       agent->config_.daemon);
  if (!daemon.ok()) return daemon.status();
  agent->daemon_ = *std::move(daemon);
  EmbeddedAgent* raw = agent.get();
  agent->daemon_->SetSlotListener(
      [raw](const takeover::SlotEvent& e) { raw->OnSlotEvent(e); });
  return agent;
}

EmbeddedAgent::~EmbeddedAgent() { Shutdown(); }

absl::Status EmbeddedAgent::Start(storage::StableStore& store) {
  if (started_) return absl::OkStatus();
  store_ = &store;
  // Nothing runs on io_ yet, so the daemon may be started from here.
  if (absl::Status s = daemon_->Start(); !s.ok()) return s;
  started_ = true;
  work_.emplace(io_.get_executor());
  io_thread_ = std::thread([this] {
    // The daemon's `nice` (default -10) for the agent's thread only: a
    // holder starved of CPU past its lease loses its addresses, while the
    // request threads keep the server's own priority. Linux nice is per
    // thread.
    if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)),
                      config_.daemon.nice) != 0) {
      spdlog::warn("take-over agent: cannot set nice {} on its thread: {}",
                   config_.daemon.nice, std::strerror(errno));
    }
    io_.run();
  });
  fence_thread_ = std::thread([this] { FenceLoop(); });
  health_thread_ = std::thread([this] { HealthLoop(); });
  spdlog::info("take-over agent started: node {}, {} service address(es)",
               config_.daemon.node_id, slot_count());
  return absl::OkStatus();
}

void EmbeddedAgent::Shutdown() {
  if (!started_ || shut_down_) return;
  shut_down_ = true;
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    wake_fence_.SignalAll();
    wake_health_.SignalAll();
  }
  health_thread_.join();
  auto done = std::make_shared<absl::Notification>();
  boost::asio::post(io_, [this, done] {
    daemon_->Shutdown([done] { done->Notify(); });
  });
  if (!done->WaitForNotificationWithTimeout(absl::Seconds(10))) {
    spdlog::error("take-over agent: hand-over did not finish within 10 s");
  } else {
    spdlog::info("take-over agent: addresses released");
  }
  fence_thread_.join();
  work_.reset();
  io_.stop();
  io_thread_.join();
}

void EmbeddedAgent::OnSlotEvent(const takeover::SlotEvent& e) {
  if (e.held) {
    spdlog::info("slot {} ({}) taken here, epoch {}: writing its fence",
                 e.slot, e.address, e.epoch);
    fences_.Held(e.slot, e.address, e.epoch);
    absl::MutexLock lock(&mu_);
    establish_.emplace_back(e.slot, e.epoch);
    wake_fence_.Signal();
  } else {
    spdlog::info("slot {} ({}) released here (epoch {})", e.slot, e.address,
                 e.epoch);
    fences_.Released(e.slot);
  }
}

void EmbeddedAgent::FenceLoop() {
  for (;;) {
    std::pair<uint32_t, uint64_t> job;
    {
      absl::MutexLock lock(&mu_);
      while (!stop_ && establish_.empty()) wake_fence_.Wait(&mu_);
      if (stop_) return;
      job = establish_.front();
      establish_.pop_front();
    }
    absl::Duration backoff = absl::Milliseconds(100);
    while (fences_.WantsEstablish(job.first, job.second)) {
      absl::Status s = fences_.Establish(*store_, job.first, job.second);
      if (s.ok() || s.code() == absl::StatusCode::kFailedPrecondition) break;
      spdlog::warn("fence of slot {} (epoch {}) not written yet: {}; retrying",
                   job.first, job.second, std::string(s.message()));
      absl::MutexLock lock(&mu_);
      // Real time: a retry pause, not a protocol decision.
      if (!stop_) wake_fence_.WaitWithTimeout(&mu_, backoff);
      if (stop_) return;
      backoff = std::min(backoff * 2, absl::Seconds(1));
    }
  }
}

void EmbeddedAgent::HealthLoop() {
  const takeover::HealthCheckConfig& hc = config_.daemon.health_check;
  const absl::Duration period = absl::FromChrono(hc.period);
  const absl::Duration timeout = absl::FromChrono(hc.timeout);
  const int fall = std::max(1, hc.fall), rise = std::max(1, hc.rise);
  Clock& clock = RealClock();
  int fails = 0, oks = 0;
  bool healthy = true;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (!stop_) wake_health_.WaitWithTimeout(&mu_, period);
      if (stop_) return;
    }
    const absl::Time t0 = clock.Now();
    absl::Status s = store_->Ping();
    const absl::Duration took = clock.Now() - t0;
    if (s.ok() && took > timeout) {
      s = absl::DeadlineExceededError(
          absl::StrCat("ping took ", absl::FormatDuration(took)));
    }
    if (s.ok()) {
      fails = 0;
      if (!healthy && ++oks >= rise) {
        healthy = true;
        store_healthy_.store(true);
        spdlog::info("store reachable again ({} pings): campaigning", oks);
        daemon_->SetHealthy(true);
      }
      continue;
    }
    oks = 0;
    pings_failed_.fetch_add(1, std::memory_order_relaxed);
    spdlog::debug("store ping failed ({} in a row): {}", fails + 1,
                  std::string(s.message()));
    if (healthy && ++fails >= fall) {
      healthy = false;
      store_healthy_.store(false);
      spdlog::warn("store unreachable ({} pings failed, last: {}): giving the "
                   "service addresses away",
                   fails, std::string(s.message()));
      daemon_->SetHealthy(false);
    }
  }
}

absl::StatusOr<nlohmann::json> EmbeddedAgent::StatusJson(
    absl::Duration timeout) {
  if (!started_ || shut_down_) {
    return absl::UnavailableError("the take-over agent is not running");
  }
  struct Pending {
    nlohmann::json status;
    absl::Notification done;
  };
  auto pending = std::make_shared<Pending>();
  daemon_->GetStatusAsync([pending](nlohmann::json j) {
    pending->status = std::move(j);
    pending->done.Notify();
  });
  if (!pending->done.WaitForNotificationWithTimeout(timeout)) {
    return absl::UnavailableError("the take-over agent did not answer");
  }
  nlohmann::json j = std::move(pending->status);
  const std::vector<FenceSlot> fences = fences_.Snapshot();
  nlohmann::json all = nlohmann::json::array();
  for (const FenceSlot& f : fences) all.push_back(FenceJson(f));
  j["fences"] = all;
  if (j.contains("slots") && j["slots"].is_array()) {
    for (nlohmann::json& slot : j["slots"]) {
      if (!slot.contains("slot")) continue;
      const uint64_t n = slot["slot"].get<uint64_t>();
      nlohmann::json fence = {{"state", "none"}, {"epoch", 0}, {"version", 0}};
      for (const FenceSlot& f : fences) {
        if (f.slot == n) {
          fence = FenceJson(f);
          fence.erase("slot");
          fence.erase("address");
        }
      }
      slot["fence"] = fence;
    }
  }
  const FenceCounters c = fences_.Counters();
  j["server"] = {{"fenced_off", c.deposed},
                 {"not_ready", c.not_ready},
                 {"fences_established", c.established},
                 {"fence_refused", c.establish_refused},
                 {"fence_errors", c.establish_errors},
                 {"store_healthy", store_healthy_.load()},
                 {"store_pings_failed", pings_failed_.load()}};
  return j;
}

absl::Status EmbeddedAgent::Drain(std::optional<uint32_t> slot, bool drain) {
  if (!started_ || shut_down_) {
    return absl::UnavailableError("the take-over agent is not running");
  }
  if (slot && *slot >= slot_count()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "no slot ", *slot, " (there are ", slot_count(), ")"));
  }
  daemon_->DrainSlot(slot ? *slot : takeover::TakeoverDaemon::kAllSlots,
                    drain);
  spdlog::info("operator {} of {}", drain ? "drain" : "undo drain",
               slot ? absl::StrCat("slot ", *slot) : std::string("every slot"));
  return absl::OkStatus();
}

absl::Status EmbeddedAgent::RegisterRoutes(Router& router) {
  absl::Status s = router.Add(
      "GET", "/baton/status",
      MakeHandler([this](const Request&, Transaction&) -> absl::StatusOr<Reply> {
        absl::StatusOr<nlohmann::json> j = StatusJson();
        if (!j.ok()) return JsonError(j.status().code(), j.status().message());
        return Reply::Json(absl::StatusCode::kOk, j->dump());
      }));
  if (!s.ok()) return s;
  return router.Add(
      "POST", "/baton/drain",
      MakeHandler([this](const Request& r,
                         Transaction&) -> absl::StatusOr<Reply> {
        std::optional<uint32_t> slot;
        if (std::optional<std::string> v = QueryParam(r.path, "slot")) {
          uint32_t n = 0;
          if (!absl::SimpleAtoi(*v, &n)) {
            return JsonError(absl::StatusCode::kInvalidArgument,
                             "slot must be a slot number");
          }
          slot = n;
        }
        std::optional<std::string> undo = QueryParam(r.path, "undo");
        const bool drain =
            !undo || !(*undo == "1" || *undo == "true" || undo->empty());
        if (absl::Status d = Drain(slot, drain); !d.ok()) {
          return JsonError(d.code(), d.message());
        }
        nlohmann::json slots = nlohmann::json::array();
        for (uint32_t i = 0; i < slot_count(); ++i) {
          if (!slot || *slot == i) slots.push_back(i);
        }
        nlohmann::json j = {{"slots", slots}, {"undo", !drain}};
        return Reply::Json(absl::StatusCode::kOk, j.dump());
      }));
}

}  // namespace baton::framework

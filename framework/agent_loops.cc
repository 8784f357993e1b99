// The loops every ServerAgent runs beside its agent: the fence writer, the
// store health loop, the server's liveness probe and the connection closer of
// a planned release (framework/embedded_agent.h).
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "framework/agent_liveness.h"
#include "framework/clock.h"
#include "framework/embedded_agent.h"
#include "spdlog/spdlog.h"
#include "takeover/daemon/daemon.h"
#include "takeover/daemon/health_check.h"

namespace baton::framework {

void ServerAgent::StartLoops(storage::StableStore& store) {
  store_ = &store;
  fence_thread_ = std::thread([this] { FenceLoop(); });
  health_thread_ = std::thread([this] { HealthLoop(); });
  liveness_thread_ = std::thread([this] { LivenessLoop(); });
  close_thread_ = std::thread([this] { CloseLoop(); });
}

void ServerAgent::StopLoops() {
  {
    absl::MutexLock lock(&loops_mu_);
    stop_ = true;
    wake_fence_.SignalAll();
    wake_health_.SignalAll();
    wake_close_.SignalAll();
  }
  if (close_thread_.joinable()) close_thread_.join();
  if (liveness_thread_.joinable()) liveness_thread_.join();
  if (health_thread_.joinable()) health_thread_.join();
  if (fence_thread_.joinable()) fence_thread_.join();
  std::deque<Closing> left;
  {
    absl::MutexLock lock(&loops_mu_);
    left.swap(closing_);
  }
  for (Closing& c : left) c.done();
}

void ServerAgent::OnReleasing(const std::string& address,
                              std::function<void()> done) {
  absl::MutexLock lock(&loops_mu_);
  if (stop_) {
    done();
    return;
  }
  closing_.push_back(Closing{address, std::move(done)});
  wake_close_.Signal();
}

void ServerAgent::CloseLoop() {
  Clock& clock = RealClock();
  // The daemon stops waiting after its close_timeout anyway; this bound
  // only keeps a closer that never reaches 0 from holding the thread.
  const absl::Duration limit =
      absl::FromChrono(config_.daemon.close_timeout) + absl::Milliseconds(50);
  for (;;) {
    Closing job;
    {
      absl::MutexLock lock(&loops_mu_);
      while (!stop_ && closing_.empty()) wake_close_.Wait(&loops_mu_);
      if (stop_) return;
      job = std::move(closing_.front());
      closing_.pop_front();
    }
    const absl::Time t0 = clock.Now();
    size_t first = 0, left = 0;
    for (int round = 0;; ++round) {
      left = closer_ ? closer_(job.address) : 0;
      if (round == 0) first = left;
      if (left == 0 || clock.Now() - t0 >= limit) break;
      absl::MutexLock lock(&loops_mu_);
      // Real time: polling the connections' closing, not a protocol step.
      if (!stop_) wake_close_.WaitWithTimeout(&loops_mu_, absl::Milliseconds(1));
      if (stop_) break;
    }
    spdlog::info("planned release of {}: {} connection(s) there closed in {}{}",
                 job.address, first - std::min(first, left),
                 absl::FormatDuration(clock.Now() - t0),
                 left > 0 ? absl::StrCat(", ", left, " still open") : "");
    job.done();
  }
}

void ServerAgent::LivenessLoop() {
  Clock& clock = RealClock();
  const absl::Duration liveness =
      absl::FromChrono(config_.daemon.health_check.liveness);
  const absl::Duration stuck_after =
      absl::FromChrono(config_.daemon.health_check.timeout) *
      std::max(1, config_.daemon.health_check.fall);
  // A store call longer than stuck_after is a failed store anyway.
  const absl::Duration store_budget = std::min(
      absl::FromChrono(config_.daemon.health_check.liveness_store), stuck_after);
  LivenessJudge judge(
      LivenessJudge::Options{
          .liveness = liveness,
          .starved_max =
              absl::FromChrono(config_.daemon.health_check.liveness_starved),
          .store_max = store_budget},
      clock.Now());
  bool on_store_said = false;
  for (;;) {
    {
      absl::MutexLock lock(&loops_mu_);
      if (stop_) return;
    }
    LivenessJudge::Round round;
    round.began = clock.Now();
    // The probe waits at most one interval; it is the pause between rounds
    // when the loop is busy.
    round.progress = !probe_ || probe_(judge.interval());
    round.ended = clock.Now();
    if (!round.progress && store_wait_) round.store_wait = store_wait_();
    const LivenessJudge::Verdict v = judge.Judge(round, [] {
      // (This thread runs: it does not count as a runnable one.)
      absl::StatusOr<takeover::CpuWaitSample> sample =
          takeover::SampleCpuWait(::getpid(), ::gettid());
      return sample.ok() ? std::optional(*sample) : std::nullopt;
    });
    const absl::Time now = round.ended;
    // Short waits are normal on etcd: said once per silence, and only when
    // it reached the liveness (where a hang would have been declared).
    if (!v.on_store) {
      on_store_said = false;
    } else if (!on_store_said && v.silence >= liveness) {
      on_store_said = true;
      spdlog::warn("the server's event loop made no progress for {} while "
                   "requests waited on the store ({}): not hung; handed over "
                   "only if the store stays this slow for {}",
                   absl::FormatDuration(v.silence),
                   absl::FormatDuration(round.store_wait),
                   absl::FormatDuration(store_budget));
    }
    if (v.live != live_.load()) {
      live_.store(v.live);
      if (v.live) {
        spdlog::info("the server's event loop makes progress again");
      } else {
        spdlog::error("the server's event loop made no progress for {}{}: "
                      "hung; giving the service addresses away",
                      absl::FormatDuration(v.silence),
                      round.store_wait > absl::ZeroDuration()
                          ? absl::StrCat(" (requests waiting on the store for ",
                                         absl::FormatDuration(round.store_wait),
                                         ")")
                          : "");
      }
      AgentHealthy(healthy());
    }
    // A store call that does not come back is no answer either: a ping
    // running longer than health_check.timeout x fall counts as a failed
    // store (HealthLoop cannot tell while it waits in the ping).
    const int64_t ping0 = ping_started_ns_.load();
    if (ping0 != 0 && !ping_stuck_.load() &&
        now - absl::FromUnixNanos(ping0) > stuck_after) {
      ping_stuck_.store(true);
      if (store_healthy_.exchange(false)) {
        spdlog::warn("store ping running for {}: giving the service addresses "
                     "away", absl::FormatDuration(now - absl::FromUnixNanos(ping0)));
        AgentHealthy(healthy());
      }
    }
    if (v.keepalive) AgentKeepalive();
    const absl::Duration rest = judge.interval() - (clock.Now() - round.began);
    if (rest > absl::ZeroDuration()) {
      absl::MutexLock lock(&loops_mu_);
      // Real time: the keepalive period, not a protocol decision.
      if (!stop_) wake_health_.WaitWithTimeout(&loops_mu_, rest);
    }
  }
}

void ServerAgent::OnSlotEvent(const takeover::SlotEvent& e) {
  if (e.held) {
    spdlog::info("slot {} ({}) taken here, epoch {}: writing its fence",
                 e.slot, e.address, e.epoch);
    fences_.Held(e.slot, e.address, e.epoch);
    absl::MutexLock lock(&loops_mu_);
    establish_.emplace_back(e.slot, e.epoch);
    wake_fence_.Signal();
  } else {
    spdlog::info("slot {} ({}) released here (epoch {})", e.slot, e.address,
                 e.epoch);
    fences_.Released(e.slot);
  }
}

void ServerAgent::ReleaseAll() {
  for (const FenceSlot& f : fences_.Snapshot()) {
    if (f.state != FenceState::kReleased) fences_.Released(f.slot);
  }
}

void ServerAgent::FenceLoop() {
  for (;;) {
    std::pair<uint32_t, uint64_t> job;
    {
      absl::MutexLock lock(&loops_mu_);
      while (!stop_ && establish_.empty()) wake_fence_.Wait(&loops_mu_);
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
      absl::MutexLock lock(&loops_mu_);
      // Real time: a retry pause, not a protocol decision.
      if (!stop_) wake_fence_.WaitWithTimeout(&loops_mu_, backoff);
      if (stop_) return;
      backoff = std::min(backoff * 2, absl::Seconds(1));
    }
  }
}

void ServerAgent::HealthLoop() {
  const takeover::HealthCheckConfig& hc = config_.daemon.health_check;
  const absl::Duration period = absl::FromChrono(hc.period);
  const absl::Duration timeout = absl::FromChrono(hc.timeout);
  const int fall = std::max(1, hc.fall), rise = std::max(1, hc.rise);
  Clock& clock = RealClock();
  int fails = 0, oks = 0;
  bool healthy = true;
  for (;;) {
    {
      absl::MutexLock lock(&loops_mu_);
      if (!stop_) wake_health_.WaitWithTimeout(&loops_mu_, period);
      if (stop_) return;
    }
    const absl::Time t0 = clock.Now();
    ping_started_ns_.store(absl::ToUnixNanos(t0));
    absl::Status s = store_->Ping();
    ping_started_ns_.store(0);
    const absl::Duration took = clock.Now() - t0;
    if (s.ok() && took > timeout) {
      s = absl::DeadlineExceededError(
          absl::StrCat("ping took ", absl::FormatDuration(took)));
    }
    if (ping_stuck_.exchange(false)) {
      // The liveness loop reported this ping as stuck (store unhealthy):
      // it counts as the fall-th failure; `rise` good pings undo it.
      healthy = false;
      oks = 0;
      fails = fall;
    }
    if (s.ok()) {
      fails = 0;
      if (!healthy && ++oks >= rise) {
        healthy = true;
        store_healthy_.store(true);
        spdlog::info("store reachable again ({} pings): campaigning", oks);
        AgentHealthy(this->healthy());
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
      AgentHealthy(this->healthy());
    }
  }
}

}  // namespace baton::framework

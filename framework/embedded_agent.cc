// ServerAgent's interface to the server: status, drain, the /baton routes.
// Its loops are in agent_loops.cc, the config in agent_config.cc, the two
// ways to run the agent in agent_thread.cc (EmbeddedAgent) and
// agent_supervisor.cc (AgentSupervisor).
#include "framework/embedded_agent.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "framework/json.h"
#include "spdlog/spdlog.h"
#include "takeover/daemon/daemon.h"

namespace baton::framework {

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

}  // namespace

ServerAgent::ServerAgent(EmbeddedAgentConfig config)
    : config_(std::move(config)) {}

ServerAgent::~ServerAgent() = default;

absl::StatusOr<nlohmann::json> ServerAgent::StatusJson(absl::Duration timeout) {
  if (!running()) {
    return absl::UnavailableError("the take-over agent is not running");
  }
  absl::StatusOr<nlohmann::json> status = AgentStatus(timeout);
  if (!status.ok()) return status.status();
  nlohmann::json j = *std::move(status);
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

absl::Status ServerAgent::Drain(std::optional<uint32_t> slot, bool drain) {
  if (!running()) {
    return absl::UnavailableError("the take-over agent is not running");
  }
  if (slot && *slot >= slot_count()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "no slot ", *slot, " (there are ", slot_count(), ")"));
  }
  if (absl::Status s =
          AgentDrain(slot ? *slot : takeover::TakeoverDaemon::kAllSlots, drain);
      !s.ok()) {
    return s;
  }
  spdlog::info("operator {} of {}", drain ? "drain" : "undo drain",
               slot ? absl::StrCat("slot ", *slot) : std::string("every slot"));
  return absl::OkStatus();
}

absl::Status ServerAgent::RegisterAdminRoutes(AdminRouter& router) {
  absl::Status s = router.Add(
      "GET", "/baton/status", [this](const AdminRequest&) {
        absl::StatusOr<nlohmann::json> j = StatusJson();
        if (!j.ok()) {
          return AdminResponse::Error(
              j.status().code() == absl::StatusCode::kUnavailable ? 503 : 500,
              absl::AsciiStrToLower(absl::StatusCodeToString(j.status().code())),
              std::string(j.status().message()));
        }
        return AdminResponse::Json(200, DumpJson(*j));
      });
  if (!s.ok()) return s;
  return router.Add(
      "POST", "/baton/drain", [this](const AdminRequest& r) {
        std::optional<uint32_t> slot;
        if (auto it = r.query.find("slot"); it != r.query.end()) {
          uint32_t n = 0;
          if (!absl::SimpleAtoi(it->second, &n)) {
            return AdminResponse::Error(400, "invalid_argument",
                                        "slot must be a slot number");
          }
          slot = n;
        }
        bool drain = true;
        if (auto it = r.query.find("undo"); it != r.query.end()) {
          drain = !(it->second == "1" || it->second == "true" ||
                    it->second.empty());
        }
        if (absl::Status d = Drain(slot, drain); !d.ok()) {
          return AdminResponse::Error(
              d.code() == absl::StatusCode::kInvalidArgument ? 400 : 503,
              absl::AsciiStrToLower(absl::StatusCodeToString(d.code())),
              std::string(d.message()));
        }
        nlohmann::json slots = nlohmann::json::array();
        for (uint32_t i = 0; i < slot_count(); ++i) {
          if (!slot || *slot == i) slots.push_back(i);
        }
        nlohmann::json j = {{"slots", slots}, {"undo", !drain}};
        return AdminResponse::Json(200, DumpJson(j));
      });
}

}  // namespace baton::framework

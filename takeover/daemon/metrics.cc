#include "takeover/daemon/metrics.h"

#include <optional>
#include <sstream>
#include <utility>

#include <prometheus/text_serializer.h>

namespace baton::takeover {
namespace {

using nlohmann::json;
using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// A number from the document, or nothing (missing, null or not a number).
std::optional<double> Number(const json& j, const char* key) {
  if (!j.is_object()) return std::nullopt;
  auto it = j.find(key);
  if (it == j.end()) return std::nullopt;
  if (it->is_boolean()) return it->get<bool>() ? 1.0 : 0.0;
  if (it->is_number()) return it->get<double>();
  return std::nullopt;
}

class Families {
 public:
  // The family `name` (created on first use, in order of first use).
  MetricFamily& Family(const std::string& name, MetricType type, const std::string& help) {
    for (MetricFamily& f : families_) {
      if (f.name == name) return f;
    }
    families_.push_back(MetricFamily{name, help, type, {}});
    return families_.back();
  }
  void Add(const std::string& name, MetricType type, const std::string& help,
           std::optional<double> value, std::vector<ClientMetric::Label> labels = {}) {
    if (!value) return;
    ClientMetric m;
    m.label = std::move(labels);
    if (type == MetricType::Counter) {
      m.counter.value = *value;
    } else {
      m.gauge.value = *value;
    }
    Family(name, type, help).metric.push_back(std::move(m));
  }
  std::vector<MetricFamily> Take() { return std::move(families_); }

 private:
  std::vector<MetricFamily> families_;
};

constexpr auto kGauge = MetricType::Gauge;
constexpr auto kCounter = MetricType::Counter;

}  // namespace

std::vector<MetricFamily> TakeoverMetricFamilies(const json& status) {
  Families f;
  if (!status.is_object()) return f.Take();
  const std::string p = "baton_takeover_";

  // Per slot.
  if (auto slots = status.find("slots"); slots != status.end() && slots->is_array()) {
    for (const json& s : *slots) {
      if (!s.is_object()) continue;
      std::vector<ClientMetric::Label> l = {
          {"slot", s.contains("slot") ? s["slot"].dump() : std::string("?")},
          {"address", s.value("address", std::string())}};
      f.Add(p + "slot_held", kGauge, "1 if this host has the slot's address now",
            Number(s, "address_here"), l);
      f.Add(p + "slot_epoch", kGauge, "Epoch (fencing token) of the slot's holder as known here",
            Number(s, "epoch"), l);
      std::optional<double> ms = Number(s, "lease_remaining_ms");
      f.Add(p + "slot_lease_remaining_seconds", kGauge,
            "While held here: time left on the majority lease, seconds (0 otherwise)",
            ms ? std::optional<double>(*ms / 1000.0) : std::nullopt, l);
      f.Add(p + "slot_shed", kGauge, "1 if the slot is shed for lack of capacity in this view",
            Number(s, "shed"), l);
      f.Add(p + "slot_drained", kGauge, "1 if an operator drained the slot on this host",
            Number(s, "drained"), l);
      f.Add(p + "slot_takeovers_total", kCounter, "Times this host added the slot's address",
            Number(s, "takeovers"), l);
      f.Add(p + "slot_releases_total", kCounter,
            "Times this host removed the slot's address (any reason)", Number(s, "releases"), l);
      f.Add(p + "slot_sheds_total", kCounter,
            "Times this host removed the slot's address because the slot was shed",
            Number(s, "sheds"), l);
    }
  }

  // The node.
  f.Add(p + "healthy", kGauge, "1 if the local service is healthy (health check and embedder)",
        Number(status, "healthy"));
  f.Add(p + "draining", kGauge, "1 while this host has drained every slot", Number(status, "draining"));
  f.Add(p + "capacity", kGauge, "Most slots this host holds at once", Number(status, "capacity"));
  f.Add(p + "capacity_used", kGauge, "Slots held here now", Number(status, "capacity_used"));
  f.Add(p + "shed_slots", kGauge, "Slots shed in this host's view now", Number(status, "shed_slots"));
  if (auto view = status.find("view"); view != status.end() && view->is_array()) {
    f.Add(p + "view_peers", kGauge, "Peers heard from recently, this host included",
          static_cast<double>(view->size()));
  }
  if (auto peers = status.find("peers"); peers != status.end() && peers->is_array()) {
    for (const json& peer : *peers) {
      if (!peer.is_object() || peer.value("self", false)) continue;
      f.Add(p + "peer_in_view", kGauge, "1 if the peer was heard from recently",
            Number(peer, "in_view"), {{"peer", peer.contains("id") ? peer["id"].dump() : "?"}});
    }
  }
  if (auto m = status.find("membership"); m != status.end() && m->is_object()) {
    f.Add(p + "membership_version", kGauge, "Version of the group membership (0: the peer list)",
          Number(*m, "version"));
    if (m->contains("members") && (*m)["members"].is_array()) {
      f.Add(p + "membership_members", kGauge, "Members whose grants count",
            static_cast<double>((*m)["members"].size()));
    }
    if (m->contains("old_members") && (*m)["old_members"].is_array()) {
      f.Add(p + "membership_changing", kGauge, "1 while a membership change is under way",
            (*m)["old_members"].empty() ? 0.0 : 1.0);
    }
  }
  if (auto c = status.find("counters"); c != status.end()) {
    f.Add(p + "drains_total", kCounter, "Operator and health drains", Number(*c, "drains"));
  }
  f.Add(p + "role_changes_total", kCounter, "Changes of holder or epoch seen, any slot",
        Number(status, "role_changes"));
  if (auto a = status.find("address"); a != status.end()) {
    f.Add(p + "address_errors_total", kCounter, "Failed netlink address operations",
          Number(*a, "errors"));
  }
  f.Add(p + "state_write_errors_total", kCounter, "Failed writes of the state file",
        Number(status, "state_errors"));
  f.Add(p + "fence_errors_total", kCounter, "Failed kernel fence updates",
        Number(status, "fence_errors"));

  // Datagrams.
  if (auto t = status.find("transport"); t != status.end() && t->is_object()) {
    f.Add(p + "datagrams_sent_total", kCounter, "Datagrams handed to the kernel", Number(*t, "sent"));
    f.Add(p + "datagrams_send_failed_total", kCounter, "Datagrams the kernel refused",
          Number(*t, "send_failed"));
    f.Add(p + "datagrams_delivered_total", kCounter, "Authentic, fresh datagrams received",
          Number(*t, "delivered"));
    if (auto d = t->find("dropped"); d != t->end() && d->is_object()) {
      for (const auto& [reason, count] : d->items()) {
        f.Add(p + "datagrams_rejected_total", kCounter,
              "Received datagrams the transport refused, by reason",
              count.is_number() ? std::optional<double>(count.get<double>()) : std::nullopt,
              {{"reason", reason}});
      }
    }
  }
  if (auto core = status.find("core"); core != status.end() && core->is_object()) {
    const std::pair<const char*, const char*> reasons[] = {
        {"malformed", "malformed_messages"}, {"stale", "stale_messages"}, {"late", "late_messages"}};
    for (const auto& [reason, key] : reasons) {
      f.Add(p + "messages_dropped_total", kCounter,
            "Authentic messages the protocol dropped, by reason", Number(*core, key),
            {{"reason", reason}});
    }
  }
  return f.Take();
}

std::string RenderTakeoverMetrics(const json& status) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, TakeoverMetricFamilies(status));
  return out.str();
}

}  // namespace baton::takeover

// Prometheus metrics of the take-over agent, defined once: a pure function from the agent's
// status document (TakeoverDaemon::StatusJson -- what baton-takeoverd serves on its status socket
// and what an embedding server gets from GetStatusAsync or over the parent link) to
// prometheus-cpp MetricFamily values. baton-takeoverd exposes them on `metrics_listen`
// (metrics_server.h); a server's admin plane appends them to its own families, so both use the
// same names, types and labels.
//
// Metrics (all names start with baton_takeover_; docs/takeover.md "Metrics" has the list):
//   per slot, labels {slot, address}: slot_held, slot_epoch, slot_lease_remaining_seconds,
//     slot_shed, slot_drained (gauges); slot_takeovers_total, slot_releases_total,
//     slot_sheds_total (counters)
//   node: healthy, draining, capacity, capacity_used, shed_slots, view_peers, peer_in_view{peer},
//     membership_version, membership_members, membership_changing (gauges); drains_total,
//     role_changes_total, address_errors_total, state_write_errors_total, fence_errors_total
//   transport: datagrams_sent_total, datagrams_delivered_total, datagrams_send_failed_total,
//     datagrams_rejected_total{reason} (bad_mac, replay, stale, bad_version, unknown_sender, ...);
//     and messages_dropped_total{reason} for authentic datagrams the core refused (malformed,
//     stale, late)
// A key missing from the document (an older agent, or the status of a daemon not started yet)
// leaves its metric out; nothing here throws.
//
// Thread-safety: pure functions.
#ifndef BATON_TAKEOVER_DAEMON_METRICS_H_
#define BATON_TAKEOVER_DAEMON_METRICS_H_

#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <prometheus/metric_family.h>

namespace baton::takeover {

std::vector<prometheus::MetricFamily> TakeoverMetricFamilies(const nlohmann::json& status);

// The Prometheus text exposition format (version 0.0.4) of TakeoverMetricFamilies(status).
std::string RenderTakeoverMetrics(const nlohmann::json& status);

}  // namespace baton::takeover

#endif  // BATON_TAKEOVER_DAEMON_METRICS_H_

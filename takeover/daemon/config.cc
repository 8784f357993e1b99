#include "takeover/daemon/config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "yaml-cpp/yaml.h"

namespace baton::takeover {
namespace {

constexpr uint16_t kDefaultPort = 7946;

absl::Status Bad(const std::string& key, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("config: ", key, ": ", why));
}

bool IsIpv4(const std::string& s) {
  in_addr a{};
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}
bool IsIpv6(const std::string& s) {
  std::string host = s.substr(0, s.find('%'));
  in6_addr a{};
  return inet_pton(AF_INET6, host.c_str(), &a) == 1;
}

// "1.2.3.4:7946", "[fd00::1]:7946", "1.2.3.4" (default port), "fd00::1" (default port).
absl::Status ParseHostPort(const std::string& key, const std::string& text, std::string& host,
                           uint16_t& port) {
  std::string port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos) return Bad(key, "missing ']' in '" + text + "'");
    host = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') return Bad(key, "expected ':' after ']' in '" + text + "'");
      port_text = text.substr(close + 2);
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    size_t colon = text.find(':');
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  } else {
    host = text;
  }
  if (!IsIpv4(host) && !IsIpv6(host)) {
    return Bad(key, "'" + host + "' is not a numeric IPv4/IPv6 address (no DNS names)");
  }
  port = kDefaultPort;
  if (!port_text.empty()) {
    uint32_t p = 0;
    if (!absl::SimpleAtoi(port_text, &p) || p == 0 || p > 65535) {
      return Bad(key, "bad port '" + port_text + "'");
    }
    port = static_cast<uint16_t>(p);
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status Get(const YAML::Node& node, const std::string& key, T& out) {
  try {
    out = node.as<T>();
  } catch (const YAML::Exception& e) {
    return Bad(key, absl::StrCat("bad value '", YAML::Dump(node), "'"));
  }
  return absl::OkStatus();
}

absl::Status GetDuration(const YAML::Node& node, const std::string& key, std::chrono::nanoseconds& out) {
  std::string text;
  if (absl::Status s = Get(node, key, text); !s.ok()) return s;
  std::optional<std::chrono::nanoseconds> d = ParseDuration(text);
  if (!d) return Bad(key, "bad duration '" + text + "' (e.g. 100ms, 1s, 250us)");
  out = *d;
  return absl::OkStatus();
}

absl::Status GetMs(const YAML::Node& node, const std::string& key, std::chrono::milliseconds& out) {
  std::chrono::nanoseconds ns{};
  if (absl::Status s = GetDuration(node, key, ns); !s.ok()) return s;
  out = std::chrono::duration_cast<std::chrono::milliseconds>(ns);
  return absl::OkStatus();
}

absl::Status CheckKeys(const YAML::Node& map, const std::string& where,
                       const std::set<std::string>& allowed) {
  for (const auto& kv : map) {
    std::string k = kv.first.as<std::string>();
    if (allowed.count(k) == 0) {
      return Bad(absl::StrCat(where, k), "unknown key (typo?)");
    }
  }
  return absl::OkStatus();
}

// "10.78.0.100/24", "fd78::100" (prefix length: default 32 / 128).
absl::Status ParseServiceAddress(const YAML::Node& node, const std::string& key, ServiceAddress& out) {
  std::string addr;
  if (absl::Status s = Get(node, key, addr); !s.ok()) return s;
  size_t slash = addr.find('/');
  out.address = addr.substr(0, slash);
  if (IsIpv4(out.address)) {
    out.ipv6 = false;
  } else if (IsIpv6(out.address) && out.address.find('%') == std::string::npos) {
    out.ipv6 = true;
  } else {
    return Bad(key, "'" + addr + "' is not ADDRESS[/PREFIXLEN]");
  }
  const int max_len = out.ipv6 ? 128 : 32;
  out.prefix_length = max_len;
  if (slash != std::string::npos) {
    if (!absl::SimpleAtoi(addr.substr(slash + 1), &out.prefix_length) || out.prefix_length < 1 ||
        out.prefix_length > max_len) {
      return Bad(key, absl::StrCat("prefix length must be 1..", max_len));
    }
  }
  return absl::OkStatus();
}

// witness, node_id, key_file, interface; every required key is present.
absl::Status ParseIdentity(const YAML::Node& root, DaemonConfig& c) {
  if (root["witness"]) {
    if (absl::Status s = Get(root["witness"], "witness", c.witness); !s.ok()) return s;
  }
  for (const char* required : {"node_id", "peers", "key_file", "interface"}) {
    if (c.witness && std::string_view(required) == "interface") continue;
    if (!root[required]) return Bad(required, "missing (required)");
  }
  if (!root["service_address"] && !root["service_addresses"]) {
    return Bad("service_address", "missing (required: service_address or service_addresses)");
  }
  if (absl::Status s = Get(root["node_id"], "node_id", c.node_id); !s.ok()) return s;
  if (c.node_id == 0) return Bad("node_id", "must be > 0");
  if (absl::Status s = Get(root["key_file"], "key_file", c.key_file); !s.ok()) return s;
  if (root["interface"]) {
    if (absl::Status s = Get(root["interface"], "interface", c.interface); !s.ok()) return s;
    if (c.interface.empty() || c.interface.size() > 15) return Bad("interface", "1..15 characters");
  }
  return absl::OkStatus();
}

// service_address / service_addresses.
absl::Status ParseServiceAddresses(const YAML::Node& root, DaemonConfig& c) {
  if (root["service_address"] && root["service_addresses"]) {
    return Bad("service_addresses", "give either service_address or service_addresses, not both");
  }
  if (root["service_address"]) {
    ServiceAddress a;
    if (absl::Status s = ParseServiceAddress(root["service_address"], "service_address", a); !s.ok()) {
      return s;
    }
    c.service_addresses.push_back(a);
  } else {
    const YAML::Node list = root["service_addresses"];
    if (!list.IsSequence() || list.size() == 0 || list.size() > 1024) {
      return Bad("service_addresses", "must be a list of 1..1024 ADDRESS[/PREFIXLEN]");
    }
    std::set<std::string> seen;
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string key = absl::StrCat("service_addresses[", i, "]");
      ServiceAddress a;
      if (absl::Status s = ParseServiceAddress(list[i], key, a); !s.ok()) return s;
      // Canonical text, so that "fd78::1" and "fd78:0::1" are the same address.
      std::string canonical = a.address;
      if (a.ipv6) {
        in6_addr v6{};
        char buf[INET6_ADDRSTRLEN] = {};
        if (inet_pton(AF_INET6, a.address.c_str(), &v6) == 1 &&
            inet_ntop(AF_INET6, &v6, buf, sizeof(buf)) != nullptr) {
          canonical = buf;
        }
      }
      if (!seen.insert(canonical).second) {
        return Bad(key, "duplicate address '" + a.address + "'");
      }
      c.service_addresses.push_back(a);
    }
  }
  return absl::OkStatus();
}

// peers (sorted by id; this node must be one of them).
absl::Status ParsePeers(const YAML::Node& root, DaemonConfig& c) {
  const YAML::Node peers = root["peers"];
  if (!peers.IsSequence() || peers.size() == 0) return Bad("peers", "must be a non-empty list");
  std::set<uint32_t> ids;
  std::set<int> priorities;
  for (size_t i = 0; i < peers.size(); ++i) {
    const YAML::Node p = peers[i];
    const std::string where = absl::StrCat("peers[", i, "].");
    if (!p.IsMap()) return Bad(where, "must be a mapping {id, priority, address}");
    if (absl::Status s = CheckKeys(p, where, {"id", "priority", "capacity", "address"}); !s.ok()) {
      return s;
    }
    for (const char* required : {"id", "priority", "address"}) {
      if (!p[required]) return Bad(where + required, "missing (required)");
    }
    DaemonPeerConfig peer;
    if (absl::Status s = Get(p["id"], where + "id", peer.id); !s.ok()) return s;
    if (peer.id == 0) return Bad(where + "id", "must be > 0");
    if (!ids.insert(peer.id).second) return Bad(where + "id", absl::StrCat("duplicate id ", peer.id));
    if (absl::Status s = Get(p["priority"], where + "priority", peer.priority); !s.ok()) return s;
    if (!priorities.insert(peer.priority).second) {
      return Bad(where + "priority", absl::StrCat("duplicate priority ", peer.priority,
                                                  " (priorities must be unique)"));
    }
    if (p["capacity"]) {
      if (absl::Status s = Get(p["capacity"], where + "capacity", peer.capacity); !s.ok()) return s;
      if (peer.capacity < 0) return Bad(where + "capacity", "must be >= 0");
    }
    std::string a;
    if (absl::Status s = Get(p["address"], where + "address", a); !s.ok()) return s;
    if (absl::Status s = ParseHostPort(where + "address", a, peer.host, peer.port); !s.ok()) {
      return s;
    }
    c.peers.push_back(peer);
  }
  std::sort(c.peers.begin(), c.peers.end(),
            [](const DaemonPeerConfig& a, const DaemonPeerConfig& b) { return a.id < b.id; });
  if (c.self() == nullptr) {
    return Bad("peers", absl::StrCat("node_id ", c.node_id, " is not in the peer list"));
  }

  if (c.witness && c.self()->capacity != 0) {
    return Bad("peers", absl::StrCat("a witness holds no address: its own entry (id ", c.node_id,
                                     ") must say capacity: 0"));
  }
  return absl::OkStatus();
}

// label, bind_host, freshness_window.
absl::Status ParseLocalAddressing(const YAML::Node& root, DaemonConfig& c) {
  if (c.witness && root["health_check"]) {
    return Bad("health_check", "a witness has no service to check");
  }
  c.label = c.interface.empty() ? "witness:bt" : c.interface + ":bt";
  if (root["label"]) {
    if (absl::Status s = Get(root["label"], "label", c.label); !s.ok()) return s;
  }
  if (!c.witness && (c.label.size() > 15 || c.label.size() <= c.interface.size() + 1 ||
                     c.label.rfind(c.interface + ":", 0) != 0)) {
    return Bad("label", "must be '<interface>:<suffix>', at most 15 characters");
  }
  if (root["bind_host"]) {
    if (absl::Status s = Get(root["bind_host"], "bind_host", c.bind_host); !s.ok()) return s;
    if (!IsIpv4(c.bind_host) && !IsIpv6(c.bind_host)) return Bad("bind_host", "not a numeric address");
  }

  if (root["freshness_window"]) {
    if (absl::Status s = GetDuration(root["freshness_window"], "freshness_window", c.freshness_window);
        !s.ok()) {
      return s;
    }
    if (c.freshness_window > std::chrono::hours(1)) {
      return Bad("freshness_window", "must be at most 1h (0 = off)");
    }
  }
  return absl::OkStatus();
}

// timing, announce.
absl::Status ParseTiming(const YAML::Node& root, DaemonConfig& c) {
  if (const YAML::Node t = root["timing"]) {
    if (!t.IsMap()) return Bad("timing", "must be a mapping");
    for (const auto& kv : t) {
      const std::string k = kv.first.as<std::string>();
      const std::string key = "timing." + k;
      if (k == "heartbeat") {
        if (absl::Status s = GetDuration(kv.second, key, c.heartbeat); !s.ok()) return s;
        if (c.heartbeat < std::chrono::milliseconds(1) || c.heartbeat > std::chrono::seconds(60)) {
          return Bad(key, "must be between 1ms and 60s");
        }
        continue;
      }
      double v = 0;
      if (absl::Status s = Get(kv.second, key, v); !s.ok()) return s;
      if (!std::isfinite(v) || v < 0) return Bad(key, "must be a non-negative number");
      if (k == "lease") {
        if (v <= 1) return Bad(key, "must be more than one heartbeat");
        c.lease_heartbeats = v;
      } else if (k == "max_drift") {
        if (v >= 0.1) return Bad(key, "must be < 0.1 (a fraction, e.g. 0.001)");
        c.max_drift = v;
      } else if (k == "address_lifetime") {
        c.address_lifetime_heartbeats = v;
      } else if (k == "grant_margin") {
        c.grant_margin_heartbeats = v;
      } else if (k == "remove_margin") {
        c.remove_margin_heartbeats = v;
      } else if (k == "peer_timeout") {
        c.peer_timeout_heartbeats = v;
      } else if (k == "discovery") {
        c.discovery_heartbeats = v;
      } else if (k == "shrink_after") {
        c.shrink_after_heartbeats = v;
      } else {
        return Bad(key, "unknown key (heartbeat, lease, max_drift, grant_margin, remove_margin, "
                        "peer_timeout, discovery, address_lifetime, shrink_after)");
      }
    }
  }
  if (c.address_lifetime_heartbeats < c.lease_heartbeats.value_or(2.5)) {
    return Bad("timing.address_lifetime", "must be at least the lease (in heartbeats)");
  }
  if (const YAML::Node a = root["announce"]) {
    if (!a.IsSequence() || a.size() > 32) return Bad("announce", "must be a list of up to 32 offsets");
    c.announce_schedule.clear();
    for (size_t i = 0; i < a.size(); ++i) {
      std::chrono::nanoseconds d{};
      if (absl::Status s = GetDuration(a[i], absl::StrCat("announce[", i, "]"), d); !s.ok()) return s;
      c.announce_schedule.push_back(d);
    }
    std::sort(c.announce_schedule.begin(), c.announce_schedule.end());
  }
  return absl::OkStatus();
}

// preempt, rebalance, kernel_fence.
absl::Status ParsePolicy(const YAML::Node& root, DaemonConfig& c) {
  if (root["preempt"]) {
    if (absl::Status s = Get(root["preempt"], "preempt", c.preempt); !s.ok()) return s;
  }
  if (root["rebalance"]) {
    if (absl::Status s = Get(root["rebalance"], "rebalance", c.rebalance); !s.ok()) return s;
  }
  if (root["kernel_fence"]) {
    bool fence = true;
    if (absl::Status s = Get(root["kernel_fence"], "kernel_fence", fence); !s.ok()) return s;
    c.kernel_fence = fence;
  }
  return absl::OkStatus();
}

// health_check.
absl::Status ParseHealthCheck(const YAML::Node& root, DaemonConfig& c) {
  if (const YAML::Node h = root["health_check"]) {
    if (!h.IsMap()) return Bad("health_check", "must be a mapping");
    if (absl::Status s = CheckKeys(h, "health_check.",
                                   {"kind", "command", "tcp", "period", "timeout", "fall", "rise",
                                    "liveness", "liveness_starved", "liveness_store"});
        !s.ok()) {
      return s;
    }
    HealthCheckConfig& hc = c.health_check;
    if (h["command"] && h["tcp"]) return Bad("health_check", "give either command or tcp, not both");
    std::string kind;
    if (h["kind"]) {
      if (absl::Status s = Get(h["kind"], "health_check.kind", kind); !s.ok()) return s;
      if (kind != "none" && kind != "command" && kind != "tcp" && kind != "external") {
        return Bad("health_check.kind", "'" + kind + "' is not none|command|tcp|external");
      }
    } else {
      kind = h["command"] ? "command" : h["tcp"] ? "tcp" : "";
    }
    if ((kind == "none" || kind == "external") && (h["command"] || h["tcp"])) {
      return Bad("health_check.kind", kind + " takes no command or tcp");
    }
    if (kind == "none") {
      hc.kind = HealthCheckConfig::Kind::kNone;
    } else if (kind == "external") {
      hc.kind = HealthCheckConfig::Kind::kExternal;
    } else if (kind == "command") {
      if (!h["command"]) return Bad("health_check.command", "missing (kind command)");
      hc.kind = HealthCheckConfig::Kind::kCommand;
      if (absl::Status s = Get(h["command"], "health_check.command", hc.command); !s.ok()) return s;
      if (hc.command.empty()) return Bad("health_check.command", "empty");
    } else if (kind == "tcp") {
      if (!h["tcp"]) return Bad("health_check.tcp", "missing (kind tcp)");
      hc.kind = HealthCheckConfig::Kind::kTcp;
      std::string t;
      if (absl::Status s = Get(h["tcp"], "health_check.tcp", t); !s.ok()) return s;
      if (absl::Status s = ParseHostPort("health_check.tcp", t, hc.tcp_host, hc.tcp_port); !s.ok()) {
        return s;
      }
      if (t.find(':') == std::string::npos || (t.front() == '[' && t.find("]:") == std::string::npos)) {
        return Bad("health_check.tcp", "needs HOST:PORT");
      }
    } else {
      return Bad("health_check", "needs command, tcp or kind");
    }
    if (h["period"]) {
      if (absl::Status s = GetMs(h["period"], "health_check.period", hc.period); !s.ok()) return s;
    }
    if (h["timeout"]) {
      if (absl::Status s = GetMs(h["timeout"], "health_check.timeout", hc.timeout); !s.ok()) return s;
    }
    if (hc.period.count() < 1) return Bad("health_check.period", "must be >= 1ms");
    if (hc.timeout.count() < 1) return Bad("health_check.timeout", "must be >= 1ms");
    if (h["fall"]) {
      if (absl::Status s = Get(h["fall"], "health_check.fall", hc.fall); !s.ok()) return s;
    }
    if (h["rise"]) {
      if (absl::Status s = Get(h["rise"], "health_check.rise", hc.rise); !s.ok()) return s;
    }
    if (hc.fall < 1) return Bad("health_check.fall", "must be >= 1");
    if (hc.rise < 1) return Bad("health_check.rise", "must be >= 1");
    if (h["liveness"]) {
      if (absl::Status s = GetMs(h["liveness"], "health_check.liveness", hc.liveness); !s.ok()) {
        return s;
      }
      if (hc.liveness.count() < 10) return Bad("health_check.liveness", "must be >= 10ms");
    }
    if (h["liveness_starved"]) {
      if (absl::Status s = GetMs(h["liveness_starved"], "health_check.liveness_starved",
                                 hc.liveness_starved);
          !s.ok()) {
        return s;
      }
    } else if (hc.liveness_starved < hc.liveness) {
      hc.liveness_starved = 5 * hc.liveness;  // a liveness above the default: keep the ratio
    }
    if (hc.liveness_starved < hc.liveness) {
      return Bad("health_check.liveness_starved", "must be >= health_check.liveness");
    }
    if (h["liveness_store"]) {
      if (absl::Status s = GetMs(h["liveness_store"], "health_check.liveness_store",
                                 hc.liveness_store);
          !s.ok()) {
        return s;
      }
    } else {
      hc.liveness_store = 2 * hc.liveness;
    }
    if (hc.liveness_store < hc.liveness) {
      return Bad("health_check.liveness_store", "must be >= health_check.liveness");
    }
  }
  return absl::OkStatus();
}

// damping.
absl::Status ParseDamping(const YAML::Node& root, DaemonConfig& c) {
  if (const YAML::Node d = root["damping"]) {
    if (!d.IsMap()) return Bad("damping", "must be a mapping");
    if (absl::Status s = CheckKeys(d, "damping.", {"losses", "window", "hold"}); !s.ok()) return s;
    DampingConfig& dc = c.damping;
    if (d["losses"]) {
      if (absl::Status s = Get(d["losses"], "damping.losses", dc.losses); !s.ok()) return s;
      if (dc.losses < 0 || dc.losses > 1000) return Bad("damping.losses", "must be 0..1000");
    }
    if (d["window"]) {
      if (absl::Status s = GetMs(d["window"], "damping.window", dc.window); !s.ok()) return s;
    }
    if (d["hold"]) {
      if (absl::Status s = GetMs(d["hold"], "damping.hold", dc.hold); !s.ok()) return s;
    }
    if (dc.losses > 0 && dc.window.count() < 1) return Bad("damping.window", "must be >= 1ms");
    if (dc.losses > 0 && dc.hold.count() < 1) return Bad("damping.hold", "must be >= 1ms");
  }
  return absl::OkStatus();
}

// close_timeout, status_socket, metrics_listen, incarnation_file, state_file, nice, log_level.
absl::Status ParseOperation(const YAML::Node& root, DaemonConfig& c) {
  if (root["close_timeout"]) {
    if (absl::Status s = GetMs(root["close_timeout"], "close_timeout", c.close_timeout); !s.ok()) {
      return s;
    }
    if (c.close_timeout > std::chrono::seconds(60)) return Bad("close_timeout", "must be <= 60s");
  }
  if (root["status_socket"]) {
    if (absl::Status s = Get(root["status_socket"], "status_socket", c.status_socket); !s.ok()) return s;
    if (c.status_socket.size() >= 108) return Bad("status_socket", "path longer than 107 bytes");
  }
  if (root["metrics_listen"]) {
    if (absl::Status s = Get(root["metrics_listen"], "metrics_listen", c.metrics_listen); !s.ok()) {
      return s;
    }
    if (!c.metrics_listen.empty()) {
      if (absl::Status s = ParseHostPort("metrics_listen", c.metrics_listen, c.metrics_host,
                                         c.metrics_port);
          !s.ok()) {
        return s;
      }
      const std::string& t = c.metrics_listen;
      const bool has_port = t.front() == '[' ? t.find("]:") != std::string::npos
                                             : std::count(t.begin(), t.end(), ':') == 1;
      if (!has_port) {
        return Bad("metrics_listen", "needs HOST:PORT (e.g. 127.0.0.1:9464)");
      }
    }
  }
  c.incarnation_file = absl::StrCat("/var/lib/baton/takeoverd-", c.node_id, ".incarnation");
  if (root["incarnation_file"]) {
    if (absl::Status s = Get(root["incarnation_file"], "incarnation_file", c.incarnation_file); !s.ok()) {
      return s;
    }
  }
  c.state_file = absl::StrCat("/var/lib/baton/takeoverd-", c.node_id, ".state");
  if (root["state_file"]) {
    if (absl::Status s = Get(root["state_file"], "state_file", c.state_file); !s.ok()) return s;
    if (c.state_file.empty()) return Bad("state_file", "must not be empty");
  }
  if (root["nice"]) {
    if (absl::Status s = Get(root["nice"], "nice", c.nice); !s.ok()) return s;
    if (c.nice < -20 || c.nice > 19) return Bad("nice", "must be -20..19");
  }
  if (root["realtime_priority"]) {
    if (absl::Status s = Get(root["realtime_priority"], "realtime_priority", c.realtime_priority);
        !s.ok()) {
      return s;
    }
    if (c.realtime_priority < 0 || c.realtime_priority > 99) {
      return Bad("realtime_priority", "must be 0..99");
    }
  }
  if (root["log_level"]) {
    if (absl::Status s = Get(root["log_level"], "log_level", c.log_level); !s.ok()) return s;
    static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error"};
    if (kLevels.count(c.log_level) == 0) return Bad("log_level", "trace|debug|info|warn|error");
  }
  return absl::OkStatus();
}

absl::StatusOr<DaemonConfig> Parse(const YAML::Node& root) {
  if (!root.IsMap()) return Bad("<top>", "the document must be a mapping");
  if (absl::Status s = CheckKeys(root, "",
                                 {"node_id", "witness", "peers", "key_file", "interface", "service_address",
                                  "service_addresses", "rebalance", "label", "bind_host", "freshness_window",
                                  "timing", "announce", "preempt",
                                  "kernel_fence", "health_check", "status_socket", "metrics_listen", "incarnation_file",
                                  "state_file", "nice", "realtime_priority", "damping", "close_timeout",
                                  "log_level"});
      !s.ok()) {
    return s;
  }
  DaemonConfig c;
  // Section by section, in this order (the first error is reported; later sections may rely on
  // earlier ones, e.g. the label on the interface, the peers on node_id).
  for (absl::Status (*section)(const YAML::Node&, DaemonConfig&) :
       {ParseIdentity, ParseServiceAddresses, ParsePeers, ParseLocalAddressing, ParseTiming,
        ParsePolicy, ParseHealthCheck, ParseDamping, ParseOperation}) {
    if (absl::Status s = section(root, c); !s.ok()) return s;
  }
  return c;
}

}  // namespace

const DaemonPeerConfig* DaemonConfig::self() const {
  for (const DaemonPeerConfig& p : peers) {
    if (p.id == node_id) return &p;
  }
  return nullptr;
}

std::optional<std::chrono::nanoseconds> ParseDuration(std::string_view text) {
  std::string t(text);
  size_t i = 0;
  while (i < t.size() && (std::isdigit(static_cast<unsigned char>(t[i])) || t[i] == '.')) ++i;
  if (i == 0) return std::nullopt;
  double v = 0;
  if (!absl::SimpleAtod(t.substr(0, i), &v) || !std::isfinite(v) || v < 0) return std::nullopt;
  std::string unit = t.substr(i);
  double scale = 0;
  if (unit.empty() || unit == "ms") scale = 1e6;
  else if (unit == "s") scale = 1e9;
  else if (unit == "us") scale = 1e3;
  else if (unit == "ns") scale = 1;
  else if (unit == "m") scale = 60e9;
  else return std::nullopt;
  return std::chrono::nanoseconds(static_cast<int64_t>(std::llround(v * scale)));
}

absl::StatusOr<DaemonConfig> ParseDaemonConfig(std::string_view yaml) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config: not valid YAML: ", e.what()));
  }
  try {
    return Parse(root);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config: ", e.what()));
  }
}

absl::StatusOr<DaemonConfig> LoadDaemonConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    if (errno == EACCES) return absl::PermissionDeniedError("cannot read config " + path);
    return absl::NotFoundError("cannot open config " + path);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  absl::StatusOr<DaemonConfig> c = ParseDaemonConfig(ss.str());
  if (!c.ok()) {
    return absl::Status(c.status().code(), absl::StrCat(path, ": ", c.status().message()));
  }
  return c;
}

}  // namespace baton::takeover

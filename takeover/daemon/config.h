// The configuration of baton-takeoverd, the standalone take-over daemon: which group it belongs
// to, which service address it moves, how fast, and how it checks the local service.
//
// Read from YAML (see deploy/baton-takeoverd.example.yaml for every key with its default):
//
//   node_id: 1
//   interface: eth0
//   service_address: 10.78.0.100/24          # address/prefix length, IPv4 or IPv6, or a pool:
//   # service_addresses: [10.78.0.100/24, 10.78.0.101/24]   (exactly one of the two keys)
//   key_file: /etc/baton/cluster.key          # >= 32 bytes, mode 0600
//   peers:                                    # every member, this node included
//     - {id: 1, priority: 150, address: 10.78.0.1:7946}
//     - {id: 2, priority: 100, address: 10.78.0.2:7946}
//   timing: {heartbeat: 100ms, lease: 10, address_lifetime: 30}   # lease etc. in heartbeats
//
// Parsing is pure (no file system access except LoadDaemonConfig reading the file); every error
// is kInvalidArgument with a message naming the key, so the daemon can print it and exit 2.
//
// Thread-safety: plain values.
#ifndef BATON_TAKEOVER_DAEMON_CONFIG_H_
#define BATON_TAKEOVER_DAEMON_CONFIG_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace baton::takeover {

struct DaemonPeerConfig {
  uint32_t id = 0;        // unique, > 0
  int priority = 0;       // higher wins an election; unique within the group
  int capacity = 1;       // how many service addresses it may hold. Default: 1
  std::string host;       // numeric IPv4/IPv6 address of its take-over UDP port
  uint16_t port = 0;      // UDP port. Default (when the address has none): 7946
};

struct HealthCheckConfig {
  // kExternal: the process that embeds TakeoverDaemon reports health through SetHealthy()
  // (YAML `health_check: {kind: external}`); a standalone baton-takeoverd refuses it.
  enum class Kind { kNone, kCommand, kTcp, kExternal };
  Kind kind = Kind::kNone;  // Default: none (the node is always healthy)
  // kCommand: run through /bin/sh -c; exit status 0 = healthy.
  std::string command;
  // kTcp: a connect to host:port that succeeds within `timeout` = healthy.
  std::string tcp_host;
  uint16_t tcp_port = 0;
  std::chrono::milliseconds period{1000};   // between checks. Default: 1 s
  std::chrono::milliseconds timeout{1000};  // per check. Default: 1 s
  int fall = 3;  // consecutive failures before the node drains. Default: 3
  int rise = 2;  // consecutive successes before it campaigns again. Default: 2
  // kExternal, agent supervised by a server (`baton-takeoverd --parent-fd`): the server proves
  // its progress (its request event loop ran a probe) with a keepalive every liveness / 6; a
  // server silent this long is stopped or hung and its addresses are handed over, as after its
  // death. In-process (thread mode) a server whose probe fails this long reports unhealthy.
  // A probe that fails while requests wait on store reads is the store's silence, not a hang, up
  // to liveness_store (below).
  // YAML `health_check.liveness`, >= 10ms. Default: 300 ms.
  std::chrono::milliseconds liveness{300};
  // A silent server that is starved of CPU, not hung -- its threads waited runnable for a CPU (or
  // a CPU quota) at least a quarter of the silence (health_check.h StarvationExcuse) -- keeps its
  // addresses until it has been silent this long; a stopped or hung one is still given up after
  // `liveness`. YAML `health_check.liveness_starved`, >= liveness. Default: 1500 ms.
  std::chrono::milliseconds liveness_starved{1500};
  // Embedded agent only: a silent server whose requests are waiting on its store (etcd stalls
  // for a slow fsync or an apply, 100-500 ms) keeps its addresses until it has been silent this
  // long (framework/agent_liveness.h); a peer would wait on the same store. Longer waits are
  // handed over: an etcd election (0.5-1 s at the lab's 50/500 ms) or a store slow only from this
  // host (a lossy link). YAML `health_check.liveness_store`, >= liveness. Default: 2 x liveness
  // (600 ms).
  std::chrono::milliseconds liveness_store{600};
};

// Damping of lease losses (YAML `damping: {losses: 2, window: 5s, hold: 2s}`): a holder that
// lost a slot's lease (not a release it chose) `losses` times within `window` -- a lossy or slow
// cluster link, a gray failure -- steps back from that slot for `hold` (drains it, so a peer with
// a healthy link wins the next election instead of this host taking it back after every loss),
// then may campaign for it again (it does not take it from a live holder unless preempt).
// losses 0 = off. Defaults: 2, 5 s, 2 s.
struct DampingConfig {
  int losses = 2;
  std::chrono::milliseconds window{5000};
  std::chrono::milliseconds hold{2000};
};

// One service address of the pool (YAML `service_addresses` entry or `service_address`).
struct ServiceAddress {
  std::string address;    // numeric, without prefix length, e.g. "10.78.0.100"
  int prefix_length = 0;  // e.g. 24; default: 32 (IPv4) / 128 (IPv6)
  bool ipv6 = false;      // `address` is IPv6
};

struct DaemonConfig {
  uint32_t node_id = 0;
  // A witness (YAML `witness: true`): a member that only grants -- it holds no address, needs no
  // interface, no service and no network privileges (no netlink, no ARP, no kernel fence), and
  // can run on any third machine, e.g. beside an etcd member. With it, a pair of hosts keeps
  // serving when either fails, and a group shrinks down to its last host (docs/takeover.md
  // "Serial failures"). Its own `peers` entry must say `capacity: 0`; `service_address(es)` is
  // the group's list (only its length, the number of slots, matters here); `interface` may be
  // left out; no health check. Default: false.
  bool witness = false;
  std::vector<DaemonPeerConfig> peers;  // every member, this node included, sorted by id
  std::string key_file;                 // cluster key (see LoadClusterKey)
  std::string interface;                // where the service addresses live, e.g. "eth0"; a witness
                                        // has none (empty)
  // The pool: slot i is service_addresses[i] (YAML `service_addresses: [A/P, ...]`, or the
  // single `service_address: A/P` = a pool of one). Exactly one of the two keys; >= 1 entry,
  // at most 1024, no duplicates. Each peer's `capacity` is the most it holds at once.
  std::vector<ServiceAddress> service_addresses;
  // Kernel label of the address: "<interface>:<suffix>", <= 15 chars (IPv4 only; IPv6 addresses
  // are tagged by IFA_PROTO). Used to find stale addresses this daemon left behind.
  // Default: "<interface>:bt".
  std::string label;
  // Local address the UDP socket binds to. Default: "::" (any, dual stack); port: own peer's.
  std::string bind_host = "::";
  // The transport drops datagrams whose send time (the sender's wall clock) differs from ours by
  // more than this, so that a restarted daemon never accepts an old captured datagram
  // (udp_transport.h "Receiver restarts"). Needs the peers' wall clocks within it (NTP). YAML
  // `freshness_window: 5s`; 0 turns it off. Default: 5 s.
  std::chrono::nanoseconds freshness_window = std::chrono::seconds(5);

  // Timing (YAML `timing:`). Everything but the heartbeat and max_drift is a multiple of the
  // heartbeat; an absent value keeps the core's default multiple (takeover/core/node.h,
  // Timing::ForHeartbeat): lease 2.5, grant_margin 0.05, remove_margin 0.2, peer_timeout 2.5,
  // discovery 3.
  std::chrono::nanoseconds heartbeat = std::chrono::milliseconds(100);  // Default: 100 ms
  std::optional<double> lease_heartbeats;          // lease length
  std::optional<double> grant_margin_heartbeats;   // extra time a grantor keeps a grant
  std::optional<double> remove_margin_heartbeats;  // remove this long before the lease ends
  std::optional<double> peer_timeout_heartbeats;   // silence after which a peer leaves the view
  std::optional<double> discovery_heartbeats;      // start-up quiet period (at least GrantHold)
  // Serial failures (YAML `timing.shrink_after`, in heartbeats): a member missing from the view of
  // a connected majority this long is removed from the group (and a returning host that has been
  // back for 10 heartbeats is added again), so that the service survives hosts failing one after another
  // down to a pair with a witness, or the last of a group with one (docs/takeover.md "Serial
  // failures"). Needs `state_file`. 0 turns it off (the group is the static peer list).
  // Default: 100 heartbeats (10 s at the default heartbeat).
  double shrink_after_heartbeats = 100;
  double max_drift = 0.001;  // bound on clock-rate error, a fraction. Default: 1e-3 (0.1 %)
  // Kernel valid_lft of the address while held (refreshed while holding): a backstop that
  // removes the address if the daemon is paused or dead. Default: 30 heartbeats; the kernel
  // counts whole seconds, so at least 2 s is used.
  double address_lifetime_heartbeats = 30;
  // Gratuitous ARP / unsolicited NA rounds after taking the address, as offsets from the take-over
  // (YAML: `announce: [0ms, 10ms, 50ms, 200ms, 1s]`). Default: that list.
  std::vector<std::chrono::nanoseconds> announce_schedule = {
      std::chrono::milliseconds(0), std::chrono::milliseconds(10), std::chrono::milliseconds(50),
      std::chrono::milliseconds(200), std::chrono::seconds(1)};

  bool preempt = false;  // a higher-priority node takes the address back. Default: false
  // Pool: a node that recovers (or gains capacity) takes addresses over from more loaded nodes
  // until loads differ by at most one (GroupConfig::rebalance). YAML `rebalance`. Default: false
  bool rebalance = false;
  // Kernel-enforced lease (takeover/drivers/nft_fence.h): nftables drops traffic and ARP for the
  // service address from a jiffy before the lease ends unless the daemon renewed it, so a frozen
  // daemon stops answering within milliseconds, not valid_lft's seconds. YAML `kernel_fence:
  // true|false`. Default (absent): on when nftables is usable here, else off with a warning;
  // true: start-up fails if it is not usable.
  std::optional<bool> kernel_fence;
  HealthCheckConfig health_check;
  DampingConfig damping;
  // A planned release of a held address (operator drain, health drain, a shutdown the embedding
  // server asked for) first lets the embedding server close its connections on the address
  // (TakeoverDaemon::SetReleaseGate) and waits for it at most this long, so that clients
  // reconnect to the next holder instead of losing a reply. YAML `close_timeout`; 0: no wait.
  // Default: 200 ms.
  std::chrono::milliseconds close_timeout{200};
  // Prometheus metrics (takeover/daemon/metrics.h) served over HTTP as GET /metrics on this
  // "HOST:PORT" ("[v6]:PORT"), e.g. 127.0.0.1:9464. YAML `metrics_listen`. An embedding server
  // normally leaves it off and exports the same metrics on its own admin plane. Default: "" (off).
  std::string metrics_listen;
  uint16_t metrics_port = 0;  // parsed from metrics_listen (host in metrics_host)
  std::string metrics_host;
  // Unix socket for `baton-takeoverd status` and `drain`. Empty: no socket (an embedding process
  // that serves the status itself). Default: /run/baton-takeoverd.sock
  std::string status_socket = "/run/baton-takeoverd.sock";
  // Persisted transport incarnation. Default: /var/lib/baton/takeoverd-<node_id>.incarnation
  std::string incarnation_file;
  // The core's persistent state (membership, epoch floors; takeover/daemon/state_file.h), written
  // atomically before the messages that depend on it leave and restored at start-up. A corrupt
  // or unreadable file stops the start-up (exit 2). Default: /var/lib/baton/takeoverd-<node_id>.state
  std::string state_file;
  std::string log_level = "info";  // trace|debug|info|warn|error. Default: info
  // Scheduling niceness the standalone daemon gives itself at start (YAML `nice`, -20..19): a
  // daemon starved of CPU for more than a lease minus a heartbeat loses its addresses, so it
  // runs ahead of ordinary work (compilers, batch jobs). Needs root (CAP_SYS_NICE); otherwise a
  // warning. Not applied by embedders (their process, their choice). Default: -10
  int nice = -10;
  // Real-time scheduling of the daemon's thread (YAML `realtime_priority`, 0..99; 0 = off): with
  // SCHED_RR at this priority (and SCHED_RESET_ON_FORK, so health-check commands run normally) it
  // runs before every ordinary task and is not throttled by its cgroup's CPU quota, so a busy or
  // CPU-limited host does not make it miss renewals (it needs well under 1 % of a CPU). Applied by
  // baton-takeoverd, standalone and supervised (--parent-fd); not by embedders in thread mode.
  // Without CAP_SYS_NICE, or in a cgroup v1 with no real-time budget (cpu.rt_runtime_us 0 under
  // CONFIG_RT_GROUP_SCHED), a warning and `nice` alone. Default: 1
  int realtime_priority = 1;

  const DaemonPeerConfig* self() const;
  // The part of `label` after "<interface>:".
  std::string label_suffix() const { return label.substr(label.find(':') + 1); }
};

// Parses YAML text. kInvalidArgument names the first bad or missing key.
absl::StatusOr<DaemonConfig> ParseDaemonConfig(std::string_view yaml);
// Reads and parses a file. kNotFound / kPermissionDenied for the file, else as ParseDaemonConfig.
absl::StatusOr<DaemonConfig> LoadDaemonConfig(const std::string& path);

// "100ms", "1.5s", "250us", "2m", bare number = milliseconds. nullopt if unparsable or < 0.
std::optional<std::chrono::nanoseconds> ParseDuration(std::string_view text);

}  // namespace baton::takeover

#endif  // BATON_TAKEOVER_DAEMON_CONFIG_H_

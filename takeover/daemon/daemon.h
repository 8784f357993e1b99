// baton-takeoverd's engine: wires the pure take-over core (takeover/core/node.h) to the drivers
// (UDP transport, netlink address driver, announcer) on one Asio io_context, and adds what a
// standalone daemon needs around them: removal of stale labelled addresses at start-up, the
// kernel valid_lft backstop refreshed while holding, the kernel-enforced lease (nft_fence.h), a
// health check of the local service (unhealthy -> Drain; healthy again -> Node::Resume),
// persistence of the core's state (state_file.h), a graceful hand-over on Shutdown() (SIGTERM),
// a status socket (status and operator drain requests), and one log line per role change.
//
// A pool of addresses: slot i of the core is config.service_addresses[i]; each slot has its own
// address action, announcement schedule, valid_lft refresh and kernel-fence element. Which node
// holds which slot is the core's deterministic assignment by priority and capacity.
//
// Order of effects (the core's driver contract): after every core call the address actions are
// applied first -- a remove always before any add -- and only then are the messages sent, so a
// release never reaches a peer while the address is still here.
//
// Embedding (e.g. baton-kvserver with takeover_mode thread runs the agent in-process; with
// takeover_mode process it supervises `baton-takeoverd --parent-fd`, parent_link.h, which embeds it
// the same way): create it on the embedder's
// io_context, SetSlotListener before Start, then SetHealthy / DrainSlot / GetStatusAsync from any
// thread. Destroy it on (or after stopping) the io_context's thread, after Shutdown's `done`.
//
// Threading: everything runs on the io_context's thread; only the methods marked thread-safe may
// be called from other threads (they post to the io_context).
#ifndef BATON_TAKEOVER_DAEMON_DAEMON_H_
#define BATON_TAKEOVER_DAEMON_DAEMON_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "takeover/core/node.h"
#include "takeover/daemon/config.h"
#include "takeover/daemon/damping.h"
#include "takeover/daemon/driver_factory.h"
#include "takeover/daemon/health_check.h"
#include "takeover/daemon/metrics_server.h"
#include "takeover/daemon/state_file.h"
#include "takeover/drivers/address_driver.h"
#include "takeover/drivers/announcer.h"
#include "takeover/drivers/clock.h"
#include "takeover/drivers/nft_fence.h"
#include "takeover/drivers/udp_transport.h"

namespace baton::takeover {

// A change of what this host serves, reported to the embedder (TakeoverDaemon::SetSlotListener).
struct SlotEvent {
  uint32_t slot = 0;    // index into DaemonConfig::service_addresses
  std::string address;  // numeric, no prefix length, e.g. "10.78.0.100"
  bool held = false;    // true: the address was just added here; false: just removed here
  uint64_t epoch = 0;   // the core's epoch (fencing token) of this holding; strictly grows per slot
};

// The core GroupConfig for a daemon config: peers, one slot per service address, timing,
// preempt, rebalance.
GroupConfig GroupFromConfig(const DaemonConfig& config);

// The core Timing for a daemon config: Timing::ForHeartbeat(heartbeat) with the configured
// multiples applied.
Timing TimingFromConfig(const DaemonConfig& config);

class TakeoverDaemon {
 public:
  // Checks everything Create checks that needs no state change: the service prefix, the group
  // and timing as the core sees them, the key file. For `--check-config`. Same errors as Create.
  [[nodiscard]] static absl::Status Validate(const DaemonConfig& config, const Clock& clock);

  // Validates the config against the core and the drivers, loads the key, loads the state file,
  // picks the transport incarnation. Nothing runs until Start. Errors: kInvalidArgument (config
  // the core or drivers refuse, also a state file the core refuses), kDataLoss (corrupt state
  // file), key-file, state-file and incarnation-file errors as in udp_transport.h /
  // state_file.h. The drivers (transport, addresses, announcer, kernel fence) come from
  // `drivers` when Start() runs (driver_factory.h; it must outlive the daemon); `clock` is the
  // daemon's and its drivers' time.
  static absl::StatusOr<std::unique_ptr<TakeoverDaemon>> Create(
      boost::asio::io_context& io, const Clock& clock, DaemonConfig config,
      DriverFactory& drivers = RealDriverFactory());
  ~TakeoverDaemon();
  TakeoverDaemon(const TakeoverDaemon&) = delete;
  TakeoverDaemon& operator=(const TakeoverDaemon&) = delete;

  // Takes the node's instance lock (below), removes stale labelled addresses, opens the
  // transport and the status socket, creates the Node and starts the timers and the health
  // check. kUnavailable / kPermissionDenied from the drivers (bind, netlink, AF_PACKET);
  // kUnavailable when another agent of this node still runs after kInstanceLockWait.
  //
  // Instance lock: one agent per node, also across a restart. An exclusive flock on
  // "<incarnation_file>.lock" (holding the owner's pid) is taken before anything touches the
  // system and held until the process exits. A server restarted right after kill -9 starts a new
  // supervised agent while the old one is still handing the addresses over (it waits for its
  // server's end, then a grace period): the new one waits for the lock -- the old one's exit --
  // instead of failing to bind the UDP port, and never runs beside it. Blocks the calling thread
  // for that wait (at most kInstanceLockWait).
  [[nodiscard]] absl::Status Start();
  static constexpr std::chrono::seconds kInstanceLockWait{5};

  // Graceful hand-over: Drain, apply the removals, send the releases, keep answering peers for a
  // short grace period (one heartbeat, at most 100 ms) so a lost release is repeated, make sure
  // every address is gone, close everything, then call `done`. A second call finishes at once.
  // With a release gate (SetReleaseGate) the held addresses are first gated as a planned
  // release, unless `gate` is false (the embedding server is dead or hung: nobody to ask).
  // On the io_context's thread.
  void Shutdown(std::function<void()> done, bool gate = true);

  // The planned-release gate. Before a planned release of a held slot (DrainSlot, a health
  // drain, Shutdown) the daemon calls `gate(event, done)` (event: the slot, its address, held =
  // true, its epoch) on the io_context's thread and keeps holding -- renewing the lease, the
  // address in place -- until `done` is called (from any thread, once) or
  // config.close_timeout passed; only then is the address removed and the slot released. An
  // embedding server closes its connections on the address meanwhile (idle ones at once, busy
  // ones after their reply), so that a client's next request goes to the next holder instead
  // of into a connection that went dark. Set before Start(); not thread-safe.
  using ReleaseGate = std::function<void(const SlotEvent&, std::function<void()> done)>;
  void SetReleaseGate(ReleaseGate gate);

  // "Every slot" for DrainSlot.
  static constexpr uint32_t kAllSlots = std::numeric_limits<uint32_t>::max();

  // Called on the io_context's thread right after a slot's address was added (held=true) or
  // removed (held=false) in the kernel. Set before Start(); not thread-safe.
  void SetSlotListener(std::function<void(const SlotEvent&)> listener);
  // External health (health_check kind external; with other kinds it is ANDed with the check):
  // false -> drain every slot now (remove the addresses, tell the grantors); true -> resume
  // campaigning (slots drained by DrainSlot stay drained). Initially healthy. Thread-safe.
  void SetHealthy(bool healthy);
  // Operator drain of one slot (kAllSlots: every slot), or its undo (drain = false): the address
  // is handed over to a peer and this node does not campaign for the slot until undone.
  // Out-of-range slots are ignored. Thread-safe.
  void DrainSlot(uint32_t slot, bool drain);
  // The status document, computed on the io_context's thread; `done` is called there (also
  // before Start, with the config part only). Thread-safe.
  void GetStatusAsync(std::function<void(nlohmann::json)> done);

  // The status document served on the status socket (docs/takeover.md "Status"). On the
  // io_context's thread.
  nlohmann::json StatusJson() const;

 private:
  // What this process did to the kernel for one slot, and what was last logged about it.
  struct Slot {
    IpPrefix prefix;
    bool holding = false;    // the address is added here by us
    uint64_t held_epoch = 0;
    Time next_refresh{0};    // next valid_lft refresh while holding
    Time fence_end{0};       // lease end the fence element was last set to; 0 = none
    bool drained = false;    // operator drain (DrainSlot)
    NodeId last_holder = kNoNode;
    uint64_t last_epoch = 0;
    bool last_held = false;
  };

  TakeoverDaemon(boost::asio::io_context& io, const Clock& clock, DriverFactory& drivers,
                 DaemonConfig config, std::string key, uint64_t incarnation,
                 std::vector<IpPrefix> prefixes);

  // Netlink address driver (removing stale addresses), kernel fence and announcer: everything
  // that needs CAP_NET_ADMIN / CAP_NET_RAW. Not started by a witness.
  absl::Status StartAddressDrivers();
  void OnReceive(NodeId from, std::string_view payload);
  // Applies the core's actions, then sends its messages, logs role changes, re-arms the timer.
  void Pump();
  void ApplyAction(const Action& action);
  void ArmTick();
  void OnTick();
  void RefreshLifetimes(bool force);
  void RemoveAddressIfPresent(uint32_t slot, const char* why);
  void Notify(uint32_t slot, bool held, uint64_t epoch);
  // Runs `then` once the release gate passed for every held slot among `slot` (kAllSlots: all),
  // at once if none is held or there is no gate; at most config.close_timeout later.
  void GateRelease(uint32_t slot, std::function<void()> then);
  // Lease-loss damping: counts a loss of `slot` and steps back from it when the damper says so;
  // ends step-backs that are over.
  void OnLeaseLoss(uint32_t slot);
  // Kernel fence (if any): refuse (or again accept) new TCP connections to the slot's address.
  void RefuseConnections(uint32_t slot, bool refuse);
  // Shutdown after its release gate: drain, removals, releases, the grace period.
  void HandOver();
  void EndStepBacks();
  absl::Status LockInstance();
  // Health of the checker and of SetHealthy combined: drain or resume on a change.
  void OnHealth();
  void ApplyDrain(uint32_t slot, bool drain);
  void LogRoleChanges();
  // The status socket (config status_socket), in status_socket.cc with its client.
  absl::Status StartStatusSocket();
  void AcceptStatus();
  nlohmann::json HandleRequest(const std::string& line);
  void Finish();
  std::chrono::seconds ValidLifetime() const;
  bool holding_any() const;
  // Kernel fence (config kernel_fence): installs the tables at Start; SyncFence sets each held
  // slot's element timeout to the core's lease end whenever that moves (every renewal) and
  // revokes the others; RevokeFence drops one.
  absl::Status StartFence();
  void SyncFence();
  void RevokeFence(uint32_t slot);

  boost::asio::io_context& io_;
  const Clock& clock_;
  DriverFactory& drivers_;
  DaemonConfig config_;
  GroupConfig group_;
  std::string key_;
  uint64_t incarnation_;
  std::vector<Slot> slots_;  // one per service address
  Time started_{0};
  std::function<void(const SlotEvent&)> slot_listener_;
  ReleaseGate release_gate_;
  uint64_t gated_releases_ = 0, gate_timeouts_ = 0;
  bool health_gate_pending_ = false;  // a health drain waits for its release gate
  LeaseLossDamper damper_;
  int lock_fd_ = -1;  // the instance lock (see Start)

  std::unique_ptr<Node> node_;
  std::unique_ptr<UdpTransport> transport_;
  std::unique_ptr<AddressDriver> addresses_;
  std::unique_ptr<Announcer> announcer_;
  std::unique_ptr<AsioAnnouncerDriver> announcer_driver_;
  std::unique_ptr<HealthChecker> health_;
  std::unique_ptr<KernelFence> fence_;  // null when kernel_fence is off or nftables is unusable
  uint64_t fence_updates_ = 0, fence_errors_ = 0;
  boost::asio::steady_timer tick_timer_;
  std::unique_ptr<boost::asio::local::stream_protocol::acceptor> status_acceptor_;
  std::unique_ptr<MetricsServer> metrics_;  // config metrics_listen; null when off

  bool check_healthy_ = true;     // the health checker's last report
  bool external_healthy_ = true;  // SetHealthy's last value
  bool draining_ = false;         // Drain() called (health or shutdown)
  bool shutting_down_ = false;
  Time shutdown_deadline_{0};
  std::function<void()> shutdown_done_;
  uint64_t role_changes_ = 0;
  uint64_t adds_ = 0, removes_ = 0, refreshes_ = 0, address_errors_ = 0, announces_ = 0;
  uint64_t drains_ = 0;           // operator slot drains + health drains
  // Authentic messages of another peer wire version (takeover/core/wire.h kVersion; the core
  // counts them as malformed too): counted, logged at most every 10 s with the count since.
  uint64_t wrong_version_messages_ = 0, wrong_version_unlogged_ = 0;
  std::optional<Time> wrong_version_logged_;
  uint64_t node_generation_ = 1;  // bumped when the Node resumes after a health drain
  // The core's persistent state (config state_file): what the last run stored, and a state not
  // yet written because the write failed (retried on the next pump; messages wait for it).
  std::optional<PersistentState> restored_;
  std::optional<PersistentState> pending_state_;
  uint64_t state_writes_ = 0, state_errors_ = 0;
  std::string logged_membership_;  // the membership last logged (each change is logged once)
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  // For tasks posted from other threads (SetHealthy, DrainSlot, GetStatusAsync): never reassigned,
  // so copying it there does not race with Finish() replacing alive_; false once destroyed.
  const std::shared_ptr<bool> posted_alive_ = std::make_shared<bool>(true);
};

}  // namespace baton::takeover

#endif  // BATON_TAKEOVER_DAEMON_DAEMON_H_

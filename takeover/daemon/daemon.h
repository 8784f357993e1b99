// baton-takeoverd's engine: wires the pure take-over core (takeover/core/node.h) to the drivers
// (UDP transport, netlink address driver, announcer) on one Asio io_context, and adds what a
// standalone daemon needs around them: removal of stale labelled addresses at start-up, the
// kernel valid_lft backstop refreshed while holding, the kernel-enforced lease (nft_fence.h), a health check of the local service
// (unhealthy -> Drain; healthy again -> Node::Resume), persistence of the core's state (state_file.h), a graceful hand-over on
// Shutdown() (SIGTERM), a status socket, and one log line per role change.
//
// Order of effects (the core's driver contract): after every core call the address actions are
// applied first -- a remove always before any add -- and only then are the messages sent, so a
// release never reaches a peer while the address is still here.
//
// Threading: everything runs on the io_context's thread; the class is not thread-safe.
#ifndef BATON_TAKEOVER_DAEMON_DAEMON_H_
#define BATON_TAKEOVER_DAEMON_DAEMON_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "takeover/core/node.h"
#include "takeover/daemon/config.h"
#include "takeover/daemon/health_check.h"
#include "takeover/daemon/state_file.h"
#include "takeover/drivers/address_driver.h"
#include "takeover/drivers/announcer.h"
#include "takeover/drivers/clock.h"
#include "takeover/drivers/nft_fence.h"
#include "takeover/drivers/udp_transport.h"

namespace baton::takeover {

// The core Timing for a daemon config: Timing::ForHeartbeat(heartbeat) with the configured
// multiples applied.
Timing TimingFromConfig(const DaemonConfig& config);

class TakeoverDaemon {
 public:
  // Validates the config against the core and the drivers, loads the key, loads the state file,
  // picks the transport incarnation. Errors: kInvalidArgument (config the core or drivers refuse,
  // also a state file the core refuses), kDataLoss (corrupt state file), key-file,
  // state-file and incarnation-file errors as in udp_transport.h / state_file.h.
  // Checks everything Create checks that needs no state change: the service prefix, the group
  // and timing as the core sees them, the key file. For `--check-config`. Same errors as Create.
  [[nodiscard]] static absl::Status Validate(const DaemonConfig& config, const Clock& clock);

  static absl::StatusOr<std::unique_ptr<TakeoverDaemon>> Create(boost::asio::io_context& io,
                                                                const Clock& clock,
                                                                DaemonConfig config);
  ~TakeoverDaemon();
  TakeoverDaemon(const TakeoverDaemon&) = delete;
  TakeoverDaemon& operator=(const TakeoverDaemon&) = delete;

  // Removes stale labelled addresses, opens the transport and the status socket, creates the
  // Node and starts the timers and the health check. kUnavailable / kPermissionDenied from the
  // drivers (bind, netlink, AF_PACKET).
  [[nodiscard]] absl::Status Start();

  // Graceful hand-over: Drain, apply the removal, send the release, keep answering peers for a
  // short grace period (one heartbeat, at most 100 ms) so a lost release is repeated, make sure
  // the address is gone, close everything, then call `done`. A second call finishes at once.
  void Shutdown(std::function<void()> done);

  // The status document served on the status socket.
  nlohmann::json StatusJson() const;

 private:
  TakeoverDaemon(boost::asio::io_context& io, const Clock& clock, DaemonConfig config,
                 std::string key, uint64_t incarnation, IpPrefix prefix);

  void OnReceive(NodeId from, std::string_view payload);
  // Applies the core's actions, then sends its messages, logs role changes, re-arms the timer.
  void Pump();
  void ApplyAction(const Action& action);
  void ArmTick();
  void OnTick();
  void RefreshLifetime(bool force);
  void RemoveAddressIfPresent(const char* why);
  void OnHealth(bool healthy);
  void LogRoleChange();
  absl::Status StartStatusSocket();
  void AcceptStatus();
  void Finish();
  std::chrono::seconds ValidLifetime() const;
  // Kernel fence (config kernel_fence): installs the tables at Start; SyncFence sets the element's
  // timeout to the core's lease end whenever that moves (every renewal), RevokeFence drops it.
  absl::Status StartFence();
  void SyncFence();
  void RevokeFence();

  boost::asio::io_context& io_;
  const Clock& clock_;
  DaemonConfig config_;
  GroupConfig group_;
  std::string key_;
  uint64_t incarnation_;
  IpPrefix prefix_;
  Time started_{0};

  std::unique_ptr<Node> node_;
  std::unique_ptr<UdpTransport> transport_;
  std::unique_ptr<AddressDriver> addresses_;
  std::unique_ptr<Announcer> announcer_;
  std::unique_ptr<AsioAnnouncerDriver> announcer_driver_;
  std::unique_ptr<HealthChecker> health_;
  std::unique_ptr<NftFence> fence_;  // null when kernel_fence is off or nftables is unusable
  Time fence_end_{0};                // lease end the fence element was last set to; 0 = none
  uint64_t fence_updates_ = 0, fence_errors_ = 0;
  boost::asio::steady_timer tick_timer_;
  std::unique_ptr<boost::asio::local::stream_protocol::acceptor> status_acceptor_;

  // What this process did to the kernel, for the status and the role-change log.
  bool holding_ = false;          // the address is added here by us
  uint64_t held_epoch_ = 0;
  Time next_refresh_{0};
  NodeId last_holder_ = kNoNode;
  uint64_t last_epoch_ = 0;
  bool last_held_ = false;
  bool draining_ = false;         // Drain() called (health or shutdown)
  bool shutting_down_ = false;
  Time shutdown_deadline_{0};
  std::function<void()> shutdown_done_;
  uint64_t role_changes_ = 0;
  uint64_t adds_ = 0, removes_ = 0, refreshes_ = 0, address_errors_ = 0, announces_ = 0;
  uint64_t node_generation_ = 1;  // bumped when the Node resumes after a health-check drain
  // The core's persistent state (config state_file): what the last run stored, and a state not
  // yet written because the write failed (retried on the next pump; messages wait for it).
  std::optional<PersistentState> restored_;
  std::optional<PersistentState> pending_state_;
  uint64_t state_writes_ = 0, state_errors_ = 0;
  std::string logged_membership_;  // the membership last logged (each change is logged once)
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The client side of `baton-takeoverd status`: connects to `socket_path`, returns the JSON.
// kUnavailable if nothing listens there.
absl::StatusOr<nlohmann::json> QueryStatus(const std::string& socket_path);
// Human-readable rendering of a status document.
std::string FormatStatus(const nlohmann::json& status);

}  // namespace baton::takeover

#endif  // BATON_TAKEOVER_DAEMON_DAEMON_H_

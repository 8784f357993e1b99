// The child side of a supervised take-over agent: baton-takeoverd started by a server
// (baton-kvserver, framework/embedded_agent.h AgentSupervisor) with `--parent-fd N`, one end of a
// socketpair whose other end the server holds. The link exists so that the death of the server
// costs what a planned drain costs: the agent is a separate process, sees the server go at once
// (EOF on the socket, or silence), and hands every address over before its grants would lapse,
// instead of the address staying in the kernel until the lease and the kernel fence run out.
//
// The messages (one JSON object per line, both ways) and their version are defined once, in
// agent_link_protocol.h; this file is the agent's end of them, agent_process.h the server's.
// The link is lost -- and the agent hands over and exits -- on EOF or a read error, on a line
// that does not decode (agent_link::DecodeServerMessage: garbage, a missing field, longer than
// agent_link::kMaxLineBytes; an unknown op is logged and ignored), or when no line arrived for `watchdog` (a stopped or hung server:
// the server sends a keepalive only while its request event loop makes progress; with
// SetServerProcess, a silent server whose threads wait for a CPU is starved, not hung, and is
// given up to health_check.liveness_starved: health_check.h StarvationExcuse). A shutdown
// request keeps the link up until the agent exits, so that the hand-over can be gated.
//
// Threading: everything on the io_context's thread (the daemon's).
#ifndef BATON_TAKEOVER_DAEMON_PARENT_LINK_H_
#define BATON_TAKEOVER_DAEMON_PARENT_LINK_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include "absl/status/statusor.h"
#include "takeover/daemon/agent_link_protocol.h"
#include "takeover/daemon/daemon.h"
#include "takeover/daemon/health_check.h"

namespace baton::takeover {

// Reads the first line of the link (blocking, at most `timeout`): the agent_link::Config message.
// Returns the YAML text. kUnavailable on EOF / timeout; kFailedPrecondition if the server speaks
// another agent_link::kVersion ("agent protocol version N from the server, expected M");
// kInvalidArgument on anything else.
[[nodiscard]] absl::StatusOr<std::string> ReadParentConfig(int fd, std::chrono::milliseconds timeout);

// Why the link ended.
enum class LinkLoss {
  kServerExited,       // EOF or a read error: the server's process is ending or gone
  kServerSilent,       // no message for the watchdog period: stopped or hung, still alive
  kShutdownRequested,  // the server asked for a shutdown (it is alive)
  kMalformed,          // the server sent garbage
};

class ParentLink {
 public:
  // Takes ownership of `fd`. `on_lost(reason, loss)` is called on the io_context's thread when
  // the server asked for a shutdown (the link stays up) and when the link is lost (once each);
  // the caller then shuts the daemon down.
  using OnLost = std::function<void(const std::string& reason, LinkLoss loss)>;
  ParentLink(boost::asio::io_context& io, int fd, TakeoverDaemon& daemon,
             std::chrono::milliseconds watchdog, OnLost on_lost);
  ParentLink(const ParentLink&) = delete;
  ParentLink& operator=(const ParentLink&) = delete;

  // The server's process (call before Start): a silence of `watchdog` is then excused while the
  // server is starved of CPU (health_check.h SampleCpuWait, StarvationExcuse), up to
  // `max_silence`; a stopped server never is. Without it: silence for `watchdog` ends the link.
  void SetServerProcess(pid_t pid, std::chrono::milliseconds max_silence);
  // Starts reading and the watchdog.
  void Start();
  // Sends a slot event (install as the daemon's slot listener). Never blocks: if the server does
  // not read (stopped), the event is dropped and logged -- the watchdog ends the link soon.
  void SendSlotEvent(const SlotEvent& event);
  // Tells the server that the daemon started (it waits for this before serving as an agent).
  void SendStarted();
  // The release gate (install with TakeoverDaemon::SetReleaseGate): asks the server to close its
  // connections on the slot's address; `done` runs when it answers, or at once when the link is
  // (or gets) lost -- a dead or hung server has nothing to close.
  void SendReleasing(const SlotEvent& event, std::function<void()> done);
  // True once the link is lost (EOF, silence, garbage).
  bool lost() const { return lost_; }

 private:
  void Read();
  void ArmWatchdog();
  void WatchdogCheck();
  void Handle(const std::string& line);
  void Send(const agent_link::AgentMessage& message);
  void Lost(const std::string& why, LinkLoss loss);

  boost::asio::local::stream_protocol::socket socket_;
  TakeoverDaemon& daemon_;
  std::chrono::milliseconds watchdog_;
  OnLost on_lost_;
  boost::asio::streambuf buffer_{agent_link::kMaxLineBytes + 1};
  boost::asio::steady_timer watchdog_timer_;
  std::chrono::steady_clock::time_point last_line_;
  pid_t server_pid_ = -1;
  StarvationExcuse excuse_;
  bool starved_logged_ = false;
  bool lost_ = false;
  bool shutdown_requested_ = false;
  uint64_t next_release_id_ = 1;
  std::map<uint64_t, std::function<void()>> releasing_;  // waiting for agent_link::Closed
};

}  // namespace baton::takeover

#endif  // BATON_TAKEOVER_DAEMON_PARENT_LINK_H_

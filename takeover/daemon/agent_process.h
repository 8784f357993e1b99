// The server's end of one supervised take-over agent process: `<binary> --parent-fd 3` spawned
// with one end of a socketpair as its descriptor 3, and the link's server side on a Boost.Asio
// io_context -- the counterpart of parent_link.h, which is the agent's end of the same link. The
// messages are agent_link_protocol.h's. What to do with them, when to restart, when to kill
// (the policy) is the owner's: framework/embedded_agent.h AgentSupervisor with
// supervisor_schedule.h.
//
// One object per child:
//   - reads the link with async_read_some, splits lines (at most agent_link::kMaxLineBytes
//     each), decodes them (agent_link::DecodeAgentMessage; a line that does not decode is
//     logged and skipped, at debug level for a newer agent's unknown event) and hands each
//     message to on_message;
//   - watches the process through a pidfd (readable when it exits; Linux >= 5.3): no SIGCHLD
//     handler, which would be process-wide and steal other children's exits, and no polling;
//     reaps it with waitpid and hands the wait status to on_exit;
//   - the link ends (on_link_end, once) on EOF, a read error, a line longer than
//     kMaxLineBytes, or CloseLink().
// The two ends are independent: a child that closes its link may linger, a child that exited
// may still have lines in the socket. Each handler runs once (on_message: per message) on the
// io_context's thread; the object stays alive while an operation of its own is pending (handlers
// hold a shared_ptr), so the owner may drop it at any time.
//
// Thread safety: Send() from any thread; everything else on the io_context's thread.
#ifndef BATON_TAKEOVER_DAEMON_AGENT_PROCESS_H_
#define BATON_TAKEOVER_DAEMON_AGENT_PROCESS_H_

#include <sys/types.h>

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "takeover/daemon/agent_link_protocol.h"

namespace baton::takeover {

class AgentProcess : public std::enable_shared_from_this<AgentProcess> {
 public:
  struct Handlers {
    // Each message the agent sent, in order, while the link is open.
    std::function<void(agent_link::AgentMessage& message)> on_message;
    // The link ended (why: for the log). Once.
    std::function<void(const std::string& why)> on_link_end;
    // The process exited and was reaped (`wait_status` as waitpid's). Once.
    std::function<void(int wait_status)> on_exit;
  };

  // Spawns `binary --parent-fd 3` (posix_spawn: no fork of a multi-threaded server) with a
  // clean signal mask and SIGPIPE/SIGINT/SIGTERM/SIGHUP at their defaults (a server blocks
  // SIGINT/SIGTERM for sigwait; the child wants them). The child's end of the link is its fd 3;
  // every other descriptor of the server is close-on-exec or closed by the child. Errors:
  // socketpair/posix_spawn/pidfd_open failures as errno statuses (kUnavailable "cannot start
  // <binary>: ..." if the binary cannot be run).
  [[nodiscard]] static absl::StatusOr<std::shared_ptr<AgentProcess>> Spawn(
      boost::asio::io_context& io, const std::string& binary, Handlers handlers);
  // A child not reaped yet is SIGKILLed and reaped here (blocking, as short as a SIGKILL).
  ~AgentProcess();
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool link_open() const { return link_open_.load(); }
  bool exited() const { return reaped_; }

  // Writes one encoded line (agent_link::Encode). Never blocks: the socket buffer holds far more
  // than the few lines in flight, and a child that does not read is not waited for. False if
  // the link is closed or the write failed (logged).
  bool Send(std::string_view line);
  // Ends the link (on_link_end(why) follows, on a handler of its own).
  void CloseLink(const std::string& why);
  // SIGKILL, unless the process has been reaped (its pid may then be another process's).
  void Kill();

 private:
  AgentProcess(boost::asio::io_context& io, pid_t pid, int link_fd, int pidfd,
               Handlers handlers);
  void Begin();
  void Read();
  void WaitExit();
  void EndLink(const std::string& why);
  void Deliver(std::string_view line);

  const pid_t pid_;
  Handlers handlers_;
  // Held by Send() (any thread) and by the close of the descriptor (io thread), so that a
  // Send never writes to a descriptor number closed and reused meanwhile.
  absl::Mutex send_mu_;
  boost::asio::local::stream_protocol::socket socket_;
  boost::asio::posix::stream_descriptor exit_watch_;  // the pidfd
  std::atomic<bool> link_open_{true};
  bool link_ended_ = false;  // on_link_end called (or due)
  bool reaped_ = false;
  std::string close_reason_;
  std::array<char, 64 * 1024> chunk_;
  std::string input_;  // bytes read, not yet a whole line
};

}  // namespace baton::takeover

#endif  // BATON_TAKEOVER_DAEMON_AGENT_PROCESS_H_

// The systemd notification protocol (sd_notify(3)), spoken directly: a
// datagram to the unix socket in $NOTIFY_SOCKET. A baton server is a
// `Type=notify` service: READY=1 once its store is open and its listeners
// are up, WATCHDOG=1 from its event loop while it makes progress,
// STOPPING=1 when it begins to shut down (deploy/baton-kvserver.service).
//
// Without $NOTIFY_SOCKET (not started by systemd) every call is a no-op.
//
// Thread safety: Notify() may be called from any thread.
#ifndef BATON_FRAMEWORK_SYSTEMD_H_
#define BATON_FRAMEWORK_SYSTEMD_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace baton::framework {

class SystemdNotifier {
 public:
  // Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID. With
  // `unset_environment`, removes them so that child processes (the
  // take-over agent) do not inherit them; call before threads start.
  static SystemdNotifier FromEnvironment(bool unset_environment);
  // A notifier for a given socket path ("@name": abstract namespace), for
  // tests. `watchdog`: the interval systemd would expect (0: none).
  static SystemdNotifier ForSocket(std::string path,
                                   absl::Duration watchdog = absl::ZeroDuration());

  bool active() const { return !socket_.empty(); }
  // How often WATCHDOG=1 must arrive (systemd's WatchdogSec); zero: no
  // watchdog. Send it at half this interval.
  absl::Duration watchdog_interval() const { return watchdog_; }

  // Sends `state` ("READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=...",
  // several separated by newlines). OK when inactive. kUnavailable when
  // the datagram cannot be sent.
  [[nodiscard]] absl::Status Notify(std::string_view state) const;

 private:
  std::string socket_;
  absl::Duration watchdog_ = absl::ZeroDuration();
};

}  // namespace baton::framework

#endif  // BATON_FRAMEWORK_SYSTEMD_H_

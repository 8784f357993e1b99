#include "framework/systemd.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/errno_status.h"

namespace baton::framework {

SystemdNotifier SystemdNotifier::FromEnvironment(bool unset_environment) {
  SystemdNotifier n;
  if (const char* s = ::getenv("NOTIFY_SOCKET"); s != nullptr && s[0] != '\0') {
    n.socket_ = s;
  }
  const char* usec = ::getenv("WATCHDOG_USEC");
  const char* pid = ::getenv("WATCHDOG_PID");
  uint64_t us = 0;
  int64_t for_pid = 0;
  if (usec != nullptr && absl::SimpleAtoi(usec, &us) && us > 0 &&
      (pid == nullptr || (absl::SimpleAtoi(pid, &for_pid) &&
                          for_pid == static_cast<int64_t>(::getpid())))) {
    n.watchdog_ = absl::Microseconds(static_cast<int64_t>(us));
  }
  if (unset_environment) {
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
  }
  return n;
}

SystemdNotifier SystemdNotifier::ForSocket(std::string path,
                                           absl::Duration watchdog) {
  SystemdNotifier n;
  n.socket_ = std::move(path);
  n.watchdog_ = watchdog;
  return n;
}

absl::Status SystemdNotifier::Notify(std::string_view state) const {
  if (!active()) return absl::OkStatus();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_.size() >= sizeof(addr.sun_path) ||
      (socket_[0] != '/' && socket_[0] != '@')) {
    return absl::InvalidArgumentError(
        absl::StrCat("NOTIFY_SOCKET \"", socket_, "\" is not a socket path"));
  }
  std::memcpy(addr.sun_path, socket_.data(), socket_.size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) +
                                         socket_.size());
  if (socket_[0] == '@') addr.sun_path[0] = '\0';  // Abstract namespace.
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return baton::ErrnoToStatus(errno, "sd_notify: socket");
  }
  const ssize_t n =
      ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
               reinterpret_cast<const sockaddr*>(&addr), len);
  const int err = errno;
  ::close(fd);
  if (n < 0) return baton::ErrnoToStatus(err, absl::StrCat("sd_notify to ", socket_));
  if (static_cast<size_t>(n) != state.size()) {
    return absl::UnavailableError(absl::StrCat("sd_notify to ", socket_, ": short write"));
  }
  return absl::OkStatus();
}

}  // namespace baton::framework

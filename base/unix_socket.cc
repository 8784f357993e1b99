#include "base/unix_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "base/errno_status.h"
#include "absl/strings/str_cat.h"

namespace baton {
namespace {

absl::Status SocketError(const std::string& what, int err) {
  return baton::ErrnoToStatus(err, absl::StrCat("unix socket: ", what));
}

}  // namespace

absl::StatusOr<int> ListenUnixOwnerOnly(const std::string& path, int backlog) {
  if (path.empty()) return absl::InvalidArgumentError("unix socket: empty path");
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  std::string tmp_dir = absl::StrCat(dir == "/" ? "" : dir, "/.btkXXXXXX");
  sockaddr_un addr{};
  if (tmp_dir.size() + 2 >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unix socket: the directory of ", path, " has too long a name for a socket path"));
  }
  if (::mkdtemp(tmp_dir.data()) == nullptr) {  // mode 0700: nobody else can reach inside
    return SocketError(absl::StrCat("creating a private directory in ", dir), errno);
  }
  const std::string tmp = tmp_dir + "/s";
  std::memcpy(addr.sun_path, tmp.c_str(), tmp.size() + 1);
  addr.sun_family = AF_UNIX;
  auto fail = [&](const std::string& what, int err, int fd) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    ::rmdir(tmp_dir.c_str());
    return SocketError(what, err);
  };
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail("socket", errno, -1);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return fail(absl::StrCat("bind ", tmp), errno, fd);
  }
  if (::chmod(tmp.c_str(), 0600) != 0) return fail(absl::StrCat("chmod ", tmp), errno, fd);
  if (::listen(fd, backlog) != 0) return fail("listen", errno, fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return fail(absl::StrCat("rename to ", path), errno, fd);
  }
  ::rmdir(tmp_dir.c_str());
  return fd;
}

}  // namespace baton

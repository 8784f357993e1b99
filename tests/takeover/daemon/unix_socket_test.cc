// The status socket is owner-only from the first instant it exists under its name: it must never
// be created there with the umask's mode and chmod-ed afterwards (a window in which anyone may
// connect and send a drain request). Watched with inotify: the name may only appear by a rename
// of an already owner-only socket. No root needed.
#include "base/unix_socket.h"

#include <dirent.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace baton::takeover {
namespace {

struct Event {
  uint32_t mask;
  std::string name;
};

std::vector<Event> ReadEvents(int fd) {
  std::vector<Event> events;
  alignas(inotify_event) char buf[8192];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    for (char* p = buf; p < buf + n;) {
      auto* e = reinterpret_cast<inotify_event*>(p);
      events.push_back({e->mask, e->len > 0 ? std::string(e->name) : std::string()});
      p += sizeof(inotify_event) + e->len;
    }
  }
  return events;
}

class UnixSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/baton-unixsock-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);  // others may enter: only the socket's mode protects it
  }
  void TearDown() override {
    ::unlink((dir_ + "/status.sock").c_str());
    ::rmdir(dir_.c_str());
  }
  std::string dir_;
};

TEST_F(UnixSocketTest, AppearsOwnerOnlyByRenameNeverWithAnotherMode) {
  const mode_t old_umask = ::umask(0);  // the worst case: bind() would create it 0777
  const int in = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  ASSERT_GE(in, 0);
  ASSERT_GE(::inotify_add_watch(in, dir_.c_str(), IN_CREATE | IN_MOVED_TO | IN_ATTRIB), 0);
  const std::string path = dir_ + "/status.sock";
  absl::StatusOr<int> fd = ListenUnixOwnerOnly(path, 4);
  ::umask(old_umask);
  ASSERT_TRUE(fd.ok()) << fd.status();

  bool moved_in = false;
  for (const Event& e : ReadEvents(in)) {
    if (e.name != "status.sock") continue;
    EXPECT_FALSE(e.mask & IN_CREATE) << "the socket was created under its final name";
    EXPECT_FALSE(e.mask & IN_ATTRIB) << "the socket's mode changed under its final name";
    moved_in = moved_in || (e.mask & IN_MOVED_TO) != 0;
  }
  EXPECT_TRUE(moved_in);
  ::close(in);

  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  // Nothing left behind beside it (the private directory is gone).
  int entries = 0;
  if (DIR* d = ::opendir(dir_.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) ++entries;
    }
    ::closedir(d);
  }
  EXPECT_EQ(entries, 1);

  // It listens: the owner can connect.
  const int c = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  EXPECT_EQ(::connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << std::strerror(errno);
  ::close(c);
  ::close(*fd);
}

TEST_F(UnixSocketTest, ReplacesAStaleSocketFile) {
  const std::string path = dir_ + "/status.sock";
  absl::StatusOr<int> first = ListenUnixOwnerOnly(path, 4);
  ASSERT_TRUE(first.ok()) << first.status();
  ::close(*first);  // a dead daemon's file stays behind
  absl::StatusOr<int> second = ListenUnixOwnerOnly(path, 4);
  ASSERT_TRUE(second.ok()) << second.status();
  ::close(*second);
}

TEST_F(UnixSocketTest, TooLongOrUnwritableIsAnError) {
  EXPECT_EQ(ListenUnixOwnerOnly(dir_ + "/" + std::string(100, 'd') + "/s", 4).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(ListenUnixOwnerOnly(dir_ + "/missing/status.sock", 4).ok());
  EXPECT_EQ(ListenUnixOwnerOnly("", 4).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace baton::takeover

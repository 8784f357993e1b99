// baton-kvserver as a process: the systemd notification protocol against a
// fake NOTIFY_SOCKET (READY=1 once serving, WATCHDOG=1 while the event loop
// runs, STOPPING=1 on SIGTERM), exit codes for config mistakes, and what
// running out of file descriptors does to it (issue 13: the accept loop spun
// a core and wrote hundreds of MB of log).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/testing/spawn.h"

namespace baton::kvservice {
namespace {

class KvProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           absl::StrCat("baton-kvproc-", ::getpid(), "-",
                        ::testing::UnitTest::GetInstance()
                            ->current_test_info()
                            ->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    Kill();
    std::filesystem::remove_all(dir_);
  }
  std::string Path(const std::string& name) const {
    return (dir_ / name).string();
  }
  // Starts the server with `args` (after the binary), `env` added.
  void Start(std::vector<std::string> args,
             std::vector<std::string> env = {}, std::string prefix = "") {
    std::vector<std::string> argv;
    if (!prefix.empty()) {
      for (auto p : absl::StrSplit(prefix, ' ')) argv.emplace_back(p);
    }
    if (!env.empty()) {
      argv.insert(argv.begin(), "/usr/bin/env");
      argv.insert(argv.begin() + 1, env.begin(), env.end());
    }
    argv.push_back(BATON_KVSERVER_PATH);
    argv.insert(argv.end(), args.begin(), args.end());
    ASSERT_EQ(baton::testing::SpawnWithLog(argv, Path("log"), &pid_), 0);
  }
  // The exit code, waiting at most `within`; -1 if it still runs.
  int Wait(std::chrono::milliseconds within) {
    const auto end = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < end) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  std::string Log() const {
    std::ifstream f(Path("log"));
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  std::vector<std::string> Ready(std::chrono::milliseconds within) {
    const auto end = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < end) {
      std::ifstream f(Path("ready"));
      std::vector<std::string> lines;
      for (std::string l; std::getline(f, l);) lines.push_back(l);
      if (lines.size() == 3) return lines;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return {};
  }
  // CPU seconds the server used so far (utime + stime).
  double CpuSeconds() const {
    std::ifstream f(absl::StrCat("/proc/", pid_, "/stat"));
    std::string s(std::istreambuf_iterator<char>(f), {});
    const size_t paren = s.rfind(')');
    std::vector<std::string> fields = absl::StrSplit(s.substr(paren + 2), ' ');
    return (std::stod(fields[11]) + std::stod(fields[12])) /
           static_cast<double>(::sysconf(_SC_CLK_TCK));
  }

  std::filesystem::path dir_;
  pid_t pid_ = -1;
};

// A unix datagram socket standing in for systemd's notification socket.
class FakeNotifySocket {
 public:
  explicit FakeNotifySocket(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path_.c_str(), sizeof(a.sun_path) - 1);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    timeval tv{0, 100000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~FakeNotifySocket() { ::close(fd_); }
  // The next datagram within `within`, or "".
  std::string Next(std::chrono::milliseconds within) {
    const auto end = std::chrono::steady_clock::now() + within;
    char buf[4096];
    while (std::chrono::steady_clock::now() < end) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) return std::string(buf, static_cast<size_t>(n));
    }
    return "";
  }
  // Collects datagrams until one contains `what`; all of them in *seen.
  bool WaitFor(const std::string& what, std::chrono::milliseconds within,
               std::vector<std::string>* seen) {
    const auto end = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < end) {
      std::string m = Next(std::chrono::milliseconds(100));
      if (m.empty()) continue;
      seen->push_back(m);
      if (m.find(what) != std::string::npos) return true;
    }
    return false;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

TEST_F(KvProcessTest, SpeaksTheSystemdNotifyProtocol) {
  FakeNotifySocket notify(Path("notify.sock"));
  Start({"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
         "--data-dir", Path("data"), "--ready-file", Path("ready")},
        {"NOTIFY_SOCKET=" + Path("notify.sock"), "WATCHDOG_USEC=400000"});
  std::vector<std::string> seen;
  ASSERT_TRUE(notify.WaitFor("READY=1", std::chrono::seconds(20), &seen))
      << Log();
  // READY comes only once the listeners are up: the ready file exists.
  EXPECT_EQ(Ready(std::chrono::milliseconds(10)).size(), 3u);
  // The watchdog is fed (at least every 200 ms for a 400 ms WatchdogSec).
  seen.clear();
  int pings = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < end) {
    pings += notify.Next(std::chrono::milliseconds(100)) == "WATCHDOG=1";
  }
  EXPECT_GE(pings, 5);
  ::kill(pid_, SIGTERM);
  ASSERT_TRUE(notify.WaitFor("STOPPING=1", std::chrono::seconds(10), &seen))
      << Log();
  EXPECT_EQ(Wait(std::chrono::seconds(10)), 0) << Log();
}

// SIGHUP re-reads credentials (TLS files, admin token) and the server keeps
// serving; without the handler SIGHUP's default action would end it.
TEST_F(KvProcessTest, SighupReloadsAndKeepsServing) {
  Start({"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
         "--data-dir", Path("data"), "--ready-file", Path("ready")});
  ASSERT_EQ(Ready(std::chrono::seconds(20)).size(), 3u) << Log();
  ::kill(pid_, SIGHUP);
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (Log().find("SIGHUP") == std::string::npos &&
         std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_NE(Log().find("SIGHUP: TLS certificates and admin token re-read"),
            std::string::npos)
      << Log();
  EXPECT_EQ(Wait(std::chrono::milliseconds(300)), -1) << "it exited: " << Log();
  ::kill(pid_, SIGTERM);
  EXPECT_EQ(Wait(std::chrono::seconds(10)), 0) << Log();
}

TEST_F(KvProcessTest, ConfigMistakesExitTwoAndRuntimeFailuresOne) {
  struct Case {
    std::string yaml, mentions;
  } cases[] = {
      {"http:\n  max_header_bytes: 4294967296\n", "http.max_header_bytes"},
      {"http:\n  io_threads: 100000000\n", "http.io_threads"},
      {"bogus: 1\n", "bogus"},
      {"http:\n  tls: {cert_file: /nonexistent.pem, key_file: /x.key}\n",
       "/nonexistent.pem"},
  };
  for (const Case& c : cases) {
    std::ofstream(Path("bad.yaml"), std::ios::trunc) << c.yaml;
    Start({"--config", Path("bad.yaml"), "--listen", "127.0.0.1:0",
           "--data-dir", Path("data")});
    EXPECT_EQ(Wait(std::chrono::seconds(10)), 2) << c.yaml << Log();
    EXPECT_NE(Log().find(c.mentions), std::string::npos) << c.yaml << Log();
    std::filesystem::remove(Path("log"));
  }
  Start({"--io-threads", "100000000", "--data-dir", Path("data")});
  EXPECT_EQ(Wait(std::chrono::seconds(10)), 2) << Log();
  // --check-config: exit 0 for a good config, nothing started.
  std::ofstream(Path("good.yaml"), std::ios::trunc) << "http:\n  io_threads: 2\n";
  Start({"--config", Path("good.yaml"), "--check-config", "--data-dir",
         Path("unused")});
  EXPECT_EQ(Wait(std::chrono::seconds(10)), 0) << Log();
  EXPECT_FALSE(std::filesystem::exists(Path("unused")));
  // A port in use is a runtime failure: exit 1 naming it.
  Start({"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
         "--data-dir", Path("data"), "--ready-file", Path("ready")});
  std::vector<std::string> ready = Ready(std::chrono::seconds(20));
  ASSERT_EQ(ready.size(), 3u) << Log();
  const pid_t first = pid_;
  pid_ = -1;
  std::filesystem::remove(Path("log"));
  Start({"--listen", ready[0], "--admin-listen", "127.0.0.1:0", "--data-dir",
         Path("data2")});
  EXPECT_EQ(Wait(std::chrono::seconds(10)), 1) << Log();
  EXPECT_NE(Log().find(ready[0]), std::string::npos) << Log();
  pid_ = first;
}

// Issue 13: at the descriptor limit the accept loop spun a core and logged
// "accept failed: Too many open files" millions of times. With 150
// descriptors and 200 held connections the server now refuses what it
// cannot take, stays idle, logs a few lines, and serves again afterwards.
TEST_F(KvProcessTest, RunningOutOfDescriptorsNeitherSpinsNorFloodsTheLog) {
  Start({"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
         "--grpc-listen", "off", "--data-dir", Path("data"), "--ready-file",
         Path("ready")},
        {}, "/usr/bin/prlimit --nofile=150:150");
  std::vector<std::string> ready = Ready(std::chrono::seconds(20));
  ASSERT_EQ(ready.size(), 3u) << Log();
  const size_t colon = ready[0].rfind(':');
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::stoi(ready[0].substr(colon + 1))));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<int> held;
  for (int i = 0; i < 200; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      continue;
    }
    held.push_back(fd);
  }
  const double cpu_before = CpuSeconds();
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const double cpu_used = CpuSeconds() - cpu_before;
  EXPECT_LT(cpu_used, 0.5) << "the server burned " << cpu_used
                           << " s of CPU in 3 s while at its limit";
  const std::string log = Log();
  size_t lines = std::count(log.begin(), log.end(), '\n');
  EXPECT_LT(lines, 100u) << log.substr(0, 4000);
  EXPECT_LT(log.size(), 64u * 1024);
  for (int fd : held) ::close(fd);
  // It serves again.
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      const std::string req = "GET /kv/x HTTP/1.1\r\nHost: t\r\n\r\n";
      (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
      char buf[64] = {};
      timeval tv{1, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
      served = n > 12 && std::string(buf).find("404") != std::string::npos;
    }
    ::close(fd);
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(served) << Log();
}

}  // namespace
}  // namespace baton::kvservice

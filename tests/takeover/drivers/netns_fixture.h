// Network namespaces for the drivers' real-kernel tests. Each test creates
// its own namespaces (named "btdrv-<pid>-<n>", so concurrent runs never
// clash), enters one on the calling thread with setns(), and deletes them by
// name in the destructor — also when an assertion fails. Namespaces left by a
// test process that crashed are deleted on the next run (their pid is dead).
#ifndef BATON_TESTS_TAKEOVER_DRIVERS_NETNS_FIXTURE_H_
#define BATON_TESTS_TAKEOVER_DRIVERS_NETNS_FIXTURE_H_

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>

namespace baton::takeover::testing {

struct CmdResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs a fixed shell command (no user input reaches it) and captures output.
inline CmdResult Sh(const std::string& cmd) {
  CmdResult r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Deletes "btdrv-<pid>-*" namespaces whose creating process is gone.
inline void SweepStaleNamespaces() {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/run/netns", ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind("btdrv-", 0) != 0) continue;
    size_t dash = name.find('-', 6);
    if (dash == std::string::npos) continue;
    pid_t pid = static_cast<pid_t>(std::atoi(name.substr(6, dash - 6).c_str()));
    if (pid <= 0 || pid == ::getpid() || ::kill(pid, 0) == 0) continue;
    Sh("ip netns del " + name);
  }
}

// One namespace, deleted with the object.
class ScopedNetns {
 public:
  ScopedNetns() {
    static int counter = 0;
    name_ = "btdrv-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
    CmdResult r = Sh("ip netns add " + name_);
    ok_ = r.exit_code == 0;
    error_ = r.output;
    if (ok_) Sh("ip -n " + name_ + " link set lo up");
  }
  ~ScopedNetns() {
    if (ok_) Sh("ip netns del " + name_);
  }
  ScopedNetns(const ScopedNetns&) = delete;
  ScopedNetns& operator=(const ScopedNetns&) = delete;

  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  const std::string& name() const { return name_; }
  // "ip -n <name> <args>"
  CmdResult Ip(const std::string& args) const { return Sh("ip -n " + name_ + " " + args); }

 private:
  std::string name_;
  bool ok_ = false;
  std::string error_;
};

// Moves the calling thread into `ns` until destruction. Sockets opened
// meanwhile stay in `ns` afterwards.
class EnterNetns {
 public:
  explicit EnterNetns(const ScopedNetns& ns) {
    saved_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    int fd = ::open(("/run/netns/" + ns.name()).c_str(), O_RDONLY | O_CLOEXEC);
    ok_ = saved_ >= 0 && fd >= 0 && ::setns(fd, CLONE_NEWNET) == 0;
    if (fd >= 0) ::close(fd);
  }
  ~EnterNetns() {
    if (saved_ >= 0) {
      if (::setns(saved_, CLONE_NEWNET) != 0) std::abort();  // never run on in the wrong netns
      ::close(saved_);
    }
  }
  EnterNetns(const EnterNetns&) = delete;
  EnterNetns& operator=(const EnterNetns&) = delete;
  bool ok() const { return ok_; }

 private:
  int saved_ = -1;
  bool ok_ = false;
};

}  // namespace baton::takeover::testing

#endif  // BATON_TESTS_TAKEOVER_DRIVERS_NETNS_FIXTURE_H_

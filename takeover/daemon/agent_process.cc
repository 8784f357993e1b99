#include "takeover/daemon/agent_process.h"

#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/errno_status.h"
#include "base/strings.h"
#include "spdlog/spdlog.h"

extern char** environ;

namespace baton::takeover {

absl::StatusOr<std::shared_ptr<AgentProcess>> AgentProcess::Spawn(boost::asio::io_context& io,
                                                                  const std::string& binary,
                                                                  Handlers handlers) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return baton::ErrnoToStatus(errno, "socketpair");
  }
  // The child's end becomes its fd 3 (dup2 clears close-on-exec); the child closes every other
  // descriptor it inherited.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, sv[1], 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, deflt;
  sigemptyset(&none);
  sigemptyset(&deflt);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP}) sigaddset(&deflt, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &deflt);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<std::string> args = {binary, "--parent-fd", "3"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc =
      ::posix_spawn(&pid, binary.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(sv[1]);
  if (rc != 0) {
    ::close(sv[0]);
    return baton::ErrnoToStatus(rc, absl::StrCat("cannot start ", binary));
  }
  // Not reaped yet, so `pid` is still this child's.
  // (glibc 2.36's <sys/pidfd.h> declares pidfd_open without C linkage for C++.)
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    const int err = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    ::close(sv[0]);
    return baton::ErrnoToStatus(err, "pidfd_open (Linux >= 5.3)");
  }
  std::shared_ptr<AgentProcess> p(
      new AgentProcess(io, pid, sv[0], pidfd, std::move(handlers)));
  p->Begin();
  return p;
}

AgentProcess::AgentProcess(boost::asio::io_context& io, pid_t pid, int link_fd, int pidfd,
                           Handlers handlers)
    : pid_(pid),
      handlers_(std::move(handlers)),
      socket_(io, boost::asio::local::stream_protocol(), link_fd),
      exit_watch_(io, pidfd) {}

AgentProcess::~AgentProcess() {
  if (!reaped_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

void AgentProcess::Begin() {
  Read();
  WaitExit();
}

void AgentProcess::Read() {
  socket_.async_read_some(
      boost::asio::buffer(chunk_),
      [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
        if (self->link_ended_) return;
        if (!self->link_open_) {  // CloseLink() while the read was pending
          self->EndLink(self->close_reason_);
          return;
        }
        if (ec) {
          self->EndLink(ec == boost::asio::error::eof ? std::string("the agent process closed the link")
                                                      : "link read error: " + ec.message());
          return;
        }
        self->input_.append(self->chunk_.data(), n);
        size_t begin = 0;
        while (self->link_open_) {
          const size_t nl = self->input_.find('\n', begin);
          if (nl == std::string::npos) break;
          self->Deliver(std::string_view(self->input_).substr(begin, nl - begin));
          begin = nl + 1;
        }
        self->input_.erase(0, begin);
        if (!self->link_open_) {  // CloseLink() from a handler
          self->EndLink(self->close_reason_);
          return;
        }
        if (self->input_.size() > agent_link::kMaxLineBytes) {
          self->EndLink(absl::StrCat("a line from the agent process longer than ",
                                     agent_link::kMaxLineBytes, " bytes"));
          return;
        }
        self->Read();
      });
}

void AgentProcess::Deliver(std::string_view line) {
  absl::StatusOr<agent_link::AgentMessage> m = agent_link::DecodeAgentMessage(line);
  if (!m.ok()) {
    // An unknown event is a newer agent's; anything else is a broken one.
    spdlog::log(m.status().code() == absl::StatusCode::kUnimplemented ? spdlog::level::debug
                                                                      : spdlog::level::warn,
                "take-over agent: line from the agent process ignored: {}",
                m.status().message());
    return;
  }
  if (handlers_.on_message) handlers_.on_message(*m);
}

void AgentProcess::WaitExit() {
  exit_watch_.async_wait(
      boost::asio::posix::descriptor_base::wait_read,
      [self = shared_from_this()](const boost::system::error_code& ec) {
        if (ec) return;  // the io_context is going away
        int status = 0;
        const pid_t w = ::waitpid(self->pid_, &status, WNOHANG);
        if (w == 0) {  // readable before the exit is waitable: not expected, wait again
          self->WaitExit();
          return;
        }
        if (w < 0) {
          spdlog::warn("take-over agent process {}: waitpid: {}", self->pid_,
                       std::strerror(errno));
        }
        self->reaped_ = true;
        boost::system::error_code ignored;
        self->exit_watch_.close(ignored);
        if (self->handlers_.on_exit) self->handlers_.on_exit(status);
      });
}

bool AgentProcess::Send(std::string_view line) {
  absl::MutexLock lock(&send_mu_);
  if (!link_open_) return false;
  const int fd = socket_.native_handle();
  size_t off = 0;
  while (off < line.size()) {
    const ssize_t n =
        ::send(fd, line.data() + off, line.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      spdlog::warn("take-over agent: cannot write to the agent process: {}",
                   std::strerror(errno));
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

void AgentProcess::CloseLink(const std::string& why) {
  if (!link_open_) return;
  close_reason_ = why;
  {
    absl::MutexLock lock(&send_mu_);
    link_open_ = false;
    boost::system::error_code ignored;
    socket_.close(ignored);
  }
  // A pending read completes (operation_aborted) and ends the link; called from on_message, no
  // read is pending and the read handler that runs it ends the link when on_message returns.
}

void AgentProcess::EndLink(const std::string& why) {
  if (link_ended_) return;
  link_ended_ = true;
  {
    absl::MutexLock lock(&send_mu_);
    link_open_ = false;
    boost::system::error_code ignored;
    socket_.close(ignored);
  }
  input_.clear();
  if (handlers_.on_link_end) handlers_.on_link_end(why);
}

void AgentProcess::Kill() {
  if (!reaped_) ::kill(pid_, SIGKILL);
}

}  // namespace baton::takeover

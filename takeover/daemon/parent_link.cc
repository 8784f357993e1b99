#include "takeover/daemon/parent_link.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <istream>
#include <utility>
#include <variant>

#include <boost/asio/read_until.hpp>

#include "absl/strings/str_cat.h"
#include "base/strings.h"
#include "spdlog/spdlog.h"

namespace baton::takeover {

absl::StatusOr<std::string> ReadParentConfig(int fd, std::chrono::milliseconds timeout) {
  std::string line;
  int left_ms = static_cast<int>(timeout.count());
  // Byte by byte: nothing after the first newline may be consumed here, the asio reader takes
  // over the descriptor afterwards. The config line is read once, a few kB.
  while (true) {
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, left_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return absl::UnavailableError("no config from the parent");
    char c = 0;
    const ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::UnavailableError("the parent closed the link before the config");
    if (c == '\n') break;
    line.push_back(c);
    if (line.size() > agent_link::kMaxLineBytes) {
      return absl::InvalidArgumentError("config line too long");
    }
  }
  absl::StatusOr<agent_link::ServerMessage> m = agent_link::DecodeServerMessage(line);
  const agent_link::Config* config = m.ok() ? std::get_if<agent_link::Config>(&*m) : nullptr;
  if (config == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the first line from the parent is not its config message",
        m.ok() ? "" : absl::StrCat(": ", m.status().message())));
  }
  if (absl::Status s = agent_link::CheckVersion(config->version, "the server"); !s.ok()) {
    return s;
  }
  return std::move(config->yaml);
}

ParentLink::ParentLink(boost::asio::io_context& io, int fd, TakeoverDaemon& daemon,
                       std::chrono::milliseconds watchdog, OnLost on_lost)
    : socket_(io, boost::asio::local::stream_protocol(), fd),
      daemon_(daemon),
      watchdog_(watchdog),
      on_lost_(std::move(on_lost)),
      watchdog_timer_(io),
      excuse_(watchdog, watchdog) {}

void ParentLink::SetServerProcess(pid_t pid, std::chrono::milliseconds max_silence) {
  server_pid_ = pid;
  excuse_ = StarvationExcuse(watchdog_, max_silence);
}

void ParentLink::Start() {
  ArmWatchdog();
  Read();
}

void ParentLink::ArmWatchdog() {
  last_line_ = std::chrono::steady_clock::now();
  excuse_.Progress();
  starved_logged_ = false;
  // The first look at half the period: the start of the window in which a starved server's CPU
  // wait is measured (no cost while lines arrive: the timer is re-armed by each).
  watchdog_timer_.expires_after(server_pid_ > 0 ? watchdog_ / 2 : watchdog_);
  watchdog_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || lost_) return;  // re-armed (a line arrived) or lost already
    WatchdogCheck();
  });
}

void ParentLink::WatchdogCheck() {
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  const std::chrono::nanoseconds silence = std::chrono::steady_clock::now() - last_line_;
  bool excused = silence < watchdog_;
  if (server_pid_ > 0) {
    std::optional<CpuWaitSample> sample;
    if (absl::StatusOr<CpuWaitSample> w = SampleCpuWait(server_pid_); w.ok()) sample = *w;
    excused = excuse_.Excused(silence, sample);
  }
  if (!excused) {
    Lost(absl::StrCat("no message from the server for ", duration_cast<milliseconds>(silence).count(),
                      " ms (stopped or hung)"),
         LinkLoss::kServerSilent);
    return;
  }
  if (silence >= watchdog_ && !starved_logged_) {
    starved_logged_ = true;
    spdlog::info("no message from the server for {} ms, but it waits for a CPU (starved, not hung): "
                 "keeping the addresses while it does", duration_cast<milliseconds>(silence).count());
  }
  // Next look: at the period, then every sixth of it (the keepalive interval).
  const std::chrono::nanoseconds next =
      silence < watchdog_ ? std::chrono::nanoseconds(watchdog_) - silence
                          : std::chrono::nanoseconds(watchdog_) / 6;
  watchdog_timer_.expires_after(next);
  watchdog_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || lost_) return;
    WatchdogCheck();
  });
}

void ParentLink::Read() {
  boost::asio::async_read_until(
      socket_, buffer_, '\n', [this](const boost::system::error_code& ec, size_t) {
        if (lost_) return;
        if (ec == boost::asio::error::not_found) {  // buffer_ full, no newline
          Lost(absl::StrCat("a line from the server longer than ", agent_link::kMaxLineBytes,
                            " bytes"),
               LinkLoss::kMalformed);
          return;
        }
        if (ec) {
          Lost(ec == boost::asio::error::eof ? std::string("the server closed the link (exited)")
                                             : "link read error: " + ec.message(),
               LinkLoss::kServerExited);
          return;
        }
        std::istream in(&buffer_);
        std::string line;
        std::getline(in, line);
        ArmWatchdog();  // cancels the pending wait
        Handle(line);
        if (!lost_) Read();
      });
}

void ParentLink::Handle(const std::string& line) {
  absl::StatusOr<agent_link::ServerMessage> m = agent_link::DecodeServerMessage(line);
  if (m.status().code() == absl::StatusCode::kUnimplemented) {
    spdlog::warn("parent link: {}: ignored", m.status().message());
    return;
  }
  if (!m.ok()) {
    Lost(absl::StrCat("malformed line from the server (", m.status().message(), ")"),
         LinkLoss::kMalformed);
    return;
  }
  std::visit(
      agent_link::Overloaded{
          [](const agent_link::Config&) {
            spdlog::warn("parent link: a second config message: ignored");
          },
          [this](const agent_link::Health& h) { daemon_.SetHealthy(h.healthy); },
          [this](const agent_link::Drain& d) {
            daemon_.DrainSlot(d.slot.value_or(TakeoverDaemon::kAllSlots), d.drain);
          },
          [this](const agent_link::StatusRequest& r) {
            daemon_.GetStatusAsync([this, id = r.id](nlohmann::json status) {
              if (lost_) return;
              Send(agent_link::StatusReply{id, std::move(status)});
            });
          },
          [this](const agent_link::Shutdown&) {
            // The link stays up: the hand-over may ask the server to close connections first.
            if (!shutdown_requested_ && on_lost_) {
              shutdown_requested_ = true;
              on_lost_("the server asked for a shutdown", LinkLoss::kShutdownRequested);
            }
          },
          [this](const agent_link::Closed& c) {
            if (auto it = releasing_.find(c.id); it != releasing_.end()) {
              std::function<void()> done = std::move(it->second);
              releasing_.erase(it);
              done();
            }
          },
      },
      *m);
}

void ParentLink::SendSlotEvent(const SlotEvent& e) {
  if (lost_) return;
  Send(agent_link::SlotChange{e.slot, e.address, e.held, e.epoch});
}

void ParentLink::SendReleasing(const SlotEvent& e, std::function<void()> done) {
  if (lost_) {
    done();
    return;
  }
  const uint64_t id = next_release_id_++;
  releasing_.emplace(id, std::move(done));
  Send(agent_link::Releasing{id, e.slot, e.address, e.epoch});
}

void ParentLink::SendStarted() {
  if (!lost_) Send(agent_link::Started{});
}

void ParentLink::Send(const agent_link::AgentMessage& message) {
  const std::string line = agent_link::Encode(message);
  size_t off = 0;
  while (off < line.size()) {
    const ssize_t n = ::send(socket_.native_handle(), line.data() + off, line.size() - off,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      // EAGAIN: the server does not read (stopped); EPIPE: it is gone. The watchdog or the
      // reader ends the link; a half-written line would be garbage, so stop the link now.
      const int err = errno;
      spdlog::warn("parent link: cannot send to the server: {}", std::strerror(err));
      if (off > 0 || err != EAGAIN) {
        Lost("cannot send to the server",
             err == EAGAIN ? LinkLoss::kServerSilent : LinkLoss::kServerExited);
      }
      return;
    }
    off += static_cast<size_t>(n);
  }
}

void ParentLink::Lost(const std::string& why, LinkLoss loss) {
  if (lost_) return;
  lost_ = true;
  watchdog_timer_.cancel();
  boost::system::error_code ignored;
  socket_.shutdown(boost::asio::local::stream_protocol::socket::shutdown_send, ignored);
  // Nobody will answer a pending release gate now.
  std::map<uint64_t, std::function<void()>> pending;
  pending.swap(releasing_);
  for (auto& [id, done] : pending) done();
  if (on_lost_) on_lost_(why, loss);
}

}  // namespace baton::takeover

#include "takeover/daemon/status_socket.h"

#include <sys/stat.h>
#include <unistd.h>

#include <istream>
#include <memory>
#include <sstream>
#include <utility>
#include <variant>

#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include "absl/strings/str_cat.h"
#include "base/strings.h"
#include "base/unix_socket.h"
#include "takeover/daemon/daemon.h"
#include "takeover/daemon/status_protocol.h"

namespace baton::takeover {

// --- Server: the daemon's end ---------------------------------------------------------------

absl::Status TakeoverDaemon::StartStatusSocket() {
  const std::string& path = config_.status_socket;
  if (path.empty()) return absl::OkStatus();  // the embedder serves the status (GetStatusAsync)
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat("status socket path ", path, " exists and is not a socket"));
    }
    if (QueryStatus(path).ok()) {
      return absl::FailedPreconditionError(absl::StrCat("another daemon answers on ", path));
    }
    ::unlink(path.c_str());
  }
  // Owner-only from the first instant (the socket accepts drain requests): base/unix_socket.h.
  absl::StatusOr<int> fd = ::baton::ListenUnixOwnerOnly(path, 8);
  if (!fd.ok()) {
    return absl::Status(fd.status().code(), absl::StrCat("status socket: ", fd.status().message()));
  }
  boost::system::error_code ec;
  auto acceptor = std::make_unique<boost::asio::local::stream_protocol::acceptor>(io_);
  acceptor->assign(boost::asio::local::stream_protocol(), *fd, ec);
  if (ec) {
    ::close(*fd);
    return absl::UnavailableError(absl::StrCat("status socket ", path, ": ", ec.message()));
  }
  status_acceptor_ = std::move(acceptor);
  AcceptStatus();
  return absl::OkStatus();
}

namespace {
constexpr size_t kMaxRequest = status_protocol::kMaxRequestBytes;  // one request line
// How long a status-socket client may stay silent before it gets the status (no request line).
constexpr std::chrono::milliseconds kRequestWait(200);
}  // namespace

void TakeoverDaemon::AcceptStatus() {
  status_acceptor_->async_accept(
      [this, alive = alive_](const boost::system::error_code& ec,
                             boost::asio::local::stream_protocol::socket socket) {
        if (!*alive || ec == boost::asio::error::operation_aborted) return;
        if (!ec) {
          // The client sends one request line, then reads the answer until EOF. A client that
          // sends nothing (shuts its side down, or stays silent for kRequestWait, like the
          // status client before drain requests existed, or `nc -U`) gets the status.
          auto sock = std::make_shared<boost::asio::local::stream_protocol::socket>(std::move(socket));
          auto in = std::make_shared<boost::asio::streambuf>(kMaxRequest);
          auto wait = std::make_shared<boost::asio::steady_timer>(io_, kRequestWait);
          auto timed_out = std::make_shared<bool>(false);
          wait->async_wait([sock, timed_out](const boost::system::error_code& wec) {
            if (wec) return;  // the request arrived first
            *timed_out = true;
            boost::system::error_code ignored;
            sock->cancel(ignored);
          });
          boost::asio::async_read_until(
              *sock, *in, '\n',
              [this, alive, sock, in, wait, timed_out](const boost::system::error_code& rec, size_t) {
                wait->cancel();
                if (!*alive) return;
                const bool silent = *timed_out && rec == boost::asio::error::operation_aborted;
                const bool readable = !rec || rec == boost::asio::error::eof || silent;
                std::string line;
                if (readable && !silent) {
                  std::istream is(in.get());
                  std::getline(is, line);
                }
                auto text = std::make_shared<std::string>(
                    (readable ? HandleRequest(line)
                              : status_protocol::ErrorReply("request too long or unreadable"))
                        .dump() +
                    "\n");
                boost::asio::async_write(*sock, boost::asio::buffer(*text),
                                         [sock, text](const boost::system::error_code&, size_t) {
                                           boost::system::error_code ignored;
                                           sock->close(ignored);
                                         });
              });
        }
        AcceptStatus();
      });
}

nlohmann::json TakeoverDaemon::HandleRequest(const std::string& line) {
  absl::StatusOr<status_protocol::Request> req = status_protocol::DecodeRequest(line);
  if (!req.ok()) return status_protocol::ErrorReply(SV(req.status().message()));
  const auto* drain = std::get_if<status_protocol::DrainRequest>(&*req);
  if (drain == nullptr) return StatusJson();
  uint32_t slot = kAllSlots;
  if (drain->slot) {
    if (*drain->slot >= slots_.size()) {
      return status_protocol::ErrorReply(absl::StrCat("slot out of range (", slots_.size(),
                                                      " slots: 0..", slots_.size() - 1, ")"));
    }
    slot = *drain->slot;
  }
  ApplyDrain(slot, !drain->undo);
  nlohmann::json j = StatusJson();
  j["ok"] = true;
  return j;
}

// --- Client: `baton-takeoverd status` and `drain` ------------------------------------------

namespace {

// One request/answer exchange on the status socket.
absl::StatusOr<nlohmann::json> Exchange(const std::string& socket_path, const std::string& request) {
  boost::asio::io_context io;
  boost::asio::local::stream_protocol::socket sock(io);
  boost::system::error_code ec;
  sock.connect(boost::asio::local::stream_protocol::endpoint(socket_path), ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot connect to ", socket_path, ": ", ec.message()));
  boost::asio::write(sock, boost::asio::buffer(request + "\n"), ec);
  if (ec) return absl::UnavailableError(absl::StrCat("writing ", socket_path, ": ", ec.message()));
  std::string text;
  char buf[4096];
  // Bounded: one read past kMaxReplyBytes is enough for DecodeReply to refuse it.
  while (text.size() <= status_protocol::kMaxReplyBytes) {
    size_t n = sock.read_some(boost::asio::buffer(buf), ec);
    text.append(buf, n);
    if (ec) break;
  }
  if (ec != boost::asio::error::eof && ec) {
    return absl::UnavailableError(absl::StrCat("reading ", socket_path, ": ", ec.message()));
  }
  return status_protocol::DecodeReply(text);
}

}  // namespace

absl::StatusOr<nlohmann::json> QueryStatus(const std::string& socket_path) {
  return Exchange(socket_path, status_protocol::Encode(status_protocol::StatusRequest{}));
}

absl::StatusOr<nlohmann::json> RequestDrain(const std::string& socket_path,
                                            std::optional<uint32_t> slot, bool undo) {
  status_protocol::DrainRequest req;
  req.slot = slot;
  req.undo = undo;
  absl::StatusOr<nlohmann::json> j = Exchange(socket_path, status_protocol::Encode(req));
  if (!j.ok()) return j;
  if (!j->value("ok", false)) return absl::InvalidArgumentError("daemon refused: no \"ok\"");
  return j;
}

std::string FormatStatus(const nlohmann::json& j) {
  std::ostringstream o;
  auto id = [](const nlohmann::json& v) { return v.is_null() ? std::string("none") : v.dump(); };
  o << "node " << j.value("node_id", 0) << ": " << j.value("role", "?") << ", capacity "
    << j.value("capacity_used", 0) << "/" << j.value("capacity", 0) << " used, healthy "
    << (j.value("healthy", true) ? "yes" : "no") << ", draining "
    << (j.value("draining", false) ? "yes" : "no") << ", start-up quiet "
    << (j.value("quiet", false) ? "yes" : "no") << "\n";
  o << "addresses on " << j.value("interface", "") << ":\n";
  for (const auto& s : j.value("slots", nlohmann::json::array())) {
    o << "  slot " << s.value("slot", 0) << "  " << s.value("address", "") << "  holder "
      << id(s.value("holder", nlohmann::json())) << "  epoch " << s.value("epoch", 0);
    if (s.value("held_by_me", false)) {
      o << "  HELD HERE (lease remaining " << s.value("lease_remaining_ms", 0.0) << " ms)";
    }
    o << "  assigned " << id(s.value("assigned", nlohmann::json()));
    if (s.value("shed", false)) o << "  SHED";
    if (s.value("drained", false)) o << "  DRAINED";
    o << "\n";
  }
  if (j.contains("counters")) {
    const auto& c = j["counters"];
    o << "counters: takeovers " << c.value("takeovers", 0) << ", releases " << c.value("releases", 0)
      << ", sheds " << c.value("sheds", 0) << ", drains " << c.value("drains", 0) << "\n";
  }
  if (j.contains("membership")) {
    o << "membership: version " << j["membership"].value("version", 0) << ", members "
      << j["membership"].value("members", nlohmann::json::array()).dump() << ", view "
      << j.value("view", nlohmann::json::array()).dump() << "\n";
  }
  o << "peers:\n";
  for (const auto& p : j.value("peers", nlohmann::json::array())) {
    o << "  " << p.value("id", 0) << "  priority " << p.value("priority", 0) << "  capacity "
      << p.value("capacity", 1) << "  " << p.value("address", "")
      << (p.value("self", false) ? "  (self)" : "")
      << (p.value("in_view", false) ? "  in view" : "  NOT in view") << "\n";
  }
  if (j.contains("transport")) {
    const auto& t = j["transport"];
    o << "transport: sent " << t.value("sent", 0) << ", delivered " << t.value("delivered", 0)
      << ", dropped " << t.value("dropped_total", 0);
    for (const auto& [k, v] : t["dropped"].items()) {
      if (v.get<uint64_t>() != 0) o << " (" << k << " " << v.get<uint64_t>() << ")";
    }
    o << "\n";
  }
  return o.str();
}

}  // namespace baton::takeover

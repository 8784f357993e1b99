#include "framework/admin/admin_server.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>
#include <type_traits>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "base/unix_socket.h"
#include "framework/absl_compat.h"
#include "framework/json.h"
#include "spdlog/spdlog.h"

namespace baton::framework {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using local = net::local::stream_protocol;
using internal::AV;
using internal::SV;

AdminResponse AdminResponse::Error(int status, std::string_view code,
                                   std::string_view message) {
  nlohmann::json j = {
      {"error", {{"status", status}, {"code", code}, {"message", message}}}};
  return Json(status, DumpJson(j));
}

absl::Status AdminRouter::Add(std::string_view method, std::string_view path,
                              AdminHandler handler, AdminAccess access) {
  if (method.empty() || path.empty() || path[0] != '/' || !handler) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad admin route ", AV(method), " ", AV(path)));
  }
  for (const Route& r : routes_) {
    if (r.method == method && r.path == path) {
      return absl::AlreadyExistsError(absl::StrCat(
          "admin route ", AV(method), " ", AV(path), " added twice"));
    }
  }
  routes_.push_back(
      Route{std::string(method), std::string(path), std::move(handler), access});
  return absl::OkStatus();
}

namespace {

constexpr size_t kMaxHeaderBytes = 8 * 1024;
constexpr size_t kMaxBodyBytes = 64 * 1024;
constexpr size_t kMaxConnections = 64;
constexpr auto kTimeout = std::chrono::seconds(10);

bool DecodePercent(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out->push_back(' ');
    } else if (in[i] != '%') {
      out->push_back(in[i]);
    } else {
      int v = 0;
      if (i + 2 >= in.size() ||
          !absl::SimpleHexAtoi(AV(in.substr(i + 1, 2)), &v)) {
        return false;
      }
      out->push_back(static_cast<char>(v));
      i += 2;
    }
  }
  return true;
}

// Reads and checks a token file (see AdminServerOptions::token_file).
absl::StatusOr<std::string> ReadToken(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "admin token_file \"", path, "\": ", std::strerror(errno)));
  }
  if ((st.st_mode & 077) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "admin token_file \"", path,
        "\" is readable by group or others (chmod 600 ", path, ")"));
  }
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string token(absl::StripAsciiWhitespace(ss.str()));
  if (!f || token.size() < 16 || token.size() > 4096) {
    return absl::InvalidArgumentError(absl::StrCat(
        "admin token_file \"", path,
        "\" must hold a token of 16 to 4096 characters"));
  }
  return token;
}

bool IsLoopbackOrLocalHost(std::string_view host) {
  // Host header: "127.0.0.1:8081", "[::1]:8081", "localhost:8081", an IP.
  std::string h(host);
  if (!h.empty() && h.front() == '[') {
    const size_t end = h.find(']');
    if (end == std::string::npos) return false;
    h = h.substr(1, end - 1);
  } else if (std::count(h.begin(), h.end(), ':') == 1) {
    h = h.substr(0, h.find(':'));
  }
  if (absl::AsciiStrToLower(h) == "localhost") return true;
  beast::error_code ec;
  net::ip::make_address(h, ec);
  return !ec;  // Any IP literal: a rebinding attack needs a name.
}

class AdminServerImpl;

template <class Protocol>
class AdminSession
    : public std::enable_shared_from_this<AdminSession<Protocol>> {
 public:
  using Socket = typename Protocol::socket;
  AdminSession(Socket socket, AdminServerImpl* server)
      : stream_(std::move(socket)), server_(server) {}
  ~AdminSession();
  void Run() { Read(); }

 private:
  void Read() {
    parser_.emplace();
    parser_->header_limit(kMaxHeaderBytes);
    parser_->body_limit(kMaxBodyBytes);
    stream_.expires_after(kTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&AdminSession::OnRead,
                                               this->shared_from_this()));
  }
  void OnRead(beast::error_code ec, size_t);
  void Send(AdminResponse r, bool keep_alive);
  void OnWrite(beast::error_code ec, size_t) {
    if (ec || res_.need_eof()) return Close();
    Read();
  }
  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(Socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

  beast::basic_stream<Protocol> stream_;
  AdminServerImpl* server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
};

class AdminServerImpl : public AdminServer {
 public:
  AdminServerImpl(AdminServerOptions options, AdminRouter router)
      : options_(std::move(options)),
        router_(std::move(router)),
        tcp_acceptor_(ioc_),
        local_acceptor_(ioc_),
        workers_(2) {}
  ~AdminServerImpl() override { Stop(); }

  absl::Status Start() {
    if (!options_.token_file.empty()) {
      absl::StatusOr<std::string> t = ReadToken(options_.token_file);
      if (!t.ok()) return t.status();
      absl::MutexLock lock(&mu_);
      token_ = *std::move(t);
    }
    const std::string& listen = options_.listen;
    if (listen.rfind("unix:", 0) == 0) {
      unix_path_ = listen.substr(5);
      if (absl::Status s = ListenUnix(); !s.ok()) return s;
      AcceptLocal();
    } else {
      if (absl::Status s = ListenTcp(); !s.ok()) return s;
      AcceptTcp();
    }
    thread_ = std::thread([this] { ioc_.run(); });
    return absl::OkStatus();
  }

  std::string address() const override { return address_; }

  absl::Status ReloadToken() override {
    if (options_.token_file.empty()) return absl::OkStatus();
    absl::StatusOr<std::string> t = ReadToken(options_.token_file);
    if (!t.ok()) return t.status();
    absl::MutexLock lock(&mu_);
    token_ = *std::move(t);
    return absl::OkStatus();
  }

  void Stop() override {
    if (stopped_.exchange(true)) return;
    net::post(ioc_, [this] {
      beast::error_code ec;
      tcp_acceptor_.close(ec);
      local_acceptor_.close(ec);
    });
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
    workers_.join();
    // Only a socket this server bound: a failed start must not remove a
    // live server's.
    if (owns_socket_) ::unlink(unix_path_.c_str());
  }

  bool is_tcp() const { return unix_path_.empty(); }
  net::thread_pool& workers() { return workers_; }
  std::atomic<size_t>& connections() { return connections_; }

  // The response to a complete request (on a worker thread).
  AdminResponse Handle(const http::request<http::string_body>& req) {
    if (req.count(http::field::origin) > 0) {
      return AdminResponse::Error(
          403, "forbidden",
          "requests from web pages (with an Origin header) are refused");
    }
    if (is_tcp() && !IsLoopbackOrLocalHost(SV(absl::string_view(
                        req[http::field::host].data(),
                        req[http::field::host].size())))) {
      return AdminResponse::Error(
          403, "forbidden", "Host must be an IP address or localhost");
    }
    const std::string_view target(req.target().data(), req.target().size());
    const size_t q = target.find('?');
    AdminRequest r;
    r.method = std::string(req.method_string());
    r.path = std::string(target.substr(0, q));
    if (q != std::string_view::npos) {
      for (absl::string_view kv :
           absl::StrSplit(AV(target.substr(q + 1)), '&', absl::SkipEmpty())) {
        const size_t eq = kv.find('=');
        std::string k, v;
        if (!DecodePercent(SV(kv.substr(0, eq)), &k) ||
            !DecodePercent(eq == absl::string_view::npos
                               ? std::string_view()
                               : SV(kv.substr(eq + 1)),
                           &v)) {
          return AdminResponse::Error(400, "bad_request",
                                      "malformed query string");
        }
        r.query[k] = v;
      }
    }
    r.body = req.body();
    const AdminRouter::Route* found = nullptr;
    std::vector<std::string> allowed;
    for (const AdminRouter::Route& route : router_.routes()) {
      if (route.path != r.path) continue;
      if (route.method == r.method) {
        found = &route;
        break;
      }
      allowed.push_back(route.method);
    }
    if (found == nullptr) {
      if (!allowed.empty()) {
        return AdminResponse::Error(405, "method_not_allowed",
                                    absl::StrCat(r.method, " is not allowed on ",
                                                 r.path));
      }
      return AdminResponse::Error(404, "not_found",
                                  absl::StrCat("no admin route ", r.path));
    }
    if (found->access == AdminAccess::kToken && !Authorized(req)) {
      return AdminResponse::Error(401, "unauthenticated",
                                  "a valid `Authorization: Bearer` token is "
                                  "required");
    }
    return found->handler(r);
  }

 private:
  bool Authorized(const http::request<http::string_body>& req) {
    std::string token;
    {
      absl::MutexLock lock(&mu_);
      token = token_;
    }
    if (token.empty()) return true;
    const auto auth = req[http::field::authorization];
    const std::string_view v(auth.data(), auth.size());
    constexpr std::string_view kBearer = "Bearer ";
    if (v.size() != kBearer.size() + token.size() ||
        !absl::EqualsIgnoreCase(AV(v.substr(0, kBearer.size())),
                                AV(kBearer))) {
      return false;
    }
    return CRYPTO_memcmp(v.data() + kBearer.size(), token.data(),
                         token.size()) == 0;
  }

  absl::Status ListenTcp() {
    const std::string& listen = options_.listen;
    const size_t colon = listen.rfind(':');
    uint32_t port = 0;
    if (colon == std::string::npos ||
        !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(
          "admin listen must be host:port or unix:/path, got \"", listen,
          "\""));
    }
    std::string host = listen.substr(0, colon);
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    if (host.empty()) host = "127.0.0.1";
    beast::error_code ec;
    net::ip::address addr = net::ip::make_address(host, ec);
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat("admin listen: bad address \"", host, "\""));
    }
    if (!addr.is_loopback() && options_.token_file.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "admin listen ", listen,
          " is not a loopback address: set admin.token_file (or listen on "
          "127.0.0.1 or a unix socket)"));
    }
    tcp::endpoint ep(addr, static_cast<uint16_t>(port));
    tcp_acceptor_.open(ep.protocol(), ec);
    if (!ec) tcp_acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) tcp_acceptor_.bind(ep, ec);
    if (!ec) tcp_acceptor_.listen(16, ec);
    if (ec) {
      return absl::UnavailableError(absl::StrCat(
          "cannot listen on ", listen, " for the admin plane: ", ec.message()));
    }
    const tcp::endpoint bound = tcp_acceptor_.local_endpoint();
    address_ = addr.is_v6()
                   ? absl::StrCat("[", addr.to_string(), "]:", bound.port())
                   : absl::StrCat(addr.to_string(), ":", bound.port());
    return absl::OkStatus();
  }

  // A live server's socket is never taken over; a stale one is replaced.
  absl::Status ListenUnix() {
    if (unix_path_.empty() || unix_path_.size() >= sizeof(sockaddr_un{}.sun_path)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "admin listen unix socket path must be 1..",
          sizeof(sockaddr_un{}.sun_path) - 1, " bytes"));
    }
    struct stat st {};
    if (::lstat(unix_path_.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "admin socket path ", unix_path_, " exists and is not a socket"));
      }
      local::socket probe(ioc_);
      beast::error_code ec;
      probe.connect(local::endpoint(unix_path_), ec);
      if (!ec) {
        return absl::UnavailableError(absl::StrCat(
            "admin socket ", unix_path_, " is in use by a running server"));
      }
      ::unlink(unix_path_.c_str());  // Stale: its server is gone.
    }
    // Owner-only from its first instant (base/unix_socket.h).
    absl::StatusOr<int> fd = ListenUnixOwnerOnly(unix_path_, 16);
    if (!fd.ok()) {
      return absl::Status(fd.status().code(),
                          absl::StrCat("admin socket ", unix_path_, ": ",
                                       fd.status().message()));
    }
    beast::error_code ec;
    local_acceptor_.assign(local(), *fd, ec);
    if (ec) {
      ::close(*fd);
      ::unlink(unix_path_.c_str());
      return absl::UnavailableError(absl::StrCat(
          "cannot listen on unix socket ", unix_path_, ": ", ec.message()));
    }
    address_ = "unix:" + unix_path_;
    owns_socket_ = true;
    return absl::OkStatus();
  }

  template <class Protocol, class Acceptor>
  void AcceptOn(Acceptor& acceptor) {
    acceptor.async_accept(
        net::make_strand(ioc_),
        [this, &acceptor](beast::error_code ec,
                          typename Protocol::socket socket) {
          if (ec) {
            if (ec == net::error::operation_aborted || !acceptor.is_open()) {
              return;
            }
            // Out of descriptors and the like: pause instead of spinning.
            auto timer = std::make_shared<net::steady_timer>(ioc_);
            timer->expires_after(std::chrono::milliseconds(100));
            timer->async_wait([this, &acceptor, timer](beast::error_code) {
              if (acceptor.is_open()) AcceptOn<Protocol>(acceptor);
            });
            return;
          }
          if (connections_.load() >= kMaxConnections) {
            beast::error_code ignored;
            socket.close(ignored);
          } else {
            connections_.fetch_add(1);
            std::make_shared<AdminSession<Protocol>>(std::move(socket), this)
                ->Run();
          }
          AcceptOn<Protocol>(acceptor);
        });
  }
  void AcceptTcp() { AcceptOn<tcp>(tcp_acceptor_); }
  void AcceptLocal() { AcceptOn<local>(local_acceptor_); }

  const AdminServerOptions options_;
  const AdminRouter router_;
  // Before ioc_: sessions destroyed with its queued handlers count down here.
  std::atomic<size_t> connections_{0};
  net::io_context ioc_;
  tcp::acceptor tcp_acceptor_;
  local::acceptor local_acceptor_;
  net::thread_pool workers_;
  std::thread thread_;
  std::string address_;
  std::string unix_path_;
  bool owns_socket_ = false;
  std::atomic<bool> stopped_{false};
  absl::Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
};

template <class Protocol>
AdminSession<Protocol>::~AdminSession() {
  server_->connections().fetch_sub(1);
}

template <class Protocol>
void AdminSession<Protocol>::OnRead(beast::error_code ec, size_t) {
  if (ec) {
    if (ec == http::error::header_limit || ec == http::error::body_limit) {
      return Send(AdminResponse::Error(413, "too_large", "request too large"),
                  false);
    }
    if (ec.category() ==
        http::make_error_code(http::error::end_of_stream).category() &&
        ec != http::error::end_of_stream) {
      return Send(AdminResponse::Error(400, "bad_request", ec.message()),
                  false);
    }
    return Close();
  }
  stream_.expires_never();
  auto req = std::make_shared<http::request<http::string_body>>(
      parser_->release());
  net::post(server_->workers(), [self = this->shared_from_this(), req] {
    AdminResponse r = self->server_->Handle(*req);
    const bool keep_alive = req->keep_alive();
    net::post(self->stream_.get_executor(),
              [self, r = std::move(r), keep_alive]() mutable {
                self->Send(std::move(r), keep_alive);
              });
  });
}

template <class Protocol>
void AdminSession<Protocol>::Send(AdminResponse r, bool keep_alive) {
  res_ = {};
  res_.version(11);
  res_.result(static_cast<unsigned>(r.status));
  res_.set(http::field::server, "baton-admin");
  res_.set(http::field::content_type, r.content_type);
  res_.set(http::field::cache_control, "no-store");
  if (r.status == 401) res_.set(http::field::www_authenticate, "Bearer");
  res_.body() = std::move(r.body);
  res_.keep_alive(keep_alive);
  res_.prepare_payload();
  stream_.expires_after(kTimeout);
  http::async_write(stream_, res_,
                    beast::bind_front_handler(&AdminSession::OnWrite,
                                              this->shared_from_this()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<AdminServer>> StartAdminServer(
    const AdminServerOptions& options, AdminRouter router) {
  auto server = std::make_unique<AdminServerImpl>(options, std::move(router));
  if (absl::Status s = server->Start(); !s.ok()) return s;
  return server;
}

}  // namespace baton::framework

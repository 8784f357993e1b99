#include "takeover/daemon/metrics_server.h"

#include <set>
#include <utility>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace baton::takeover {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using asio::ip::tcp;

constexpr size_t kMaxHeaderBytes = 8192;

class Server;

// One connection: read one request, answer it, close.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Server& server, std::shared_ptr<bool> server_alive,
          std::chrono::milliseconds timeout)
      : socket_(std::move(socket)),
        server_(server),
        server_alive_(std::move(server_alive)),
        timer_(socket_.get_executor()) {
    timer_.expires_after(timeout);
    parser_.header_limit(kMaxHeaderBytes);
    parser_.body_limit(0);
  }
  void Start();
  void Close() {
    boost::system::error_code ec;
    timer_.cancel(ec);
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

 private:
  void Answer();
  // Closes and leaves the server's set (if the server still exists).
  void Finish();

  tcp::socket socket_;
  Server& server_;
  const std::shared_ptr<bool> server_alive_;
  asio::steady_timer timer_;
  boost::beast::flat_buffer buffer_{kMaxHeaderBytes};
  http::request_parser<http::empty_body> parser_;
  http::response<http::string_body> response_;
};

class Server final : public MetricsServer {
 public:
  Server(asio::io_context& io, MetricsServerOptions options, Render render)
      : acceptor_(io), options_(std::move(options)), render_(std::move(render)) {}
  ~Server() override { Close(); }

  absl::Status Init() {
    boost::system::error_code ec;
    asio::ip::address addr = asio::ip::make_address(options_.host, ec);
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat("metrics: '", options_.host, "' is not a numeric IPv4/IPv6 address"));
    }
    tcp::endpoint ep(addr, options_.port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(static_cast<int>(options_.max_connections), ec);
    if (ec) {
      return absl::UnavailableError(absl::StrCat("metrics: listen on ", options_.host, " port ",
                                                 options_.port, ": ", ec.message()));
    }
    port_ = acceptor_.local_endpoint(ec).port();
    Accept();
    return absl::OkStatus();
  }

  uint16_t port() const override { return port_; }
  void Close() override {
    *alive_ = false;
    boost::system::error_code ec;
    acceptor_.close(ec);
    for (const auto& s : sessions_) s->Close();
    sessions_.clear();
  }

  std::string Body() { return render_(); }
  void Done(const std::shared_ptr<Session>& s) { sessions_.erase(s); }

 private:
  void Accept() {
    acceptor_.async_accept([this, alive = alive_](const boost::system::error_code& ec, tcp::socket socket) {
      if (!*alive || ec == asio::error::operation_aborted) return;
      if (!ec) {
        if (sessions_.size() >= options_.max_connections) {
          boost::system::error_code ignored;
          socket.close(ignored);  // over the cap: refused at once
        } else {
          auto s = std::make_shared<Session>(std::move(socket), *this, alive_, options_.timeout);
          sessions_.insert(s);
          s->Start();
        }
      } else {
        spdlog::debug("metrics: accept: {}", ec.message());
      }
      Accept();
    });
  }

  tcp::acceptor acceptor_;
  const MetricsServerOptions options_;
  const MetricsServer::Render render_;
  uint16_t port_ = 0;
  std::set<std::shared_ptr<Session>> sessions_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

void Session::Start() {
  auto self = shared_from_this();
  timer_.async_wait([self](const boost::system::error_code& ec) {
    if (!ec) self->Finish();
  });
  http::async_read(socket_, buffer_, parser_,
                   [self](const boost::system::error_code& ec, size_t) {
                     if (ec || !*self->server_alive_) {
                       self->Finish();
                       return;
                     }
                     self->Answer();
                   });
}

void Session::Finish() {
  Close();
  if (*server_alive_) server_.Done(shared_from_this());
}

void Session::Answer() {
  const auto& req = parser_.get();
  response_.version(11);
  response_.keep_alive(false);
  response_.set(http::field::server, "baton-takeoverd");
  if (req.method() != http::verb::get) {
    response_.result(http::status::method_not_allowed);
    response_.set(http::field::allow, "GET");
    response_.set(http::field::content_type, "text/plain");
    response_.body() = "only GET\n";
  } else if (req.target() != "/metrics" && req.target().substr(0, 9) != "/metrics?") {
    response_.result(http::status::not_found);
    response_.set(http::field::content_type, "text/plain");
    response_.body() = "not found (GET /metrics)\n";
  } else {
    response_.result(http::status::ok);
    response_.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    response_.body() = server_.Body();
  }
  response_.prepare_payload();
  auto self = shared_from_this();
  http::async_write(socket_, response_,
                    [self](const boost::system::error_code&, size_t) { self->Finish(); });
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Create(asio::io_context& io,
                                                                     const MetricsServerOptions& options,
                                                                     Render render) {
  if (options.max_connections == 0) {
    return absl::InvalidArgumentError("metrics: max_connections must be > 0");
  }
  auto s = std::make_unique<Server>(io, options, std::move(render));
  if (absl::Status st = s->Init(); !st.ok()) return st;
  return std::unique_ptr<MetricsServer>(std::move(s));
}

}  // namespace baton::takeover

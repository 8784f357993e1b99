#include "framework/http_server.h"

#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <cctype>
#include <chrono>
#include <exception>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl.hpp"
#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "framework/absl_compat.h"
#include "framework/request_builder.h"
#include "framework/internal/tls_context.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace baton::framework {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

using internal::AV;
using internal::SV;

using HttpRequest = http::request<http::string_body>;
using HttpResponse = http::response<http::string_body>;

namespace {

std::chrono::steady_clock::duration ToChrono(absl::Duration d) {
  return absl::ToChronoNanoseconds(d);
}

bool DecodePercent(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size() || !std::isxdigit(static_cast<unsigned char>(in[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      return false;
    }
    int v = 0;
    (void)absl::SimpleHexAtoi(AV(in.substr(i + 1, 2)), &v);
    out->push_back(static_cast<char>(v));
    i += 2;
  }
  return true;
}

std::vector<std::string_view> SplitPath(std::string_view path) {
  path.remove_prefix(1);  // Leading '/'.
  std::vector<std::string_view> out;
  for (absl::string_view p : absl::StrSplit(AV(path), '/')) out.push_back(SV(p));
  return out;
}

std::string LowerSnake(absl::StatusCode code) {
  return absl::AsciiStrToLower(absl::StatusCodeToString(code));
}

std::shared_ptr<HttpResponse> ErrorResponse(int status, std::string_view code,
                                            std::string_view message,
                                            unsigned version, bool keep_alive) {
  auto res = std::make_shared<HttpResponse>();
  res->version(version);
  res->result(static_cast<unsigned>(status));
  res->set(http::field::server, "baton");
  res->set(http::field::content_type, "application/json");
  nlohmann::json j = {{"error",
                       {{"status", status},
                        {"code", code},
                        {"message", message}}}};
  res->body() = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  res->keep_alive(keep_alive);
  res->prepare_payload();
  return res;
}

}  // namespace

// --- Router -----------------------------------------------------------------

absl::Status Router::Add(std::string_view method, std::string_view pattern,
                         std::shared_ptr<Handler> handler) {
  if (method.empty() || pattern.empty() || pattern[0] != '/' || !handler) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad route ", AV(method), " ", AV(pattern)));
  }
  Route r;
  r.method = std::string(method);
  r.pattern = std::string(pattern);
  for (std::string_view seg : SplitPath(pattern)) {
    if (seg.size() >= 2 && seg.front() == '{' && seg.back() != '}') {
      return absl::InvalidArgumentError(absl::StrCat("bad segment ", AV(seg)));
    }
    r.segments.emplace_back(seg);
  }
  for (const Route& o : routes_) {
    if (o.method == r.method && o.pattern == r.pattern) {
      return absl::AlreadyExistsError(
          absl::StrCat("route ", AV(method), " ", AV(pattern), " added twice"));
    }
  }
  r.handler = std::move(handler);
  routes_.push_back(std::move(r));
  return absl::OkStatus();
}

Router::Match Router::Find(std::string_view method,
                           std::string_view path) const {
  Match m;
  if (path.empty() || path[0] != '/') return m;
  std::vector<std::string_view> segs = SplitPath(path);
  for (const Route& r : routes_) {
    if (r.segments.size() != segs.size()) continue;
    std::map<std::string, std::string, std::less<>> params;
    bool ok = true;
    for (size_t i = 0; i < segs.size() && ok; ++i) {
      const std::string& p = r.segments[i];
      if (p.size() >= 2 && p.front() == '{' && p.back() == '}') {
        std::string decoded;
        ok = !segs[i].empty() && DecodePercent(segs[i], &decoded);
        if (ok) params[p.substr(1, p.size() - 2)] = std::move(decoded);
      } else {
        ok = p == segs[i];
      }
    }
    if (!ok) continue;
    if (r.method != method) {
      m.allowed_methods.push_back(r.method);
      continue;
    }
    m.result = Match::Result::kFound;
    m.handler = r.handler.get();
    m.pattern = r.pattern;
    m.params = std::move(params);
    return m;
  }
  if (!m.allowed_methods.empty()) m.result = Match::Result::kWrongMethod;
  return m;
}

// --- Helpers ------------------------------------------------------------------

int HttpStatusForCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument: return 400;
    case absl::StatusCode::kOutOfRange: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kAlreadyExists: return 409;
    case absl::StatusCode::kAborted: return 409;
    case absl::StatusCode::kFailedPrecondition: return 412;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kUnimplemented: return 501;
    case absl::StatusCode::kUnavailable: return 503;
    case absl::StatusCode::kDeadlineExceeded: return 504;
    default: return 500;
  }
}


namespace {

// --- The server ---------------------------------------------------------------

class ServerImpl;

// What the server needs of a connection, whatever its stream.
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // Closes the connection if it waits for a request, else asks for
  // `Connection: close` on its reply. Call on the session's strand.
  virtual void CloseWhenIdle() = 0;
  const std::string& local_address() const { return local_address_; }

 protected:
  std::string local_address_;  // Set once, before registration.
};

// Logs a message at most once per period, with how many were suppressed.
class LogLimiter {
 public:
  explicit LogLimiter(std::chrono::steady_clock::duration period)
      : period_(period) {}
  // True when the caller should log now; *suppressed is how many calls
  // since the last true did not log.
  bool Allow(uint64_t* suppressed) {
    absl::MutexLock lock(&mu_);
    const auto now = std::chrono::steady_clock::now();
    if (logged_ && now - last_ < period_) {
      ++suppressed_;
      return false;
    }
    logged_ = true;
    last_ = now;
    *suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }

 private:
  const std::chrono::steady_clock::duration period_;
  absl::Mutex mu_;
  bool logged_ ABSL_GUARDED_BY(mu_) = false;
  std::chrono::steady_clock::time_point last_ ABSL_GUARDED_BY(mu_);
  uint64_t suppressed_ ABSL_GUARDED_BY(mu_) = 0;
};

// True for a Transfer-Encoding the server can frame: exactly one coding,
// `chunked` (RFC 9112 6.1: any other final coding leaves a request's body
// length unknown).
bool AcceptableTransferEncoding(const HttpRequest& req) {
  if (req.count(http::field::transfer_encoding) == 0) return true;
  if (req.count(http::field::transfer_encoding) > 1) return false;
  if (req.count(http::field::content_length) > 0) return false;
  std::string_view v(req[http::field::transfer_encoding].data(),
                     req[http::field::transfer_encoding].size());
  return absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(AV(v)), "chunked");
}

template <class Stream>
class Session : public SessionBase,
                public std::enable_shared_from_this<Session<Stream>> {
 public:
  template <class... Args>
  explicit Session(ServerImpl* server, Args&&... args)
      : stream_(std::forward<Args>(args)...), server_(server) {}
  ~Session() override;

  void Run();
  void CloseWhenIdle() override;

 private:
  void OnHandshake(beast::error_code ec);
  void ReadHeader();
  void OnHeader(beast::error_code ec, size_t);
  void ReadBody();
  void OnBody(beast::error_code ec, size_t);
  void OnReadError(beast::error_code ec);
  void Dispatch();
  void Write(std::shared_ptr<HttpResponse> res, bool dispatched = false);
  void OnWrite(beast::error_code ec, size_t);
  void Close();
  auto& lowest() { return beast::get_lowest_layer(stream_); }

  Stream stream_;
  ServerImpl* server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<HttpResponse> res_;
  std::string principal_;  // TLS client certificate subject.
  bool dispatched_ = false;
  bool reading_header_ = false;   // Idle: waiting for a request.
  bool close_after_reply_ = false;
  bool registered_ = false;
  std::chrono::steady_clock::time_point started_;
};

class ServerImpl : public HttpServer {
 public:
  ServerImpl(const HttpServerOptions& options, Router router,
             RequestPipeline& pipeline)
      : options_(options),
        router_(std::move(router)),
        pipeline_(pipeline),
        acceptor_(ioc_),
        backoff_timer_(ioc_),
        inline_(options.handler_threads ==
                    HttpServerOptions::HandlerThreads::kIoThreads ||
                (options.handler_threads ==
                     HttpServerOptions::HandlerThreads::kAuto &&
                 pipeline.ExecutesInline())) {
    if (!inline_) workers_.emplace(std::max(1, options.worker_threads));
  }
  ~ServerImpl() override { Stop(); }

  absl::Status Listen() {
    if (options_.tls.enabled()) {
      absl::StatusOr<std::shared_ptr<net::ssl::context>> ctx =
          internal::MakeServerTlsContext(options_.tls);
      if (!ctx.ok()) return ctx.status();
      absl::MutexLock lock(&tls_mu_);
      tls_ = *std::move(ctx);
    }
    beast::error_code ec;
    net::ip::address addr = net::ip::make_address(options_.address, ec);
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad listen address \"", options_.address, "\""));
    }
    tcp::endpoint ep(addr, options_.port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return absl::UnavailableError(absl::StrCat(
          "cannot listen on ", options_.address, ":", options_.port, ": ",
          ec.message()));
    }
    port_ = acceptor_.local_endpoint().port();
    cap_ = options_.max_connections;
    struct rlimit rl {};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
      const size_t limit = static_cast<size_t>(rl.rlim_cur);
      const size_t usable =
          limit > 2 * kReservedDescriptors ? limit - kReservedDescriptors
                                           : limit / 2;
      if (usable < cap_) {
        spdlog::info(
            "http {}:{}: at most {} connections (descriptor limit {}, {} "
            "kept free)",
            options_.address, port_, usable, limit, limit - usable);
        cap_ = usable;
      }
    }
    Accept();
    for (int i = 0; i < std::max(1, options_.io_threads); ++i) {
      io_threads_.emplace_back([this] { ioc_.run(); });
    }
    return absl::OkStatus();
  }

  uint16_t port() const override { return port_; }

  HttpServerStats Stats() const override {
    HttpServerStats s;
    {
      absl::MutexLock lock(&sessions_mu_);
      s.connections_open = sessions_.size();
    }
    s.connections_accepted = accepted_.load(std::memory_order_relaxed);
    s.connections_refused = refused_.load(std::memory_order_relaxed);
    s.accept_errors = accept_errors_.load(std::memory_order_relaxed);
    s.tls_handshake_failures = tls_failures_.load(std::memory_order_relaxed);
    s.bad_requests = bad_requests_.load(std::memory_order_relaxed);
    s.connection_cap = cap_;
    return s;
  }

  absl::Status ReloadTls() override {
    if (!options_.tls.enabled()) {
      return absl::FailedPreconditionError("this listener has no TLS");
    }
    absl::StatusOr<std::shared_ptr<net::ssl::context>> ctx =
        internal::MakeServerTlsContext(options_.tls);
    if (!ctx.ok()) return ctx.status();
    absl::MutexLock lock(&tls_mu_);
    tls_ = *std::move(ctx);
    return absl::OkStatus();
  }

  size_t CloseConnections(std::string_view local_address) override {
    std::vector<std::shared_ptr<SessionBase>> matched;
    {
      absl::MutexLock lock(&sessions_mu_);
      for (const auto& [raw, weak] : sessions_) {
        if (raw->local_address() != local_address) continue;
        if (std::shared_ptr<SessionBase> s = weak.lock()) {
          matched.push_back(std::move(s));
        }
      }
    }
    for (std::shared_ptr<SessionBase>& s : matched) s->CloseWhenIdle();
    return matched.size();
  }

  bool Probe(absl::Duration timeout) override {
    if (stopped_.load()) return false;
    auto done = std::make_shared<absl::Notification>();
    net::post(ioc_, [done] { done->Notify(); });
    return done->WaitForNotificationWithTimeout(timeout);
  }

  void Stop() override {
    if (stopped_.exchange(true)) return;
    net::post(acceptor_.get_executor(), [this] {
      beast::error_code ec;
      acceptor_.close(ec);
      backoff_timer_.cancel();
    });
    // Drain: requests already executing finish and their responses are
    // sent; connections that send another request are closed (Dispatch).
    if (workers_) workers_->join();
    // Asynchronous executions always call back (the store answers every
    // commit, also when it closes); their callbacks use the event loop, so
    // they must all have run before it goes.
    while (executing_.load() > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    for (int64_t ms = absl::ToInt64Milliseconds(options_.drain_timeout);
         responding_.load() > 0 && ms > 0; --ms) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ioc_.stop();
    for (std::thread& t : io_threads_) t.join();
    io_threads_.clear();
  }

  const HttpServerOptions& options() const { return options_; }
  bool runs_inline() const { return inline_; }
  net::thread_pool& workers() { return *workers_; }
  // Asynchronous executions whose callback has not finished.
  std::atomic<int64_t>& executing() { return executing_; }
  bool stopping() const { return stopped_.load(); }
  // Requests dispatched whose response is not yet written.
  std::atomic<int64_t>& responding() { return responding_; }
  void CountTlsFailure() { tls_failures_.fetch_add(1); }
  void CountBadRequest() { bad_requests_.fetch_add(1); }

  void Register(SessionBase* raw, std::weak_ptr<SessionBase> weak) {
    absl::MutexLock lock(&sessions_mu_);
    sessions_.emplace(raw, std::move(weak));
  }
  void Unregister(SessionBase* raw) {
    absl::MutexLock lock(&sessions_mu_);
    sessions_.erase(raw);
  }

  std::shared_ptr<HttpResponse> Handle(HttpRequest& req,
                                       const std::string& local_address,
                                       const std::string& principal,
                                       std::chrono::steady_clock::time_point started);

  // Handle() on the pipeline's asynchronous path: `done` gets the response,
  // on this thread or on the store's commit thread.
  void HandleAsync(
      HttpRequest& req, const std::string& local_address,
      const std::string& principal,
      std::chrono::steady_clock::time_point started,
      absl::AnyInvocable<void(std::shared_ptr<HttpResponse>)> done);

  // Reports a request answered outside the pipeline (routing, framing and
  // id errors) to the observer.
  void Observe(std::string_view operation, const HttpResponse& res,
               std::chrono::steady_clock::time_point started,
               bool replayed = false);

 private:
  void Accept() {
    acceptor_.async_accept(
        net::make_strand(ioc_),
        [this](beast::error_code ec, tcp::socket socket) {
          if (ec) {
            if (ec == net::error::operation_aborted || !acceptor_.is_open()) {
              return;
            }
            return BackOff(ec);
          }
          accept_backoff_ = std::chrono::milliseconds(0);
          accepted_.fetch_add(1, std::memory_order_relaxed);
          if (OpenConnections() >= cap_) {
            Refuse(std::move(socket));
          } else {
            beast::error_code ignored;
            socket.set_option(tcp::no_delay(true), ignored);
            StartSession(std::move(socket));
          }
          Accept();
        });
  }

  void StartSession(tcp::socket socket) {
    if (options_.tls.enabled()) {
      std::shared_ptr<net::ssl::context> ctx;
      {
        absl::MutexLock lock(&tls_mu_);
        ctx = tls_;
      }
      using TlsStream = beast::ssl_stream<beast::tcp_stream>;
      auto session = std::make_shared<Session<TlsStream>>(
          this, beast::tcp_stream(std::move(socket)), *ctx);
      // The SSL object keeps its own reference to the SSL_CTX, so a reload
      // that replaces tls_ does not affect this connection.
      session->Run();
      return;
    }
    std::make_shared<Session<beast::tcp_stream>>(
        this, beast::tcp_stream(std::move(socket)))
        ->Run();
  }

  size_t OpenConnections() const {
    absl::MutexLock lock(&sessions_mu_);
    return sessions_.size();
  }

  // Over the cap: a short 503 written without waiting (the socket buffer of
  // a new connection has room), then the connection is closed.
  void Refuse(tcp::socket socket) {
    refused_.fetch_add(1, std::memory_order_relaxed);
    static const std::string* const kBusy = [] {
      const std::string body =
          "{\"error\":{\"status\":503,\"code\":\"too_many_connections\","
          "\"message\":\"connection limit reached\"}}";
      return new std::string(absl::StrCat(
          "HTTP/1.1 503 Service Unavailable\r\n"
          "Content-Type: application/json\r\nRetry-After: 1\r\n"
          "Connection: close\r\nContent-Length: ",
          body.size(), "\r\n\r\n", body));
    }();
    (void)::send(socket.native_handle(), kBusy->data(), kBusy->size(),
                 MSG_DONTWAIT | MSG_NOSIGNAL);
    beast::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    uint64_t suppressed = 0;
    if (refuse_log_.Allow(&suppressed)) {
      spdlog::warn(
          "http {}:{}: connection limit {} reached; refusing connections "
          "({} more refusals not logged)",
          options_.address, port_, cap_, suppressed);
    }
  }

  // accept() failed: wait before the next one. Running out of descriptors
  // or memory does not go away by retrying at once (the old acceptor spun a
  // core and logged millions of lines); other errors get a short pause.
  void BackOff(beast::error_code ec) {
    accept_errors_.fetch_add(1, std::memory_order_relaxed);
    const int e = ec.value();
    const bool resources = ec.category() == net::error::get_system_category() &&
                           (e == EMFILE || e == ENFILE || e == ENOBUFS ||
                            e == ENOMEM);
    if (resources) {
      accept_backoff_ = std::clamp(accept_backoff_ * 2,
                                   std::chrono::milliseconds(10),
                                   std::chrono::milliseconds(1000));
    } else {
      accept_backoff_ = std::chrono::milliseconds(10);
    }
    uint64_t suppressed = 0;
    if (accept_log_.Allow(&suppressed)) {
      spdlog::warn(
          "http {}:{}: accept failed: {}; retrying in {} ms ({} more "
          "failures not logged)",
          options_.address, port_, ec.message(), accept_backoff_.count(),
          suppressed);
    }
    backoff_timer_.expires_after(accept_backoff_);
    backoff_timer_.async_wait([this](beast::error_code wec) {
      if (wec || !acceptor_.is_open()) return;
      Accept();
    });
  }


  // A request routed and identified, ready for the pipeline.
  struct Prepared {
    unsigned version = 11;
    bool keep_alive = true;
    Handler* handler = nullptr;
    RequestId id;
    Request request;
    std::chrono::steady_clock::time_point started;
  };
  // Routes, identifies and authenticates `req`: the prepared request, or
  // the error response to send instead (in *error). Moves the body out of
  // `req`.
  std::optional<Prepared> Prepare(HttpRequest& req,
                                  const std::string& local_address,
                                  const std::string& principal,
                                  std::chrono::steady_clock::time_point started,
                                  std::shared_ptr<HttpResponse>* error);
  // The response for a pipeline result, reported to the observer.
  std::shared_ptr<HttpResponse> Respond(
      const Prepared& p, absl::StatusOr<PipelineResult> result);
  std::shared_ptr<HttpResponse> BuildResponse(
      const Prepared& p, absl::StatusOr<PipelineResult> result);

  const HttpServerOptions options_;
  const Router router_;
  RequestPipeline& pipeline_;
  // Declared before ioc_: handlers still queued when ioc_ is destroyed hold
  // the last references to sessions, whose destructors unregister here.
  absl::Mutex tls_mu_;
  std::shared_ptr<net::ssl::context> tls_ ABSL_GUARDED_BY(tls_mu_);
  mutable absl::Mutex sessions_mu_;
  absl::flat_hash_map<SessionBase*, std::weak_ptr<SessionBase>> sessions_
      ABSL_GUARDED_BY(sessions_mu_);
  std::atomic<uint64_t> accepted_{0}, refused_{0}, accept_errors_{0},
      tls_failures_{0}, bad_requests_{0};
  LogLimiter accept_log_{std::chrono::seconds(10)};
  LogLimiter refuse_log_{std::chrono::seconds(10)};
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  net::steady_timer backoff_timer_;
  std::chrono::milliseconds accept_backoff_{0};  // Acceptor's strand only.
  size_t cap_ = 0;
  // Handlers run on the event-loop threads (ExecuteAsync), not on workers_.
  const bool inline_;
  std::optional<net::thread_pool> workers_;  // Only when !inline_.
  std::atomic<int64_t> executing_{0};
  std::vector<std::thread> io_threads_;
  uint16_t port_ = 0;
  std::atomic<bool> stopped_{false};
  std::atomic<int64_t> responding_{0};

};

template <class Stream>
Session<Stream>::~Session() {
  if (registered_) server_->Unregister(this);
}

template <class Stream>
void Session<Stream>::Run() {
  beast::error_code ec;
  tcp::endpoint local = lowest().socket().local_endpoint(ec);
  if (!ec) {
    net::ip::address a = local.address();
    if (a.is_v6() && a.to_v6().is_v4_mapped()) {
      a = net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6());
    }
    local_address_ = a.to_string();
  }
  server_->Register(this, this->weak_from_this());
  registered_ = true;
  if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&Session::ReadHeader,
                                            this->shared_from_this()));
  } else {
    lowest().expires_after(ToChrono(server_->options().read_timeout));
    stream_.async_handshake(
        net::ssl::stream_base::server,
        beast::bind_front_handler(&Session::OnHandshake,
                                  this->shared_from_this()));
  }
}

template <class Stream>
void Session<Stream>::OnHandshake(beast::error_code ec) {
  if constexpr (!std::is_same_v<Stream, beast::tcp_stream>) {
    if (ec) {
      server_->CountTlsFailure();
      spdlog::debug("TLS handshake failed: {}", ec.message());
      return Close();
    }
    principal_ = internal::PeerSubject(stream_.native_handle());
  }
  ReadHeader();
}

template <class Stream>
void Session<Stream>::CloseWhenIdle() {
  net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
    if (self->reading_header_) {
      self->reading_header_ = false;
      self->Close();
    } else {
      self->close_after_reply_ = true;
    }
  });
}

template <class Stream>
void Session<Stream>::ReadHeader() {
  const HttpServerOptions& o = server_->options();
  if (close_after_reply_ || server_->stopping()) return Close();
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(
      std::min<size_t>(o.max_header_bytes, UINT32_MAX)));
  parser_->body_limit(o.max_body_bytes);
  lowest().expires_after(ToChrono(o.idle_timeout));
  reading_header_ = true;
  http::async_read_header(
      stream_, buffer_, *parser_,
      beast::bind_front_handler(&Session::OnHeader, this->shared_from_this()));
}

template <class Stream>
void Session<Stream>::OnHeader(beast::error_code ec, size_t) {
  reading_header_ = false;
  started_ = std::chrono::steady_clock::now();
  if (ec) return OnReadError(ec);
  if (!AcceptableTransferEncoding(parser_->get())) {
    server_->CountBadRequest();
    auto res = ErrorResponse(
        400, "bad_transfer_encoding",
        "only \"Transfer-Encoding: chunked\" (alone, without Content-Length) "
        "is accepted",
        parser_->get().version(), false);
    server_->Observe("unrouted", *res, started_);
    return Write(std::move(res));
  }
  if (parser_->is_done()) return Dispatch();
  lowest().expires_after(ToChrono(server_->options().read_timeout));
  // Clients such as curl send "Expect: 100-continue" for larger bodies and
  // wait (curl: 1 s) for the interim response before sending the body.
  if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
    static constexpr std::string_view kContinue =
        "HTTP/1.1 100 Continue\r\n\r\n";
    net::async_write(
        stream_, net::buffer(kContinue.data(), kContinue.size()),
        [self = this->shared_from_this()](beast::error_code wec, size_t) {
          if (wec) return self->Close();
          self->ReadBody();
        });
    return;
  }
  ReadBody();
}

template <class Stream>
void Session<Stream>::ReadBody() {
  http::async_read(
      stream_, buffer_, *parser_,
      beast::bind_front_handler(&Session::OnBody, this->shared_from_this()));
}

template <class Stream>
void Session<Stream>::OnBody(beast::error_code ec, size_t) {
  if (ec) return OnReadError(ec);
  Dispatch();
}

template <class Stream>
void Session<Stream>::OnReadError(beast::error_code ec) {
  if (ec == http::error::end_of_stream || ec == net::error::eof ||
      ec == net::error::connection_reset ||
      ec == net::error::operation_aborted) {
    return Close();
  }
  if (ec == beast::error::timeout) {
    spdlog::debug("closing a connection that timed out while reading");
    return Close();
  }
  std::shared_ptr<HttpResponse> res;
  if (ec == http::error::header_limit) {
    res = ErrorResponse(431, "request_header_fields_too_large",
                        absl::StrCat("request header exceeds ",
                                     server_->options().max_header_bytes,
                                     " bytes"),
                        11, false);
  } else if (ec == http::error::body_limit) {
    res = ErrorResponse(413, "payload_too_large",
                        absl::StrCat("request body exceeds ",
                                     server_->options().max_body_bytes,
                                     " bytes"),
                        11, false);
  } else if (ec.category() ==
             http::make_error_code(http::error::end_of_stream).category()) {
    res = ErrorResponse(
        400, "bad_request",
        absl::StrCat("malformed HTTP request: ", ec.message()), 11, false);
  } else {
    return Close();
  }
  server_->CountBadRequest();
  server_->Observe("unrouted", *res, started_);
  Write(std::move(res));
}

template <class Stream>
void Session<Stream>::Dispatch() {
  if (server_->stopping()) return Close();
  server_->responding().fetch_add(1);
  // No read timeout while the request executes: the client is waiting.
  lowest().expires_never();
  if (server_->runs_inline()) {
    ServerImpl* server = server_;
    server->executing().fetch_add(1);
    HttpRequest req = parser_->release();
    server->HandleAsync(
        req, local_address_, principal_, started_,
        [self = this->shared_from_this(),
         server](std::shared_ptr<HttpResponse> res) mutable {
          // Inline when already on this session's strand (errors, reads);
          // else one post to the event loop (from the store's thread).
          net::dispatch(self->stream_.get_executor(),
                        [self, res = std::move(res)]() mutable {
                          self->Write(std::move(res), /*dispatched=*/true);
                        });
          self.reset();
          server->executing().fetch_sub(1);
        });
    return;
  }
  auto req = std::make_shared<HttpRequest>(parser_->release());
  net::post(server_->workers(), [self = this->shared_from_this(), req] {
    std::shared_ptr<HttpResponse> res = self->server_->Handle(
        *req, self->local_address_, self->principal_, self->started_);
    net::post(self->stream_.get_executor(),
              [self, res = std::move(res)]() mutable {
                self->Write(std::move(res), /*dispatched=*/true);
              });
  });
}

template <class Stream>
void Session<Stream>::Write(std::shared_ptr<HttpResponse> res,
                            bool dispatched) {
  dispatched_ = dispatched;
  res_ = std::move(res);
  if (!server_->options().node_name.empty()) {
    res_->set("Baton-Node", server_->options().node_name);
  }
  if (close_after_reply_ || server_->stopping()) res_->keep_alive(false);
  lowest().expires_after(ToChrono(server_->options().write_timeout));
  http::async_write(
      stream_, *res_,
      beast::bind_front_handler(&Session::OnWrite, this->shared_from_this()));
}

template <class Stream>
void Session<Stream>::OnWrite(beast::error_code ec, size_t) {
  if (dispatched_) {
    dispatched_ = false;
    server_->responding().fetch_sub(1);
  }
  if (ec || res_->need_eof() || server_->stopping() || close_after_reply_) {
    return Close();
  }
  res_.reset();
  ReadHeader();
}

template <class Stream>
void Session<Stream>::Close() {
  beast::error_code ec;
  lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
  lowest().socket().close(ec);
}

std::optional<ServerImpl::Prepared> ServerImpl::Prepare(
    HttpRequest& req, const std::string& local_address,
    const std::string& principal,
    std::chrono::steady_clock::time_point started,
    std::shared_ptr<HttpResponse>* error) {
  Prepared p;
  p.started = started;
  p.version = req.version();
  p.keep_alive = req.keep_alive();
  auto sv = [](beast::string_view s) { return std::string_view(s.data(), s.size()); };
  std::vector<HttpHeader> headers;
  for (const auto& f : req) headers.push_back({sv(f.name_string()), sv(f.value())});
  auto built = BuildHttpRequest(
      router_, {sv(req.method_string()), sv(req.target()), headers,
                std::move(req.body()), local_address, principal,
                &options_.authenticate});
  if (auto* e = std::get_if<HttpRequestError>(&built)) {
    *error = ErrorResponse(e->status, e->code, e->message, p.version, p.keep_alive);
    for (const auto& [name, value] : e->headers) (*error)->set(name, value);
    Observe(e->operation, **error, started);
    return std::nullopt;
  }
  RoutedRequest& routed = std::get<RoutedRequest>(built);
  p.handler = routed.handler;
  p.id = std::move(routed.id);
  p.request = std::move(routed.request);
  return p;
}

void ServerImpl::Observe(std::string_view operation, const HttpResponse& res,
                         std::chrono::steady_clock::time_point started,
                         bool replayed) {
  if (options_.observer == nullptr) return;
  const int status = static_cast<int>(res.result_int());
  std::string code = "ok";
  if (status >= 400) {
    // The error name is in the body we built: {"error":{...,"code":"x"}}.
    const std::string& body = res.body();
    const size_t at = body.find("\"code\":\"");
    if (at != std::string::npos) {
      const size_t from = at + 8;
      const size_t to = body.find('"', from);
      if (to != std::string::npos && to - from <= 64) {
        code = body.substr(from, to - from);
      }
    } else {
      code = "error";
    }
  }
  options_.observer->RequestDone(
      "http", operation, status, code,
      absl::FromChrono(std::chrono::steady_clock::now() - started), replayed);
}

std::shared_ptr<HttpResponse> ServerImpl::Handle(
    HttpRequest& req, const std::string& local_address,
    const std::string& principal,
    std::chrono::steady_clock::time_point started) {
  std::shared_ptr<HttpResponse> error;
  std::optional<Prepared> p =
      Prepare(req, local_address, principal, started, &error);
  if (!p) return error;
  absl::StatusOr<PipelineResult> result;
  // The pipeline catches what a handler throws (one clear 500, nothing
  // committed) on both of its entry points.
  result = pipeline_.Execute(p->id, p->request, *p->handler);
  return Respond(*p, std::move(result));
}

void ServerImpl::HandleAsync(
    HttpRequest& req, const std::string& local_address,
    const std::string& principal,
    std::chrono::steady_clock::time_point started,
    absl::AnyInvocable<void(std::shared_ptr<HttpResponse>)> done) {
  std::shared_ptr<HttpResponse> error;
  std::optional<Prepared> prepared =
      Prepare(req, local_address, principal, started, &error);
  if (!prepared) return done(std::move(error));
  // The callback owns the prepared request, which the pipeline reads until
  // it calls back.
  auto p = std::make_unique<Prepared>(*std::move(prepared));
  Prepared* raw = p.get();
  pipeline_.ExecuteAsync(
      raw->id, raw->request, *raw->handler,
      [this, p = std::move(p), done = std::move(done)](
          absl::StatusOr<PipelineResult> result) mutable {
        done(Respond(*p, std::move(result)));
      });
}

std::shared_ptr<HttpResponse> ServerImpl::Respond(
    const Prepared& p, absl::StatusOr<PipelineResult> result) {
  const bool replayed = result.ok() && result->replayed;
  std::shared_ptr<HttpResponse> res = BuildResponse(p, std::move(result));
  Observe(p.request.operation, *res, p.started, replayed);
  return res;
}

std::shared_ptr<HttpResponse> ServerImpl::BuildResponse(
    const Prepared& p, absl::StatusOr<PipelineResult> result) {
  const unsigned version = p.version;
  const bool keep_alive = p.keep_alive;
  if (!result.ok()) {
    const absl::Status& s = result.status();
    std::shared_ptr<HttpResponse> res;
    switch (GetPipelineError(s)) {
      case PipelineError::kKeyReused:
        return ErrorResponse(422, "idempotency_key_reused", SV(s.message()),
                             version, keep_alive);
      case PipelineError::kInProgress:
        res = ErrorResponse(409, "request_in_progress", SV(s.message()), version,
                            keep_alive);
        res->set(http::field::retry_after,
                 std::to_string(options_.retry_after_seconds));
        return res;
      case PipelineError::kAlreadyAcknowledged:
        return ErrorResponse(410, "request_already_acknowledged", SV(s.message()),
                             version, keep_alive);
      case PipelineError::kOutcomeUnknown:
        return ErrorResponse(500, "outcome_unknown", SV(s.message()), version,
                             keep_alive);
      case PipelineError::kFenceNotReady:
      case PipelineError::kDeposed:
        res = ErrorResponse(
            503,
            GetPipelineError(s) == PipelineError::kDeposed ? "deposed"
                                                           : "fence_not_ready",
            SV(s.message()), version, keep_alive);
        res->set(http::field::retry_after, "0");
        return res;
      case PipelineError::kNone:
        break;
    }
    const int status = HttpStatusForCode(s.code());
    res = ErrorResponse(status, LowerSnake(s.code()), SV(s.message()), version,
                        keep_alive);
    if (status == 503) {
      res->set(http::field::retry_after,
               std::to_string(options_.retry_after_seconds));
    }
    return res;
  }

  auto res = std::make_shared<HttpResponse>();
  res->version(version);
  res->result(static_cast<unsigned>(HttpStatusForCode(result->reply.code)));
  res->set(http::field::server, "baton");
  res->set(http::field::content_type, result->reply.content_type);
  if (result->replayed) res->set("Idempotent-Replayed", "true");
  res->body() = std::move(result->reply.body);
  res->keep_alive(keep_alive);
  res->prepare_payload();
  return res;
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> StartHttpServer(
    const HttpServerOptions& options, Router router,
    RequestPipeline& pipeline) {
  if (options.max_header_bytes == 0 || options.max_body_bytes == 0 ||
      options.max_header_bytes > UINT32_MAX) {
    return absl::InvalidArgumentError(
        "max_header_bytes must be in [1, 2^32-1] and max_body_bytes > 0");
  }
  if (options.max_connections == 0 || options.io_threads < 1 ||
      options.worker_threads < 1) {
    return absl::InvalidArgumentError(
        "max_connections, io_threads and worker_threads must be >= 1");
  }
  auto server =
      std::make_unique<ServerImpl>(options, std::move(router), pipeline);
  if (absl::Status s = server->Listen(); !s.ok()) return s;
  return server;
}

}  // namespace baton::framework

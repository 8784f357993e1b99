#include "framework/http_server.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <exception>
#include <optional>
#include <thread>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "framework/absl_compat.h"
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

absl::StatusOr<std::string> ParseIdempotencyKey(std::string_view header) {
  std::string_view v = SV(absl::StripAsciiWhitespace(AV(header)));
  std::string out;
  if (!v.empty() && v.front() == '"') {
    size_t i = 1;
    bool closed = false;
    for (; i < v.size(); ++i) {
      char c = v[i];
      if (c == '\\') {
        if (i + 1 >= v.size() || (v[i + 1] != '"' && v[i + 1] != '\\')) {
          return absl::InvalidArgumentError(
              "Idempotency-Key: bad escape in string");
        }
        out.push_back(v[++i]);
      } else if (c == '"') {
        closed = true;
        ++i;
        break;
      } else if (c < 0x20 || c > 0x7e) {
        return absl::InvalidArgumentError(
            "Idempotency-Key: non-printable character");
      } else {
        out.push_back(c);
      }
    }
    if (!closed) {
      return absl::InvalidArgumentError("Idempotency-Key: unterminated string");
    }
    // Structured-field parameters (";a=b") are allowed and ignored.
    std::string_view rest = SV(absl::StripAsciiWhitespace(AV(v.substr(i))));
    if (!rest.empty() && rest.front() != ';') {
      return absl::InvalidArgumentError(
          "Idempotency-Key: trailing characters after the string");
    }
  } else {
    for (char c : v) {
      if (c <= 0x20 || c > 0x7e || c == '"' || c == ',' || c == ';') {
        return absl::InvalidArgumentError(
            "Idempotency-Key must be a quoted string (\"...\") or a token");
      }
    }
    out = std::string(v);
  }
  if (out.empty() || out.size() > 255) {
    return absl::InvalidArgumentError(
        "Idempotency-Key must be 1..255 characters");
  }
  return out;
}

namespace {

// --- The server ---------------------------------------------------------------

class ServerImpl;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, ServerImpl* server)
      : stream_(std::move(socket)), server_(server) {}

  void Run();

 private:
  void ReadHeader();
  void OnHeader(beast::error_code ec, size_t);
  void ReadBody();
  void OnBody(beast::error_code ec, size_t);
  void OnReadError(beast::error_code ec);
  void Dispatch();
  // `dispatched`: the response of a request counted in responding().
  void Write(std::shared_ptr<HttpResponse> res, bool dispatched = false);
  void OnWrite(beast::error_code ec, size_t);
  void Close();

  beast::tcp_stream stream_;
  // The connection's local address (where the client sent the request).
  std::string local_address_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<HttpResponse> res_;
  bool dispatched_ = false;
  ServerImpl* server_;
};

class ServerImpl : public HttpServer {
 public:
  ServerImpl(const HttpServerOptions& options, Router router,
             RequestPipeline& pipeline)
      : options_(options),
        router_(std::move(router)),
        pipeline_(pipeline),
        acceptor_(net::make_strand(ioc_)),
        inline_(options.handler_threads ==
                    HttpServerOptions::HandlerThreads::kIoThreads ||
                (options.handler_threads ==
                     HttpServerOptions::HandlerThreads::kAuto &&
                 pipeline.ExecutesInline())) {
    if (!inline_) {
      workers_.emplace(static_cast<size_t>(std::max(1, options.worker_threads)));
    }
  }

  ~ServerImpl() override { Stop(); }

  absl::Status Listen() {
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
    Accept();
    for (int i = 0; i < std::max(1, options_.io_threads); ++i) {
      io_threads_.emplace_back([this] { ioc_.run(); });
    }
    return absl::OkStatus();
  }

  uint16_t port() const override { return port_; }

  void Stop() override {
    if (stopped_.exchange(true)) return;
    net::post(acceptor_.get_executor(), [this] {
      beast::error_code ec;
      acceptor_.close(ec);
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

  std::shared_ptr<HttpResponse> Handle(HttpRequest& req,
                                       const std::string& local_address);

  // Handle() on the pipeline's asynchronous path: `done` gets the response,
  // on this thread or on the store's commit thread.
  void HandleAsync(
      HttpRequest& req, const std::string& local_address,
      absl::AnyInvocable<void(std::shared_ptr<HttpResponse>)> done);

 private:
  void Accept() {
    acceptor_.async_accept(
        net::make_strand(ioc_),
        [this](beast::error_code ec, tcp::socket socket) {
          if (ec) {
            if (ec == net::error::operation_aborted || !acceptor_.is_open()) {
              return;
            }
            spdlog::warn("accept failed: {}", ec.message());
          } else {
            beast::error_code ignored;
            socket.set_option(tcp::no_delay(true), ignored);
            std::make_shared<Session>(std::move(socket), this)->Run();
          }
          Accept();
        });
  }

  absl::StatusOr<RequestId> IdFromHeaders(const HttpRequest& req);

  // A request routed and identified, ready for the pipeline.
  struct Prepared {
    unsigned version = 11;
    bool keep_alive = true;
    Handler* handler = nullptr;
    RequestId id;
    Request request;
  };
  // Routes and identifies `req`: the prepared request, or the error
  // response to send instead (in *error).
  // Moves the body out of `req`.
  std::optional<Prepared> Prepare(HttpRequest& req,
                                  const std::string& local_address,
                                  std::shared_ptr<HttpResponse>* error);
  std::shared_ptr<HttpResponse> Respond(
      const Prepared& p, absl::StatusOr<PipelineResult> result);

  const HttpServerOptions options_;
  const Router router_;
  RequestPipeline& pipeline_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  // Handlers run on the event-loop threads (ExecuteAsync), not on workers_.
  const bool inline_;
  std::optional<net::thread_pool> workers_;  // Only when !inline_.
  std::atomic<int64_t> executing_{0};
  std::vector<std::thread> io_threads_;
  uint16_t port_ = 0;
  std::atomic<bool> stopped_{false};
  std::atomic<int64_t> responding_{0};
};

void Session::Run() {
  beast::error_code ec;
  tcp::endpoint local = stream_.socket().local_endpoint(ec);
  if (!ec) {
    net::ip::address a = local.address();
    if (a.is_v6() && a.to_v6().is_v4_mapped()) {
      a = net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6());
    }
    local_address_ = a.to_string();
  }
  net::dispatch(stream_.get_executor(),
                beast::bind_front_handler(&Session::ReadHeader,
                                          shared_from_this()));
}

void Session::ReadHeader() {
  const HttpServerOptions& o = server_->options();
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(o.max_header_bytes));
  parser_->body_limit(o.max_body_bytes);
  stream_.expires_after(ToChrono(o.idle_timeout));
  http::async_read_header(
      stream_, buffer_, *parser_,
      beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
}

void Session::OnHeader(beast::error_code ec, size_t) {
  if (ec) return OnReadError(ec);
  if (parser_->is_done()) return Dispatch();
  stream_.expires_after(ToChrono(server_->options().read_timeout));
  // Clients such as curl send "Expect: 100-continue" for larger bodies and
  // wait (curl: 1 s) for the interim response before sending the body.
  if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
    static constexpr std::string_view kContinue =
        "HTTP/1.1 100 Continue\r\n\r\n";
    net::async_write(
        stream_, net::buffer(kContinue.data(), kContinue.size()),
        [self = shared_from_this()](beast::error_code wec, size_t) {
          if (wec) return self->Close();
          self->ReadBody();
        });
    return;
  }
  ReadBody();
}

void Session::ReadBody() {
  http::async_read(
      stream_, buffer_, *parser_,
      beast::bind_front_handler(&Session::OnBody, shared_from_this()));
}

void Session::OnBody(beast::error_code ec, size_t) {
  if (ec) return OnReadError(ec);
  Dispatch();
}

void Session::OnReadError(beast::error_code ec) {
  if (ec == http::error::end_of_stream || ec == net::error::eof ||
      ec == net::error::connection_reset ||
      ec == net::error::operation_aborted) {
    return Close();
  }
  if (ec == beast::error::timeout) {
    spdlog::debug("closing a connection that timed out while reading");
    return Close();
  }
  if (ec == http::error::header_limit) {
    return Write(ErrorResponse(431, "request_header_fields_too_large",
                               absl::StrCat("request header exceeds ",
                                            server_->options().max_header_bytes,
                                            " bytes"),
                               11, false));
  }
  if (ec == http::error::body_limit) {
    return Write(ErrorResponse(
        413, "payload_too_large",
        absl::StrCat("request body exceeds ",
                     server_->options().max_body_bytes, " bytes"),
        11, false));
  }
  if (ec.category() ==
      http::make_error_code(http::error::end_of_stream).category()) {
    return Write(ErrorResponse(400, "bad_request",
                               absl::StrCat("malformed HTTP request: ",
                                            ec.message()),
                               11, false));
  }
  Close();
}

void Session::Dispatch() {
  if (server_->stopping()) return Close();
  server_->responding().fetch_add(1);
  // No read timeout while the request executes: the client is waiting.
  stream_.expires_never();
  if (server_->runs_inline()) {
    ServerImpl* server = server_;
    server->executing().fetch_add(1);
    HttpRequest req = parser_->release();
    server->HandleAsync(
        req, local_address_, [self = shared_from_this(),
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
  net::post(server_->workers(), [self = shared_from_this(), req] {
    std::shared_ptr<HttpResponse> res =
        self->server_->Handle(*req, self->local_address_);
    net::post(self->stream_.get_executor(),
              [self, res = std::move(res)]() mutable {
                self->Write(std::move(res), /*dispatched=*/true);
              });
  });
}

void Session::Write(std::shared_ptr<HttpResponse> res, bool dispatched) {
  dispatched_ = dispatched;
  res_ = std::move(res);
  if (!server_->options().node_name.empty()) {
    res_->set("Baton-Node", server_->options().node_name);
  }
  stream_.expires_after(ToChrono(server_->options().write_timeout));
  http::async_write(
      stream_, *res_,
      beast::bind_front_handler(&Session::OnWrite, shared_from_this()));
}

void Session::OnWrite(beast::error_code ec, size_t) {
  if (dispatched_) {
    dispatched_ = false;
    server_->responding().fetch_sub(1);
  }
  if (ec || res_->need_eof() || server_->stopping()) return Close();
  res_.reset();
  ReadHeader();
}

void Session::Close() {
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream_.socket().close(ec);
}

absl::StatusOr<RequestId> ServerImpl::IdFromHeaders(const HttpRequest& req) {
  auto header = [&](std::string_view name) -> std::optional<std::string_view> {
    auto it = req.find(beast::string_view(name.data(), name.size()));
    if (it == req.end()) return std::nullopt;
    return std::string_view(it->value().data(), it->value().size());
  };
  std::optional<std::string_view> key = header("Idempotency-Key");
  std::optional<std::string_view> client = header("Baton-Client-Id");
  std::optional<std::string_view> seq = header("Baton-Seq");
  std::optional<std::string_view> ack = header("Baton-Ack");
  if (key && (client || seq)) {
    return absl::InvalidArgumentError(
        "use either Idempotency-Key or Baton-Client-Id/Baton-Seq, not both");
  }
  if (key) {
    absl::StatusOr<std::string> k = ParseIdempotencyKey(*key);
    if (!k.ok()) return k.status();
    return RequestId::Key(*std::move(k));
  }
  if (client || seq) {
    uint64_t s = 0;
    if (!client || !seq || !absl::SimpleAtoi(AV(*seq), &s)) {
      return absl::InvalidArgumentError(
          "Baton-Client-Id and Baton-Seq (an unsigned integer) go together");
    }
    std::optional<uint64_t> acked;
    if (ack) {
      uint64_t a = 0;
      if (!absl::SimpleAtoi(AV(*ack), &a)) {
        return absl::InvalidArgumentError(
            "Baton-Ack must be an unsigned integer");
      }
      acked = a;
    }
    return RequestId::ClientSeq(std::string(absl::StripAsciiWhitespace(AV(*client))),
                                s, acked);
  }
  if (ack) {
    return absl::InvalidArgumentError("Baton-Ack needs Baton-Client-Id");
  }
  return RequestId::None();
}

std::optional<ServerImpl::Prepared> ServerImpl::Prepare(
    HttpRequest& req, const std::string& local_address,
    std::shared_ptr<HttpResponse>* error) {
  Prepared p;
  p.version = req.version();
  p.keep_alive = req.keep_alive();
  const std::string_view target(req.target().data(), req.target().size());
  const std::string_view path = target.substr(0, target.find('?'));
  const std::string_view method(req.method_string().data(),
                                req.method_string().size());

  Router::Match m = router_.Find(method, path);
  if (m.result == Router::Match::Result::kNoRoute) {
    *error = ErrorResponse(404, "not_found",
                           absl::StrCat("no route for ", AV(path)), p.version,
                           p.keep_alive);
    return std::nullopt;
  }
  if (m.result == Router::Match::Result::kWrongMethod) {
    *error = ErrorResponse(
        405, "method_not_allowed",
        absl::StrCat(AV(method), " is not allowed on ", AV(path)), p.version,
        p.keep_alive);
    (*error)->set(http::field::allow, absl::StrJoin(m.allowed_methods, ", "));
    return std::nullopt;
  }
  absl::StatusOr<RequestId> id = IdFromHeaders(req);
  if (!id.ok()) {
    *error = ErrorResponse(400, "bad_request_id", SV(id.status().message()),
                           p.version, p.keep_alive);
    return std::nullopt;
  }
  p.id = *std::move(id);
  p.handler = m.handler;

  Request& r = p.request;
  r.operation = absl::StrCat(AV(method), " ", m.pattern);
  r.path = std::string(target);
  r.params = std::move(m.params);
  r.body = std::move(req.body());
  r.local_address = local_address;
  for (const auto& f : req) {
    std::string name = absl::AsciiStrToLower(
        absl::string_view(f.name_string().data(), f.name_string().size()));
    std::string_view value(f.value().data(), f.value().size());
    auto [it, inserted] = r.metadata.emplace(std::move(name), value);
    if (!inserted) absl::StrAppend(&it->second, ",", AV(value));
  }
  return p;
}

std::shared_ptr<HttpResponse> ServerImpl::Handle(
    HttpRequest& req, const std::string& local_address) {
  std::shared_ptr<HttpResponse> error;
  std::optional<Prepared> p = Prepare(req, local_address, &error);
  if (!p) return error;
  absl::StatusOr<PipelineResult> result;
  try {
    result = pipeline_.Execute(p->id, p->request, *p->handler);
  } catch (const std::exception& e) {
    spdlog::error("handler for {} threw: {}", p->request.operation, e.what());
    result = absl::InternalError("handler failed");
  }
  return Respond(*p, std::move(result));
}

void ServerImpl::HandleAsync(
    HttpRequest& req, const std::string& local_address,
    absl::AnyInvocable<void(std::shared_ptr<HttpResponse>)> done) {
  std::shared_ptr<HttpResponse> error;
  std::optional<Prepared> prepared = Prepare(req, local_address, &error);
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
  if (options.max_header_bytes == 0 || options.max_body_bytes == 0) {
    return absl::InvalidArgumentError("header and body limits must be > 0");
  }
  auto server =
      std::make_unique<ServerImpl>(options, std::move(router), pipeline);
  if (absl::Status s = server->Listen(); !s.ok()) return s;
  return server;
}

}  // namespace baton::framework

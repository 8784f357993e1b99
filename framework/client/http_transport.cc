// The HTTP/1.1 transport of the retrying client on Boost.Beast. Each
// connection has its own io_context, run on the calling thread for the
// duration of one attempt, so a blocking call needs no extra thread and the
// attempt timeout covers connect, write and read together.
#include <utility>  // Before Asio: Boost 1.74 uses std::exchange without it.

#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "framework/client/transport.h"
#include "nlohmann/json.hpp"

namespace baton::framework::client {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

struct Connection {
  net::io_context ioc;
  beast::tcp_stream stream{ioc};
  beast::flat_buffer buffer;
  bool connected = false;
};

class HttpTransport : public Transport {
 public:
  explicit HttpTransport(HttpTransportOptions o) : options_(std::move(o)) {}

  absl::StatusOr<Response> Attempt(const Call& call, const IdHeaders& id,
                                   absl::Duration timeout, bool fresh) override {
    http::verb verb = http::string_to_verb(call.method);
    if (verb == http::verb::unknown || call.target.empty() ||
        call.target[0] != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("bad HTTP method or target: ", call.method, " ",
                       call.target));
    }
    std::unique_ptr<Connection> conn;
    if (fresh) {
      DropIdle();  // They may lead to a dead server.
    } else {
      conn = TakeIdle();
    }
    if (!conn) conn = std::make_unique<Connection>();

    http::request<http::string_body> req{verb, call.target, 11};
    req.set(http::field::host, options_.host);
    req.keep_alive(true);
    if (!id.client_id.empty()) {
      req.set("Baton-Client-Id", id.client_id);
      req.set("Baton-Seq", std::to_string(id.seq));
      if (id.acked) req.set("Baton-Ack", std::to_string(*id.acked));
    } else if (!id.idempotency_key.empty()) {
      req.set("Idempotency-Key", absl::StrCat("\"", id.idempotency_key, "\""));
    }
    if (!call.body.empty() || verb == http::verb::put ||
        verb == http::verb::post) {
      req.set(http::field::content_type, call.content_type);
      req.body() = call.body;
    }
    req.prepare_payload();

    beast::error_code ec;
    http::response<http::string_body> res;
    const auto t = absl::ToChronoMilliseconds(std::max(timeout, absl::Milliseconds(1)));
    conn->ioc.restart();
    // A separate, shorter limit for a new connection's handshake (options_.
    // connect_timeout): nothing has been sent when it expires, so the attempt
    // ends as plainly unavailable and the retry sends a fresh SYN.
    const bool limit_connect = !conn->connected &&
                               options_.connect_timeout > absl::ZeroDuration() &&
                               options_.connect_timeout < timeout;
    bool connect_timed_out = false;
    conn->stream.expires_after(
        limit_connect ? absl::ToChronoMilliseconds(std::max(options_.connect_timeout,
                                                            absl::Milliseconds(1)))
                      : t);
    auto read_done = [&](beast::error_code e, size_t) { ec = e; };
    auto write_done = [&](beast::error_code e, size_t) {
      if (e) {
        ec = e;
        return;
      }
      http::async_read(conn->stream, conn->buffer, res, read_done);
    };
    if (!conn->connected) {
      // Resolved again for every new connection: the name may now lead to
      // another host.
      tcp::resolver resolver(conn->ioc);
      auto endpoints =
          resolver.resolve(options_.host, std::to_string(options_.port), ec);
      if (ec) {
        return absl::UnavailableError(
            absl::StrCat("resolve ", options_.host, ": ", ec.message()));
      }
      conn->stream.async_connect(endpoints, [&](beast::error_code e,
                                                const tcp::endpoint&) {
        if (e) {
          ec = e;
          connect_timed_out = limit_connect && e == beast::error::timeout;
          return;
        }
        conn->connected = true;
        if (limit_connect) conn->stream.expires_after(t);
        conn->stream.socket().set_option(tcp::no_delay(true), e);
        http::async_write(conn->stream, req, write_done);
      });
    } else {
      http::async_write(conn->stream, req, write_done);
    }
    conn->ioc.run();
    if (ec) {
      if (connect_timed_out) {
        return absl::UnavailableError(absl::StrCat(
            "connect to ", options_.host, ":", options_.port, " timed out after ",
            absl::FormatDuration(options_.connect_timeout)));
      }
      if (ec == beast::error::timeout) {
        return absl::DeadlineExceededError(absl::StrCat(
            "no reply from ", options_.host, ":", options_.port, " within ",
            absl::FormatDuration(timeout)));
      }
      return absl::UnavailableError(absl::StrCat(
          options_.host, ":", options_.port, ": ", ec.message()));
    }

    Response r;
    r.http_status = static_cast<int>(res.result_int());
    r.code = CodeForHttpStatus(r.http_status);
    r.body = std::move(res.body());
    r.replayed = res["Idempotent-Replayed"] == "true";
    r.node = std::string(res["Baton-Node"]);
    if (auto ra = res[http::field::retry_after]; !ra.empty()) {
      int secs = 0;
      if (absl::SimpleAtoi(absl::string_view(ra.data(), ra.size()), &secs)) {
        r.retry_after = absl::Seconds(secs);
      }
    }
    if (r.http_status >= 400 && !r.replayed) {
      // Framework errors are {"error":{"code":"..."}}; handler replies may
      // look alike, but only framework errors are retryable, and those are
      // never replays.
      nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
      if (j.is_object() && j.contains("error") && j["error"].is_object() &&
          j["error"].contains("code") && j["error"]["code"].is_string()) {
        r.error_code = j["error"]["code"].get<std::string>();
      }
    }
    if (res.keep_alive()) PutIdle(std::move(conn));
    return r;
  }

 private:
  std::unique_ptr<Connection> TakeIdle() {
    absl::MutexLock lock(&mu_);
    if (idle_.empty()) return nullptr;
    std::unique_ptr<Connection> c = std::move(idle_.back());
    idle_.pop_back();
    return c;
  }
  void PutIdle(std::unique_ptr<Connection> c) {
    absl::MutexLock lock(&mu_);
    if (static_cast<int>(idle_.size()) < options_.max_idle_connections) {
      idle_.push_back(std::move(c));
    }
  }
  void DropIdle() {
    std::vector<std::unique_ptr<Connection>> old;
    absl::MutexLock lock(&mu_);
    old.swap(idle_);
  }

  const HttpTransportOptions options_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusCode CodeForHttpStatus(int status) {
  switch (status) {
    case 200: case 201: case 204: return absl::StatusCode::kOk;
    case 400: return absl::StatusCode::kInvalidArgument;
    case 401: return absl::StatusCode::kUnauthenticated;
    case 403: return absl::StatusCode::kPermissionDenied;
    case 404: return absl::StatusCode::kNotFound;
    case 409: return absl::StatusCode::kAborted;
    case 410: return absl::StatusCode::kAlreadyExists;
    case 412: return absl::StatusCode::kFailedPrecondition;
    case 413: case 429: case 431: return absl::StatusCode::kResourceExhausted;
    case 422: return absl::StatusCode::kFailedPrecondition;
    case 501: return absl::StatusCode::kUnimplemented;
    case 503: return absl::StatusCode::kUnavailable;
    case 504: return absl::StatusCode::kDeadlineExceeded;
    default:
      return status >= 200 && status < 300 ? absl::StatusCode::kOk
                                           : absl::StatusCode::kUnknown;
  }
}

absl::StatusOr<std::unique_ptr<Transport>> MakeHttpTransport(
    const HttpTransportOptions& options) {
  if (options.host.empty()) return absl::InvalidArgumentError("empty host");
  return std::unique_ptr<Transport>(new HttpTransport(options));
}

}  // namespace baton::framework::client

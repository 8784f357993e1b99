// The HTTP/1.1 transport of the retrying client on Boost.Beast, plain or over
// TLS (beast::ssl_stream on OpenSSL). Each connection has its own
// io_context, run on the calling thread for the duration of one attempt, so a
// blocking call needs no extra thread and the attempt timeout covers connect,
// TLS handshake, write and read together.
#include <utility>  // Before Asio: Boost 1.74 uses std::exchange without it.

#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl.hpp"
#include "framework/client/internal/tls.h"
#include "framework/client/transport.h"
#include "nlohmann/json.hpp"
#include "openssl/err.h"
#include "openssl/ssl.h"

namespace baton::framework::client {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// Where an attempt was when it failed.
enum class Phase { kConnect, kHandshake, kExchange };

struct Connection {
  // `tls`: the transport's TLS context, or null for plain text.
  explicit Connection(net::ssl::context* tls) {
    if (tls != nullptr) {
      tls_stream.emplace(ioc, *tls);
    } else {
      plain_stream.emplace(ioc);
    }
  }
  beast::tcp_stream& tcp() {
    return tls_stream ? beast::get_lowest_layer(*tls_stream) : *plain_stream;
  }

  net::io_context ioc;
  std::optional<beast::tcp_stream> plain_stream;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_stream;
  beast::flat_buffer buffer;
  bool connected = false;  // TCP connected (and the TLS handshake done).
};

class HttpTransport : public Transport {
 public:
  HttpTransport(HttpTransportOptions o, std::unique_ptr<net::ssl::context> tls)
      : options_(std::move(o)), tls_(std::move(tls)) {}

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
    if (!conn) conn = std::make_unique<Connection>(tls_.get());
    const bool new_connection = !conn->connected;

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
    Phase phase = Phase::kConnect;
    http::response<http::string_body> res;
    const auto t = absl::ToChronoMilliseconds(std::max(timeout, absl::Milliseconds(1)));
    conn->ioc.restart();
    // A separate, shorter limit for a new connection's handshake (options_.
    // connect_timeout): nothing has been sent when it expires, so the attempt
    // ends as plainly unavailable and the retry sends a fresh SYN.
    const bool limit_connect = new_connection &&
                               options_.connect_timeout > absl::ZeroDuration() &&
                               options_.connect_timeout < timeout;
    conn->tcp().expires_after(
        limit_connect ? absl::ToChronoMilliseconds(std::max(options_.connect_timeout,
                                                            absl::Milliseconds(1)))
                      : t);
    auto exchange = [&](auto& stream) {
      phase = Phase::kExchange;
      http::async_write(stream, req, [&](beast::error_code e, size_t) {
        if (e) {
          ec = e;
          return;
        }
        http::async_read(stream, conn->buffer, res,
                         [&](beast::error_code e2, size_t) { ec = e2; });
      });
    };
    auto start_exchange = [&] {
      if (conn->tls_stream) {
        exchange(*conn->tls_stream);
      } else {
        exchange(*conn->plain_stream);
      }
    };
    if (new_connection) {
      // Resolved again for every new connection: the name may now lead to
      // another host.
      tcp::resolver resolver(conn->ioc);
      auto endpoints =
          resolver.resolve(options_.host, std::to_string(options_.port), ec);
      if (ec) {
        return absl::UnavailableError(
            absl::StrCat("resolve ", options_.host, ": ", ec.message()));
      }
      if (conn->tls_stream) {
        internal::ExpectPeerName(conn->tls_stream->native_handle(), PeerName());
      }
      conn->tcp().async_connect(endpoints, [&](beast::error_code e,
                                               const tcp::endpoint&) {
        if (e) {
          ec = e;
          return;
        }
        if (limit_connect) conn->tcp().expires_after(t);
        conn->tcp().socket().set_option(tcp::no_delay(true), e);
        if (!conn->tls_stream) {
          conn->connected = true;
          start_exchange();
          return;
        }
        phase = Phase::kHandshake;
        conn->tls_stream->async_handshake(
            net::ssl::stream_base::client, [&](beast::error_code h) {
              if (h) {
                ec = h;
                return;
              }
              conn->connected = true;
              start_exchange();
            });
      });
    } else {
      start_exchange();
    }
    conn->ioc.run();
    if (ec) return AttemptError(*conn, ec, phase, new_connection, limit_connect, timeout);

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
  std::string Where() const { return absl::StrCat(options_.host, ":", options_.port); }
  const std::string& PeerName() const {
    return options_.tls.server_name.empty() ? options_.host : options_.tls.server_name;
  }

  // The status of an attempt that got no answer: retryable (kUnavailable,
  // kDeadlineExceeded) unless TLS says no retry can help.
  absl::Status AttemptError(Connection& conn, const beast::error_code& ec,
                            Phase phase, bool new_connection, bool limit_connect,
                            absl::Duration timeout) const {
    if (ec == beast::error::timeout) {
      if (limit_connect && !conn.connected && phase == Phase::kConnect) {
        return absl::UnavailableError(absl::StrCat(
            "connect to ", Where(), " timed out after ",
            absl::FormatDuration(options_.connect_timeout)));
      }
      return absl::DeadlineExceededError(absl::StrCat(
          "no reply from ", Where(), " within ", absl::FormatDuration(timeout)));
    }
    if (ec.category() == net::error::get_ssl_category()) {
      const internal::TlsFailure kind = internal::ClassifyTlsReason(
          ERR_GET_REASON(static_cast<unsigned long>(ec.value())));
      if (kind != internal::TlsFailure::kTransient) {
        return internal::TlsFailureStatus(
            kind, Where(),
            kind == internal::TlsFailure::kVerification
                ? X509_verify_cert_error_string(
                      SSL_get_verify_result(conn.tls_stream->native_handle()))
                : ec.message(),
            options_.tls);
      }
    }
    // A plain-text connection that the server closed before any byte of a
    // reply: a crash (retry) -- or a TLS server that dropped our plain-text
    // request, which no retry cures. Only a new connection can be the
    // latter; a TLS handshake tells them apart.
    if (!tls_ && new_connection && phase == Phase::kExchange &&
        conn.buffer.size() == 0 &&
        (ec == http::error::end_of_stream || ec == net::error::connection_reset ||
         ec == net::error::eof)) {
      absl::Status s = internal::DiagnoseTls(options_.host, options_.port, nullptr, "",
                                             options_.tls,
                                             std::min(timeout, absl::Seconds(1)));
      if (!s.ok()) return s;
    }
    return absl::UnavailableError(absl::StrCat(Where(), ": ", ec.message()));
  }

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
  const std::unique_ptr<net::ssl::context> tls_;  // Null: plain text.
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
  std::unique_ptr<net::ssl::context> tls;
  if (options.tls.enabled) {
    absl::StatusOr<internal::TlsMaterial> m =
        internal::LoadTlsMaterial(options.tls, /*system_bundle=*/false);
    if (!m.ok()) return m.status();
    absl::StatusOr<std::unique_ptr<net::ssl::context>> ctx =
        internal::MakeClientContext(*m);
    if (!ctx.ok()) return ctx.status();
    tls = *std::move(ctx);
  }
  return std::unique_ptr<Transport>(new HttpTransport(options, std::move(tls)));
}

}  // namespace baton::framework::client

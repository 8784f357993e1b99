// The HTTP/1.1 front end: Boost.Beast over Asio, feeding the request pipeline.
//
// Routing: a Router maps a method and a path pattern ("/kv/{key}/incr"; a
// {name} segment matches one non-empty, percent-decoded path segment) to a
// Handler. No pattern matches -> 404; a pattern matches but not the method ->
// 405 with `Allow`.
//
// Request ids (see framework/pipeline.h), from headers:
//   Idempotency-Key: "opaque"        IETF httpapi draft: a structured-field
//                                    string; a bare token is accepted too.
//   Baton-Client-Id: c1              baton's retrying client: client id,
//   Baton-Seq: 42                    its sequence number,
//   Baton-Ack: 40                    optional: all seq <= 40 were received.
// Both schemes at once, or a malformed header -> 400. No id -> the request is
// executed once per arrival.
//
// Statuses: the handler's Reply code is mapped (OK 200, kInvalidArgument 400,
// kNotFound 404, kFailedPrecondition 412, kAlreadyExists 409, kAborted 409,
// kResourceExhausted 429, kUnavailable 503, ...). Pipeline errors: key reused
// with another request 422, same id still in progress 409 (+ Retry-After),
// already acknowledged and collected 410, store unavailable 503
// (+ Retry-After). Malformed HTTP 400, header too large 431, body too large
// 413. Errors are JSON: {"error":{"status":413,"code":"...","message":"..."}}.
// A replayed reply carries `Idempotent-Replayed: true`.
//
// Fencing (framework/fence.h): Request::local_address is the connection's
// local address (IPv4-mapped IPv6 unmapped), so a request that came in on a
// take-over slot's service address commits under that slot's fence. A
// writing request on a slot whose fence is not ready -> 503
// `fence_not_ready`; a commit that found a newer holder's fence -> 503
// `deposed` (nothing written); both with Retry-After: 0.
//
// Hardening (every input is bounded before it is used):
//   - Transfer-Encoding other than a single final `chunked` -> 400 and the
//     connection is closed (a body the server cannot frame must never be
//     read as the next request); Content-Length with Transfer-Encoding too.
//   - at most `max_connections` open connections, and never closer than
//     kReservedDescriptors to the process's descriptor limit; a connection
//     beyond that gets a 503 and is closed at once. When accept() fails for
//     lack of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) the
//     acceptor backs off (10 ms doubling to 1 s) instead of spinning, and
//     logs at most once per 10 s with a count of what it suppressed.
//
// TLS (framework/tls.h): with options.tls.cert_file set the listener speaks
// only TLS; with a client CA it verifies client certificates and the
// subject becomes Request::principal. ReloadTls() re-reads the files for
// new connections.
//
// Authentication: options.authenticate (optional) runs before the pipeline
// with the routed Request (principal preset from the client certificate);
// it returns the principal, or kUnauthenticated (401) / kPermissionDenied
// (403) to refuse the request.
//
// Threads: `io_threads` run the Asio event loop. Where handlers run is
// HttpServerOptions::handler_threads: by default (kAuto) on the event-loop
// threads themselves when the store commits asynchronously (the embedded
// RocksDB store: reads are local point gets, and the commit is handed to the
// store's commit thread, which answers through the event loop: no thread
// waits for an fsync and no worker hop), otherwise on `worker_threads`
// (blocking store calls, e.g. etcd). Choose kWorkers for slow handlers.
// Requests on one connection are read, executed and answered one after
// another, so pipelined requests are answered in order.
//
// Thread safety: Start() returns a running server; Stop() may be called from
// any thread, once or more.
#ifndef BATON_FRAMEWORK_HTTP_SERVER_H_
#define BATON_FRAMEWORK_HTTP_SERVER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "framework/handler.h"
#include "framework/observer.h"
#include "framework/pipeline.h"
#include "framework/tls.h"

namespace baton::framework {

class Router {
 public:
  // Adds a route. `method` is an HTTP method ("GET"); `pattern` starts with
  // '/'. Errors: kInvalidArgument (malformed pattern), kAlreadyExists (same
  // method and pattern twice).
  [[nodiscard]] absl::Status Add(std::string_view method,
                                 std::string_view pattern,
                                 std::shared_ptr<Handler> handler);

  struct Match {
    enum class Result { kFound, kNoRoute, kWrongMethod };
    Result result = Result::kNoRoute;
    Handler* handler = nullptr;
    std::string pattern;
    std::map<std::string, std::string, std::less<>> params;
    std::vector<std::string> allowed_methods;  // For kWrongMethod.
  };
  // Matches a path (without query string).
  Match Find(std::string_view method, std::string_view path) const;

  // Calls `fn` with every route, in the order they were added (e.g. the
  // test kit wraps a service's handlers to count their runs).
  void ForEach(const std::function<void(std::string_view method,
                                        std::string_view pattern,
                                        const std::shared_ptr<Handler>&)>& fn)
      const {
    for (const Route& r : routes_) fn(r.method, r.pattern, r.handler);
  }

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;  // "{name}" for parameters.
    std::shared_ptr<Handler> handler;
  };
  std::vector<Route> routes_;
};

struct HttpServerOptions {
  // Address and port to listen on. Port 0: an ephemeral port (see port()).
  // Default: 127.0.0.1:8080.
  std::string address = "127.0.0.1";
  uint16_t port = 8080;
  // Threads running the event loop. Default: 1.
  int io_threads = 1;
  // Where handlers run (see the file comment). kAuto: on the event-loop
  // threads if the pipeline's store commits asynchronously
  // (RequestPipeline::ExecutesInline), else on the workers. kIoThreads: on
  // the event-loop threads, always (a blocking store then stalls the loop).
  // kWorkers: on worker_threads, always. Default: kAuto.
  enum class HandlerThreads { kAuto, kIoThreads, kWorkers };
  HandlerThreads handler_threads = HandlerThreads::kAuto;
  // Threads running handlers and blocking store calls when handlers run on
  // workers (not started otherwise). Bounds how many requests commit at
  // once (and so how many share one fsync). Default: 64.
  int worker_threads = 64;
  // Largest request header block. Default: 8 KiB.
  size_t max_header_bytes = 8 * 1024;
  // Largest request body. Default: 1 MiB.
  size_t max_body_bytes = 1024 * 1024;
  // Time allowed for the next request's header to arrive on an open
  // connection (idle keep-alive and slow senders). Default: 30 s.
  absl::Duration idle_timeout = absl::Seconds(30);
  // Time allowed to receive a request body once its header is in.
  // Default: 10 s.
  absl::Duration read_timeout = absl::Seconds(10);
  // Time allowed to send a response. Default: 10 s.
  absl::Duration write_timeout = absl::Seconds(10);
  // Stop() waits this long for the responses of requests that were already
  // executing to be sent. Default: 5 s.
  absl::Duration drain_timeout = absl::Seconds(5);
  // Retry-After (seconds) on 503 and 409-in-progress. Default: 1 s.
  // (Fencing 503s -- fence_not_ready, deposed -- say Retry-After: 0: the
  // address is about to work, or already leads to the new holder.)
  int retry_after_seconds = 1;
  // Sent as the `Baton-Node` header of every response (tells clients and
  // benchmarks which host answered). Default: empty (no header).
  std::string node_name;
  // Most connections open at once; further ones get 503 and are closed.
  // Also capped at the descriptor limit (RLIMIT_NOFILE) minus
  // kReservedDescriptors. Default: 10000.
  size_t max_connections = 10000;
  // TLS on this listener (framework/tls.h). Default: off.
  TlsServerOptions tls;
  // Derives the request's principal (see the file comment). Default: none
  // (the principal is the client certificate's subject, or empty).
  std::function<absl::StatusOr<std::string>(const Request&)> authenticate;
  // Told about every answered request (metrics). Not owned; must outlive
  // the server. Default: none.
  RequestObserver* observer = nullptr;
};

// Descriptors the HTTP listener leaves free below RLIMIT_NOFILE for the
// store, the agent and other listeners.
inline constexpr size_t kReservedDescriptors = 64;

struct HttpServerStats {
  uint64_t connections_open = 0;      // Now.
  uint64_t connections_accepted = 0;  // Since start.
  uint64_t connections_refused = 0;   // Over the connection cap.
  uint64_t accept_errors = 0;         // accept() failures (EMFILE, ...).
  uint64_t tls_handshake_failures = 0;
  uint64_t bad_requests = 0;          // Malformed HTTP answered 4xx.
  size_t connection_cap = 0;          // The effective cap.
};

class HttpServer {
 public:
  virtual ~HttpServer() = default;

  // The bound port (the real one when options.port was 0).
  virtual uint16_t port() const = 0;

  virtual HttpServerStats Stats() const = 0;

  // Re-reads the TLS files for connections accepted from now on. Errors
  // (the previous certificate stays): kInvalidArgument naming the file;
  // kFailedPrecondition when the listener has no TLS.
  [[nodiscard]] virtual absl::Status ReloadTls() = 0;

  // Closes the connections that arrived on `local_address` (numeric, as
  // Request::local_address): idle ones at once, busy ones right after their
  // reply, which carries `Connection: close`. Used when this host gives a
  // service address away, so that clients reconnect to the new holder
  // instead of waiting on a dead connection. Returns how many it closed or
  // marked. Thread-safe.
  virtual size_t CloseConnections(std::string_view local_address) = 0;

  // True when the event loop ran a no-op posted to it within `timeout`:
  // the listener is making progress (liveness probe, systemd watchdog).
  // Thread-safe; not from an event-loop thread.
  virtual bool Probe(absl::Duration timeout) = 0;

  // Stops accepting; requests already executing finish and their responses
  // are sent (up to drain_timeout); connections are then closed and the
  // threads joined. Idempotent; the destructor calls it. Not from a handler
  // (it waits for the worker threads).
  virtual void Stop() = 0;
};

// Binds, listens and starts serving. `pipeline` must outlive the server.
// Errors: kInvalidArgument (bad address/options, unusable TLS files),
// kUnavailable (cannot bind, e.g. port in use).
[[nodiscard]] absl::StatusOr<std::unique_ptr<HttpServer>> StartHttpServer(
    const HttpServerOptions& options, Router router, RequestPipeline& pipeline);

// The HTTP status for a reply code (200 for kOk).
int HttpStatusForCode(absl::StatusCode code);

// Parses an Idempotency-Key header value: an sf-string ("...", with \" and
// \\ escapes) or, leniently, a bare token. Errors: kInvalidArgument.
[[nodiscard]] absl::StatusOr<std::string> ParseIdempotencyKey(
    std::string_view header);

}  // namespace baton::framework

#endif  // BATON_FRAMEWORK_HTTP_SERVER_H_

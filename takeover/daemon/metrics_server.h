// The HTTP endpoint of baton-takeoverd's Prometheus metrics (config `metrics_listen`): GET
// /metrics answers the text exposition of metrics.h, computed on the daemon's io_context thread at
// the moment of the scrape. Any other path is 404, any other method 405.
//
// A small server of our own (Boost.Beast's parser on the daemon's io_context) rather than
// prometheus-cpp::pull's Exposer: the daemon is one thread on one event loop, and the status the
// metrics come from lives there; the Exposer runs civetweb's own threads, which would need a
// cross-thread hand-off per scrape and would compete with the lease renewals for the CPU. Bounded:
// at most `max_connections` at once (more are closed at once), an 8 KiB request header, and
// `timeout` per connection; one request per connection (the answer closes it).
//
// Threading: create, use and destroy on the io_context's thread; `render` runs there.
#ifndef BATON_TAKEOVER_DAEMON_METRICS_SERVER_H_
#define BATON_TAKEOVER_DAEMON_METRICS_SERVER_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "absl/status/statusor.h"

namespace baton::takeover {

struct MetricsServerOptions {
  std::string host = "127.0.0.1";  // numeric IPv4/IPv6 address to listen on. Default: loopback
  uint16_t port = 9464;            // 0 picks a free port (tests). Default: 9464
  size_t max_connections = 16;     // open connections at once. Default: 16
  std::chrono::milliseconds timeout{5000};  // per connection, request to answer. Default: 5 s
};

class MetricsServer {
 public:
  // The body of a GET /metrics answer (Prometheus text format, version 0.0.4).
  using Render = std::function<std::string()>;
  // Binds and starts accepting. kInvalidArgument: host is not a numeric address; kUnavailable:
  // bind failed (address in use, not local).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Create(boost::asio::io_context& io,
                                                               const MetricsServerOptions& options,
                                                               Render render);
  virtual ~MetricsServer() = default;
  // The bound port (useful with port 0).
  virtual uint16_t port() const = 0;
  // Stops accepting and closes every open connection.
  virtual void Close() = 0;
};

}  // namespace baton::takeover

#endif  // BATON_TAKEOVER_DAEMON_METRICS_SERVER_H_

// What the front ends report about each request they answer, for metrics
// (framework/admin/metrics.h implements it with Prometheus histograms).
//
// Thread safety: implementations are called from many front-end threads at
// once and must be thread-safe and cheap (no blocking).
#ifndef BATON_FRAMEWORK_OBSERVER_H_
#define BATON_FRAMEWORK_OBSERVER_H_

#include <string_view>

#include "absl/time/time.h"

namespace baton::framework {

class RequestObserver {
 public:
  virtual ~RequestObserver() = default;

  // One request answered by `front_end` ("http" or "grpc"). `operation` is
  // the route ("PUT /kv/{key}") or gRPC method, "unrouted" when none
  // matched (a bounded set: never the raw path). `status` is the HTTP
  // status, or the gRPC code's number; `code` the error name sent (e.g.
  // "idempotency_key_reused"; "ok" for a success). `latency` runs from the
  // complete request to the response handed to the transport.
  virtual void RequestDone(std::string_view front_end,
                           std::string_view operation, int status,
                           std::string_view code, absl::Duration latency,
                           bool replayed) = 0;
};

}  // namespace baton::framework

#endif  // BATON_FRAMEWORK_OBSERVER_H_

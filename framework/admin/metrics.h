// Prometheus metrics of a baton server (text exposition on the admin
// listener's GET /metrics).
//
//   baton_requests_total{front_end,operation,code}        counter
//   baton_request_duration_seconds{front_end,operation}   histogram
// plus whatever the sources added with AddSource() report at scrape time:
// the pipeline's counters (baton_pipeline_*), the store's (baton_store_*),
// the listeners' connections (baton_connections_*), the take-over agent's
// (baton_takeover_*).
//
// Labels are bounded: `operation` is a route pattern or a gRPC method (or
// "unrouted"), `code` an error name from a fixed set; never a raw path.
//
// Thread safety: thread-safe. RequestDone is called from every front-end
// thread; Render from the admin listener.
#ifndef BATON_FRAMEWORK_ADMIN_METRICS_H_
#define BATON_FRAMEWORK_ADMIN_METRICS_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "framework/observer.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"

namespace baton::framework {

class ServerMetrics : public RequestObserver {
 public:
  ServerMetrics();

  void RequestDone(std::string_view front_end, std::string_view operation,
                   int status, std::string_view code, absl::Duration latency,
                   bool replayed) override;

  // A source of families read at every scrape (must be cheap and
  // thread-safe).
  using Source = std::function<std::vector<prometheus::MetricFamily>()>;
  void AddSource(Source source);

  // The registry, for a service's own metrics (exported with the rest).
  prometheus::Registry& registry() { return *registry_; }

  // Every family in Prometheus text format 0.0.4.
  std::string Render() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Counter>* replays_;
  prometheus::Family<prometheus::Histogram>* latency_;
  mutable absl::Mutex mu_;
  std::vector<Source> sources_ ABSL_GUARDED_BY(mu_);
};

// Helpers for sources: one family with one unlabelled sample, or one sample
// per label value.
prometheus::MetricFamily CounterFamily(std::string name, std::string help,
                                       double value);
prometheus::MetricFamily GaugeFamily(std::string name, std::string help,
                                     double value);
// Appends one sample with `labels` to `family`.
void AddSample(prometheus::MetricFamily* family,
               std::vector<prometheus::ClientMetric::Label> labels,
               double value);

}  // namespace baton::framework

#endif  // BATON_FRAMEWORK_ADMIN_METRICS_H_

#include "framework/admin/metrics.h"

#include <utility>

#include "prometheus/text_serializer.h"

namespace baton::framework {

namespace {

// Request latency buckets: 100 us .. 10 s, roughly x2.5 apart.
prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
          0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5,  5, 10};
}

}  // namespace

ServerMetrics::ServerMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      requests_(&prometheus::BuildCounter()
                     .Name("baton_requests_total")
                     .Help("Requests answered, by front end, operation (route "
                           "or gRPC method) and code (\"ok\" or the error "
                           "name sent).")
                     .Register(*registry_)),
      replays_(&prometheus::BuildCounter()
                    .Name("baton_replayed_requests_total")
                    .Help("Requests answered with a stored reply (a retry "
                          "that was not executed again).")
                    .Register(*registry_)),
      latency_(&prometheus::BuildHistogram()
                    .Name("baton_request_duration_seconds")
                    .Help("Time from a complete request to its response, by "
                          "front end and operation.")
                    .Register(*registry_)) {}

void ServerMetrics::RequestDone(std::string_view front_end,
                                std::string_view operation, int status,
                                std::string_view code, absl::Duration latency,
                                bool replayed) {
  (void)status;
  const std::string fe(front_end), op(operation);
  requests_->Add({{"front_end", fe}, {"operation", op}, {"code", std::string(code)}})
      .Increment();
  if (replayed) replays_->Add({{"front_end", fe}, {"operation", op}}).Increment();
  latency_->Add({{"front_end", fe}, {"operation", op}}, LatencyBuckets())
      .Observe(absl::ToDoubleSeconds(latency));
}

void ServerMetrics::AddSource(Source source) {
  absl::MutexLock lock(&mu_);
  sources_.push_back(std::move(source));
}

std::string ServerMetrics::Render() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  std::vector<Source> sources;
  {
    absl::MutexLock lock(&mu_);
    sources = sources_;
  }
  for (const Source& s : sources) {
    std::vector<prometheus::MetricFamily> more = s();
    for (prometheus::MetricFamily& f : more) families.push_back(std::move(f));
  }
  return prometheus::TextSerializer().Serialize(families);
}

prometheus::MetricFamily CounterFamily(std::string name, std::string help,
                                       double value) {
  prometheus::MetricFamily f{std::move(name), std::move(help),
                             prometheus::MetricType::Counter, {}};
  AddSample(&f, {}, value);
  return f;
}

prometheus::MetricFamily GaugeFamily(std::string name, std::string help,
                                     double value) {
  prometheus::MetricFamily f{std::move(name), std::move(help),
                             prometheus::MetricType::Gauge, {}};
  AddSample(&f, {}, value);
  return f;
}

void AddSample(prometheus::MetricFamily* family,
               std::vector<prometheus::ClientMetric::Label> labels,
               double value) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  if (family->type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  family->metric.push_back(std::move(m));
}

}  // namespace baton::framework

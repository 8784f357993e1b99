// baton-kv-driver: a load driver and end-to-end checker of the sample
// key-value service (baton-kvserver) for the lab, the demo and the kv
// benchmarks.
//
// N client threads, each with its own retrying client (framework/client over
// HTTP) and its own client id, send a mix of INCR on K shared counters and
// PUT of unique keys with unique values to one or more service addresses
// (clients are spread over them round-robin) until --seconds pass, the stop
// file appears or SIGTERM/SIGINT arrives. Every request is one line of a JSONL
// timeline. At the end the driver VERIFIES through the service:
//   - every acknowledged PUT reads back with its value (else: lost);
//   - every counter equals the number of acknowledged INCRs on it, within the
//     INCRs whose outcome is unknown (the client gave up: the server may or
//     may not have executed them). Below the acknowledged count: lost; above
//     acknowledged + unknown: duplicated;
//   - each client's INCR replies on one counter are strictly increasing, and
//     no two acknowledged INCRs of a counter got the same reply (else: the
//     same execution answered two requests = lost).
// It prints and writes a summary JSON (requests, acked, retried, replays,
// unknown, lost, duplicated, gaps with no completed request, per-node answer
// counts). Exit status: 0 all checks passed; 1 lost or duplicated > 0;
// 2 usage error; 3 verification could not read everything back.
//
// Times in the timeline and summary are ms since the driver's start (a
// monotonic clock); summary "start_unix" is the wall-clock time of that start
// (seconds since the epoch) so that the timeline can be lined up with kernel
// timestamps (`ip -ts monitor`).
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/lib/json_output.h"
#include "framework/client/client.h"
#include "nlohmann/json.hpp"
#include "samples/kvservice/kv_client.h"

namespace {

using baton::framework::client::CallResult;
using baton::framework::client::ClientOptions;
using baton::framework::client::RealEnvironment;
using baton::framework::client::Response;
using baton::framework::client::TlsOptions;
using baton::kvservice::KvClient;
using baton::kvservice::KvProtocol;
using baton::kvservice::KvResult;
using json = nlohmann::json;

std::atomic<bool> g_stop{false};
extern "C" void OnSignal(int) { g_stop.store(true); }

// The host that answered (Baton-Node header), when the client library
// reports it (Response::node); empty with a library that does not yet.
template <typename R>
std::string NodeOf(const R& r) {
  if constexpr (requires { r.node; }) {
    return r.node;
  } else {
    return "";
  }
}

struct Options {
  std::vector<std::string> targets;
  int clients = 4;
  int counters = 4;
  double incr_fraction = 0.5;
  double seconds = 10;
  std::string stop_file;
  std::string timeline;
  std::string summary;
  std::string start_file;
  std::string run_id;
  uint64_t seed = 0;
  int interval_ms = 0;
  int attempt_timeout_ms = 500;
  int connect_timeout_ms = 0;  // 0: the attempt timeout covers the handshake
  bool adaptive_timeout = false;
  int hedge_delay_ms = -1;     // -1: no hedging; 0: from the latency estimate
  bool tls = false;
  std::string tls_ca, tls_cert, tls_key;
  int deadline_ms = 30000;
  int max_backoff_ms = 200;
  int64_t max_requests = 1000000;
  int gap_ms = 100;
  bool quiet = false;
};

enum class Outcome { kOk, kUnknown, kError };
const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kOk: return "ok";
    case Outcome::kUnknown: return "unknown";
    case Outcome::kError: return "error";
  }
  return "?";
}

// One request as the driver saw it.
struct Record {
  int client = 0;
  uint64_t seq = 0;
  bool incr = false;
  std::string key;
  std::string value;  // PUT: the value's JSON text; INCR: the reply value.
  double send_ms = 0;
  double finish_ms = 0;
  int attempts = 0;
  bool replayed = false;
  std::string node;
  Outcome outcome = Outcome::kUnknown;
  std::string error;
};

class TimelineWriter {
 public:
  explicit TimelineWriter(const std::string& path) {
    if (!path.empty()) out_.open(path, std::ios::trunc);
  }
  bool ok() const { return !out_.is_open() || out_.good(); }
  void Write(const Record& r) {
    if (!out_.is_open()) return;
    json j = {{"client", r.client},      {"seq", r.seq},
              {"op", r.incr ? "incr" : "put"},
              {"key", r.key},            {"send_ms", r.send_ms},
              {"finish_ms", r.finish_ms}, {"attempts", r.attempts},
              {"replayed", r.replayed},  {"node", r.node},
              {"outcome", OutcomeName(r.outcome)}};
    if (r.incr && r.outcome == Outcome::kOk) j["reply"] = r.value;
    if (!r.error.empty()) j["error"] = r.error;
    std::lock_guard<std::mutex> lock(mu_);
    out_ << j.dump() << '\n';
    if (++lines_ % 256 == 0) out_.flush();
  }

 private:
  std::mutex mu_;
  std::ofstream out_;
  uint64_t lines_ = 0;
};

double MsSince(absl::Time start, absl::Time t) {
  return absl::ToDoubleMilliseconds(t - start);
}

TlsOptions MakeTlsOptions(const Options& o) {
  TlsOptions t;
  t.ca_file = o.tls_ca;
  t.cert_file = o.tls_cert;
  t.key_file = o.tls_key;
  t.enabled = o.tls || !t.ca_file.empty() || !t.cert_file.empty();
  return t;
}

ClientOptions MakeClientOptions(const Options& o, const std::string& id) {
  ClientOptions c;
  c.client_id = id;
  c.async_threads = 1;
  c.retry.attempt_timeout = absl::Milliseconds(o.attempt_timeout_ms);
  c.retry.connect_timeout = absl::Milliseconds(o.connect_timeout_ms);
  c.retry.deadline = absl::Milliseconds(o.deadline_ms);
  c.retry.initial_backoff = absl::Milliseconds(10);
  c.retry.max_backoff = absl::Milliseconds(o.max_backoff_ms);
  c.retry.adaptive.enabled = o.adaptive_timeout;
  if (o.hedge_delay_ms >= 0) {
    c.retry.hedge.enabled = true;
    c.retry.hedge.delay = absl::Milliseconds(o.hedge_delay_ms);  // 0: from p95.
  }
  return c;
}

bool StopRequested(const Options& o, absl::Time start, absl::Time now) {
  if (g_stop.load()) return true;
  if (o.seconds > 0 && now - start >= absl::Seconds(o.seconds)) return true;
  if (!o.stop_file.empty()) {
    std::error_code ec;
    if (std::filesystem::exists(o.stop_file, ec)) return true;
  }
  return false;
}

// The loop of one client thread.
void RunClient(const Options& o, int index, absl::Time start,
               TimelineWriter& timeline, std::vector<Record>& out) {
  const std::string& target = o.targets[index % o.targets.size()];
  const std::string id = absl::StrCat("drv-", o.run_id, "-", index);
  auto kv = KvClient::Connect(KvProtocol::kHttp, target,
                              MakeClientOptions(o, id), MakeTlsOptions(o));
  if (!kv.ok()) {
    std::fprintf(stderr, "client %d: %s\n", index,
                 std::string(kv.status().message()).c_str());
    return;
  }
  std::mt19937_64 rng(o.seed * 1000003ULL + static_cast<uint64_t>(index));
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  std::uniform_int_distribution<int> pick(0, std::max(0, o.counters - 1));
  int64_t last_check_ms = -1;
  for (int64_t n = 0; n < o.max_requests; ++n) {
    const absl::Time now = RealEnvironment().Now();
    // The stop file is looked at every 50 ms, not per request.
    const int64_t ms = static_cast<int64_t>(MsSince(start, now));
    if (g_stop.load() ||
        (ms / 50 != last_check_ms && StopRequested(o, start, now))) {
      break;
    }
    last_check_ms = ms / 50;
    Record r;
    r.client = index;
    r.incr = o.counters > 0 && coin(rng) < o.incr_fraction;
    KvResult res;
    if (r.incr) {
      r.key = absl::StrCat("drv-", o.run_id, "-ctr-", pick(rng));
      res = (*kv)->Incr(r.key, 1);
    } else {
      r.key = absl::StrCat("drv-", o.run_id, "-put-", index, "-", n);
      r.value = json(absl::StrCat("v-", o.run_id, "-", index, "-", n)).dump();
      res = (*kv)->Put(r.key, r.value);
    }
    const CallResult& c = res.call;
    r.seq = c.seq;
    r.send_ms = MsSince(start, c.started);
    r.finish_ms = MsSince(start, c.finished);
    r.attempts = c.attempts;
    r.replayed = c.response.replayed;
    r.node = NodeOf(c.response);
    if (res.ok()) {
      r.outcome = Outcome::kOk;
      if (r.incr) r.value = res.value_json;
    } else if (!c.status.ok()) {
      // No final answer: executed or not, nobody knows.
      r.outcome = Outcome::kUnknown;
      r.error = std::string(c.status.message());
    } else {
      r.outcome = Outcome::kError;
      r.error = absl::StrCat(absl::StatusCodeToString(res.code), ": ",
                             res.error.substr(0, 200));
    }
    timeline.Write(r);
    out.push_back(std::move(r));
    if (o.interval_ms > 0) {
      RealEnvironment().SleepFor(absl::Milliseconds(o.interval_ms));
    }
  }
}

struct Gap {
  double start_ms = 0;
  double end_ms = 0;
  std::string node_before;
  std::string node_after;
  double duration() const { return end_ms - start_ms; }
};

// Intervals between consecutive completed (acknowledged) requests, from the
// start of the run to its end. `done` must be sorted by finish time.
std::vector<Gap> Gaps(const std::vector<const Record*>& done, double end_ms) {
  std::vector<Gap> gaps;
  double prev = 0;
  std::string prev_node;
  for (const Record* r : done) {
    gaps.push_back({prev, r->finish_ms, prev_node, r->node});
    prev = r->finish_ms;
    prev_node = r->node;
  }
  gaps.push_back({prev, std::max(prev, end_ms), prev_node, ""});
  return gaps;
}

json GapJson(const Gap& g) {
  json j = {{"start_ms", g.start_ms},
            {"end_ms", g.end_ms},
            {"duration_ms", g.duration()}};
  if (!g.node_before.empty() || !g.node_after.empty()) {
    j["node_before"] = g.node_before;
    j["node_after"] = g.node_after;
  }
  return j;
}

// Reads `keys` back through the service with `threads` clients in parallel.
// Returns key -> value JSON text ("" when absent); missing entries = could not
// read.
std::map<std::string, std::string> ReadBack(const Options& o,
                                            const std::vector<std::string>& keys,
                                            int threads) {
  std::map<std::string, std::string> values;
  std::mutex mu;
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      Options vo = o;
      vo.attempt_timeout_ms = std::max(o.attempt_timeout_ms, 2000);
      vo.deadline_ms = std::max(o.deadline_ms, 60000);
      auto kv = KvClient::Connect(
          KvProtocol::kHttp, o.targets[t % o.targets.size()],
          MakeClientOptions(vo, absl::StrCat("drv-", o.run_id, "-verify-", t)),
          MakeTlsOptions(o));
      if (!kv.ok()) return;
      for (size_t i = next++; i < keys.size(); i = next++) {
        KvResult r = (*kv)->Get(keys[i]);
        std::string v;
        if (r.ok()) {
          v = r.value_json;
        } else if (!(r.call.status.ok() &&
                     r.code == absl::StatusCode::kNotFound)) {
          continue;  // Could not read it.
        }
        std::lock_guard<std::mutex> lock(mu);
        values[keys[i]] = v;
      }
    });
  }
  for (auto& th : pool) th.join();
  return values;
}

bool SameJson(const std::string& a, const std::string& b) {
  json ja = json::parse(a, nullptr, false);
  json jb = json::parse(b, nullptr, false);
  if (ja.is_discarded() || jb.is_discarded()) return a == b;
  return ja == jb;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string targets;
  CLI::App app{
      "baton-kv-driver: concurrent clients of baton-kvserver (INCR on shared "
      "counters, PUT of unique keys) with a per-request JSONL timeline and an "
      "end-to-end check: lost and duplicated writes, outages, who answered"};
  app.add_option("--target", targets,
                 "service address(es) HOST:PORT[,HOST:PORT...]; clients are "
                 "spread over them")
      ->required();
  app.add_option("--clients", o.clients, "concurrent clients (default 4)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--counters", o.counters,
                 "shared counters K (default 4; 0: PUTs only)")
      ->check(CLI::Range(0, 100000));
  app.add_option("--incr-fraction", o.incr_fraction,
                 "fraction of requests that are INCRs (default 0.5)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--seconds", o.seconds,
                 "run time in seconds (default 10; 0: until stop file or "
                 "signal, bounded by --max-requests)");
  app.add_option("--stop-file", o.stop_file,
                 "stop when this file exists (checked every 50 ms)");
  app.add_option("--timeline", o.timeline, "JSONL timeline, one line a request");
  app.add_option("--summary", o.summary, "summary JSON file (also printed)");
  app.add_option("--start-file", o.start_file,
                 "write the wall-clock start (seconds since the epoch; the "
                 "timeline's 0) here at once");
  app.add_option("--run-id", o.run_id,
                 "prefix of every key and client id (default: random hex)");
  app.add_option("--seed", o.seed,
                 "seed of the operation mix (default: random, printed)");
  app.add_option("--interval-ms", o.interval_ms,
                 "pause of each client between requests (default 0)")
      ->check(CLI::Range(0, 60000));
  app.add_option("--attempt-timeout-ms", o.attempt_timeout_ms,
                 "one attempt's timeout (default 500)")
      ->check(CLI::Range(1, 600000));
  app.add_option("--connect-timeout-ms", o.connect_timeout_ms,
                 "a new connection's handshake timeout within an attempt "
                 "(default 0: the attempt timeout)")
      ->check(CLI::Range(0, 600000));
  app.add_option("--deadline-ms", o.deadline_ms,
                 "a request's overall deadline; then its outcome is unknown "
                 "(default 30000)")
      ->check(CLI::Range(1, 3600000));
  app.add_option("--max-backoff-ms", o.max_backoff_ms,
                 "longest wait between attempts (default 200)")
      ->check(CLI::Range(1, 60000));
  app.add_option("--max-requests", o.max_requests,
                 "most requests per client (default 1000000)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app.add_option("--gap-ms", o.gap_ms,
                 "list every interval without a completed request longer "
                 "than this (default 100)");
  app.add_flag("--adaptive-timeout", o.adaptive_timeout,
               "derive attempt timeouts from observed latency (p99 x 3, at "
               "least 10 ms, at most --attempt-timeout-ms)");
  app.add_option("--hedge-delay-ms", o.hedge_delay_ms,
                 "hedge: a second attempt of the same request when none "
                 "answered after this long (0: the p95 of observed latency; "
                 "default -1: no hedging)")
      ->check(CLI::Range(-1, 600000));
  app.add_flag("--tls", o.tls,
               "speak TLS (system CA store unless --tls-ca); implied by the "
               "other --tls options and by https:// targets");
  app.add_option("--tls-ca", o.tls_ca, "PEM CA file to verify the servers with");
  app.add_option("--tls-cert", o.tls_cert, "PEM client certificate (mTLS)");
  app.add_option("--tls-key", o.tls_key, "PEM private key of --tls-cert");
  app.add_flag("--quiet", o.quiet, "print only the summary's key line");
  CLI11_PARSE(app, argc, argv);

  for (absl::string_view t : absl::StrSplit(targets, ',', absl::SkipEmpty())) {
    o.targets.emplace_back(t);
  }
  if (o.targets.empty()) {
    std::fprintf(stderr, "--target: no address\n");
    return 2;
  }
  if (o.seed == 0) o.seed = RealEnvironment().Random() | 1;
  if (o.run_id.empty()) {
    o.run_id = absl::StrFormat("%08x", RealEnvironment().Random() & 0xffffffff);
  }
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);

  TimelineWriter timeline(o.timeline);
  if (!timeline.ok()) {
    std::fprintf(stderr, "cannot write %s\n", o.timeline.c_str());
    return 2;
  }
  // The one wall-clock reading: lines the run up with kernel timestamps.
  const double start_unix = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  const absl::Time start = RealEnvironment().Now();
  if (!o.start_file.empty()) {
    std::ofstream f(o.start_file, std::ios::trunc);
    f << absl::StrFormat("%.6f\n", start_unix);
  }
  if (!o.quiet) {
    std::printf("baton-kv-driver: run %s seed %llu, %d clients -> %s, %s\n",
                o.run_id.c_str(), static_cast<unsigned long long>(o.seed),
                o.clients, targets.c_str(),
                o.seconds > 0 ? absl::StrCat(o.seconds, " s").c_str()
                              : "until stopped");
    std::fflush(stdout);
  }
  std::vector<std::vector<Record>> per_client(o.clients);
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < o.clients; ++i) {
      threads.emplace_back([&, i] {
        RunClient(o, i, start, timeline, per_client[i]);
      });
    }
    for (auto& t : threads) t.join();
  }
  const double end_ms = MsSince(start, RealEnvironment().Now());

  // Tally.
  int64_t requests = 0, acked = 0, retried = 0, replays = 0, unknown = 0,
          errors = 0, unknown_puts = 0;
  std::map<std::string, int64_t> by_node;
  std::map<std::string, int64_t> incr_acked, incr_unknown;
  std::vector<std::pair<std::string, std::string>> acked_puts;
  std::vector<const Record*> done_all;
  json per_client_gaps = json::array();
  int64_t increasing_violations = 0, reply_collisions = 0;
  std::map<std::string, std::set<int64_t>> replies;
  int64_t max_reply_over = 0;
  std::map<std::string, int64_t> max_reply;
  for (int i = 0; i < o.clients; ++i) {
    std::vector<const Record*> done;
    std::map<std::string, int64_t> last_reply;
    for (const Record& r : per_client[i]) {
      ++requests;
      if (r.attempts > 1) ++retried;
      if (r.outcome == Outcome::kUnknown) {
        ++unknown;
        if (r.incr) {
          ++incr_unknown[r.key];
        } else {
          ++unknown_puts;
        }
        continue;
      }
      if (r.outcome == Outcome::kError) {
        ++errors;
        continue;
      }
      ++acked;
      if (r.replayed) ++replays;
      ++by_node[r.node.empty() ? "?" : r.node];
      done.push_back(&r);
      if (r.incr) {
        ++incr_acked[r.key];
        int64_t v = 0;
        if (!absl::SimpleAtoi(r.value, &v)) {
          ++reply_collisions;  // A reply that is not a number: wrong.
          continue;
        }
        auto it = last_reply.find(r.key);
        if (it != last_reply.end() && v <= it->second) ++increasing_violations;
        last_reply[r.key] = v;
        if (!replies[r.key].insert(v).second) ++reply_collisions;
        max_reply[r.key] = std::max(max_reply[r.key], v);
      } else {
        acked_puts.emplace_back(r.key, r.value);
      }
    }
    std::sort(done.begin(), done.end(), [](const Record* a, const Record* b) {
      return a->finish_ms < b->finish_ms;
    });
    std::vector<Gap> gaps = Gaps(done, end_ms);
    auto longest = std::max_element(
        gaps.begin(), gaps.end(),
        [](const Gap& a, const Gap& b) { return a.duration() < b.duration(); });
    json jc = GapJson(*longest);
    jc["client"] = i;
    jc["target"] = o.targets[i % o.targets.size()];
    jc["requests"] = per_client[i].size();
    per_client_gaps.push_back(jc);
    done_all.insert(done_all.end(), done.begin(), done.end());
  }
  std::sort(done_all.begin(), done_all.end(),
            [](const Record* a, const Record* b) {
              return a->finish_ms < b->finish_ms;
            });
  std::vector<Gap> gaps = Gaps(done_all, end_ms);
  Gap longest;
  json long_gaps = json::array();
  for (const Gap& g : gaps) {
    if (g.duration() > longest.duration()) longest = g;
    if (g.duration() > o.gap_ms) long_gaps.push_back(GapJson(g));
  }

  // Verify through the service.
  std::vector<std::string> keys;
  for (const auto& [k, v] : acked_puts) keys.push_back(k);
  std::set<std::string> counter_keys;
  for (const auto& [k, n] : incr_acked) counter_keys.insert(k);
  for (const auto& [k, n] : incr_unknown) counter_keys.insert(k);
  keys.insert(keys.end(), counter_keys.begin(), counter_keys.end());
  std::map<std::string, std::string> read =
      ReadBack(o, keys, std::min(8, std::max(1, o.clients)));
  int64_t lost = 0, duplicated = 0, unverified = 0, lost_puts = 0,
          lost_incrs = 0;
  json counters = json::array();
  for (const auto& [k, v] : acked_puts) {
    auto it = read.find(k);
    if (it == read.end()) {
      ++unverified;
    } else if (!SameJson(it->second, v)) {
      ++lost_puts;
    }
  }
  for (const std::string& k : counter_keys) {
    const int64_t a = incr_acked.count(k) ? incr_acked[k] : 0;
    const int64_t u = incr_unknown.count(k) ? incr_unknown[k] : 0;
    auto it = read.find(k);
    json jc = {{"key", k}, {"acked", a}, {"unknown", u}};
    if (it == read.end()) {
      ++unverified;
      jc["value"] = nullptr;
      counters.push_back(jc);
      continue;
    }
    int64_t value = 0;
    if (!it->second.empty() && !absl::SimpleAtoi(it->second, &value)) {
      ++unverified;
      jc["value"] = it->second;
      counters.push_back(jc);
      continue;
    }
    jc["value"] = value;
    counters.push_back(jc);
    // Lower bound of what was executed: every acknowledged INCR; upper
    // bound: also every unknown one.
    if (value < a) lost_incrs += a - value;
    if (value > a + u) duplicated += value - a - u;
    // An acknowledged reply above the final value: the counter went back.
    if (max_reply.count(k) && max_reply[k] > value) {
      max_reply_over += max_reply[k] - value;
    }
  }
  lost = lost_puts + lost_incrs + reply_collisions + max_reply_over;

  json by_node_json = json::object();
  for (const auto& [n, c] : by_node) by_node_json[n] = c;
  json s = {
      {"run_id", o.run_id},
      {"seed", o.seed},
      {"targets", o.targets},
      {"clients", o.clients},
      {"start_unix", start_unix},
      {"duration_ms", end_ms},
      {"requests", requests},
      {"acked", acked},
      {"retried", retried},
      {"replays", replays},
      {"unknown", unknown},
      {"unknown_puts", unknown_puts},
      {"errors", errors},
      {"acked_puts", static_cast<int64_t>(acked_puts.size())},
      {"acked_incrs", acked - static_cast<int64_t>(acked_puts.size())},
      {"lost", lost},
      {"lost_puts", lost_puts},
      {"lost_incrs", lost_incrs},
      {"incr_reply_collisions", reply_collisions},
      {"incr_reply_above_final", max_reply_over},
      {"incr_not_increasing", increasing_violations},
      {"duplicated", duplicated},
      {"unverified", unverified},
      {"outage", GapJson(longest)},
      {"gaps", long_gaps},
      {"per_client", per_client_gaps},
      {"by_node", by_node_json},
      {"counters", counters},
  };
  // A summary that cannot be written is reported, the exit status stays the
  // verdict on the requests.
  (void)baton::bench::WriteJsonFileOrReport(o.summary, s);
  if (!o.quiet) {
    json brief = s;
    brief.erase("per_client");
    brief.erase("counters");
    std::printf("%s\n", brief.dump(2).c_str());
  }
  std::printf(
      "baton-kv-driver: %lld requests, %lld acked, %lld retried, %lld replays, "
      "%lld unknown, %lld errors; lost %lld, duplicated %lld, unverified "
      "%lld; longest outage %.0f ms at %.0f ms\n",
      static_cast<long long>(requests), static_cast<long long>(acked),
      static_cast<long long>(retried), static_cast<long long>(replays),
      static_cast<long long>(unknown), static_cast<long long>(errors),
      static_cast<long long>(lost), static_cast<long long>(duplicated),
      static_cast<long long>(unverified), longest.duration(), longest.start_ms);
  if (lost > 0 || duplicated > 0 || increasing_violations > 0) return 1;
  if (unverified > 0) return 3;
  return 0;
}

#include "framework/pipeline.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <random>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "framework/absl_compat.h"
#include "spdlog/spdlog.h"

namespace baton::framework {

using internal::AV;
using internal::SV;
using storage::Condition;
using storage::KeyValue;
using storage::Versioned;
using storage::Write;

namespace {

// --- Key layout (see pipeline.h) -------------------------------------------

const std::string& FrameworkPrefix() {
  static const std::string* p =
      new std::string(std::string(storage::kReservedPrefix) + "fw/");
  return *p;
}
std::string RecordPrefix() { return FrameworkPrefix() + "c/"; }
std::string IndexPrefix() { return FrameworkPrefix() + "t/"; }
std::string WatermarkIndexPrefix() { return FrameworkPrefix() + "u/"; }
std::string Hex16(uint64_t v) { return absl::StrFormat("%016x", v); }

// The key scope of a principal: "" (unauthenticated: today's layout), or
// "a/" + the principal with \0 -> \1\1 and \1 -> \1\2 + "\0". The escaped
// principal holds no \0, so the first \0 after "a/" ends it: no two
// principals share a scope, and no scoped key is an unscoped one (those
// start with "s/" or "k/", or hold no \0 at all: client ids).
std::string Scope(std::string_view principal) {
  if (principal.empty()) return "";
  std::string out = "a/";
  out.reserve(principal.size() + 4);
  for (char c : principal) {
    if (c == '\0') {
      out.append("\x01\x01", 2);
    } else if (c == '\x01') {
      out.append("\x01\x02", 2);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('\0');
  return out;
}

// The part of a record key after RecordPrefix(); also the suffix of its age
// index entry.
std::string IdPart(std::string_view scope, const RequestId& id) {
  if (id.kind == RequestId::Kind::kClientSeq) {
    return absl::StrCat(AV(scope), "s/", id.client_id,
                        absl::string_view("\0", 1), Hex16(id.seq));
  }
  return absl::StrCat(AV(scope), "k/", id.idempotency_key);
}

// A (client, seq) client within its scope: scope + client id. Client ids
// hold no \0, so the last \0 (if any) ends the scope.
std::string WatermarkKey(std::string_view client) {
  return absl::StrCat(FrameworkPrefix(), "w/", AV(client));
}
std::string ClientRecordPrefix(std::string_view client) {
  const size_t end = client.rfind('\0');
  const std::string_view scope =
      end == std::string_view::npos ? std::string_view() : client.substr(0, end + 1);
  const std::string_view id =
      end == std::string_view::npos ? client : client.substr(end + 1);
  return absl::StrCat(RecordPrefix(), AV(scope), "s/", AV(id),
                      absl::string_view("\0", 1));
}
// An age index entry: <prefix><micros, 16 hex>/<suffix>.
std::string AgeIndexKey(const std::string& prefix, absl::Time t,
                        std::string_view suffix) {
  const int64_t micros = std::max<int64_t>(absl::ToUnixMicros(t), 0);
  return absl::StrCat(prefix, Hex16(static_cast<uint64_t>(micros)), "/",
                      AV(suffix));
}

bool ParseHex16(std::string_view s, uint64_t* out) {
  if (s.size() != 16) return false;
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return false;
    }
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  *out = v;
  return true;
}
// Splits an age index entry (after its prefix) into time and suffix.
bool ParseAgeIndexEntry(std::string_view rest, uint64_t* micros,
                        std::string_view* suffix) {
  if (rest.size() < 17 || rest[16] != '/' ||
      !ParseHex16(rest.substr(0, 16), micros)) {
    return false;
  }
  *suffix = rest.substr(17);
  return true;
}

bool ValidClientId(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c > 0x20 && c < 0x7f; });
}
bool ValidIdempotencyKey(std::string_view s) {
  if (s.empty() || s.size() > 255) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c >= 0x20 && c < 0x7f; });
}

// --- Pipeline errors ------------------------------------------------------

constexpr std::string_view kPipelineErrorPayload =
    "type.baton.dev/pipeline-error";

absl::Status MakePipelineError(absl::Status s, std::string_view kind) {
  s.SetPayload(AV(kPipelineErrorPayload), absl::Cord(AV(kind)));
  return s;
}

absl::Status AcknowledgedError(const RequestId& id) {
  return MakePipelineError(
      absl::FailedPreconditionError(absl::StrCat(
          "request ", id.seq, " of client ", id.client_id,
          " was acknowledged by the client and its record collected")),
      "acknowledged");
}

absl::Status KeyReusedError() {
  return MakePipelineError(
      absl::FailedPreconditionError(
          "this request id was already used for a different request"),
      "key-reused");
}

absl::Status InProgressError() {
  return MakePipelineError(
      absl::AbortedError(
          "a request with this id is still in progress; retry later"),
      "in-progress");
}

absl::Status ConflictsExhaustedError(int attempts) {
  return absl::AbortedError(absl::StrCat(
      "request conflicted with concurrent requests ", attempts,
      " times; retry"));
}

// A read, or a conditions-only commit (which only reads), whose outcome is
// unknown changed nothing: it is answered as retryable, never as final.
absl::Status ReadFault(absl::Status s) {
  if (s.code() != absl::StatusCode::kUnknown) return s;
  return absl::UnavailableError(
      absl::StrCat("store read outcome unknown (", s.message(), "); retry"));
}

// --- Encoding of a completion record --------------------------------------

void PutU64(std::string* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void PutBytes(std::string* out, std::string_view b) {
  PutU64(out, b.size());
  out->append(b);
}
bool GetU64(std::string_view* in, uint64_t* v) {
  if (in->size() < 8) return false;
  uint64_t r = 0;
  for (int i = 0; i < 8; ++i) r = (r << 8) | static_cast<uint8_t>((*in)[i]);
  in->remove_prefix(8);
  *v = r;
  return true;
}
bool GetBytes(std::string_view* in, std::string* out) {
  uint64_t n;
  if (!GetU64(in, &n) || in->size() < n) return false;
  out->assign(in->data(), n);
  in->remove_prefix(n);
  return true;
}

constexpr std::string_view kRecordMagic = "bcr1";

// --- The transaction ------------------------------------------------------

absl::Status CheckKey(std::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("empty key");
  if (storage::IsReservedKey(key)) {
    return absl::InvalidArgumentError(
        "key is in the framework's reserved key space");
  }
  return absl::OkStatus();
}

class TransactionImpl : public Transaction {
 public:
  // `consistency`: how fresh the store reads of Get() must be. kMayBeStale
  // only for an attempt whose commit (or read-only confirmation) checks
  // every version read; Scan always reads the latest state. Put refuses
  // values over `max_value_bytes`, counting them in `values_refused`.
  // `wait` (may be null) counts the store reads in flight.
  TransactionImpl(storage::StableStore& store,
                  storage::ReadConsistency consistency, size_t max_value_bytes,
                  std::atomic<uint64_t>& values_refused, StoreWait* wait)
      : store_(store),
        consistency_(consistency),
        max_value_bytes_(max_value_bytes),
        values_refused_(values_refused),
        wait_(wait) {}

  absl::StatusOr<Versioned> Get(std::string_view key) override {
    if (absl::Status s = CheckKey(key); !s.ok()) return s;
    if (auto it = writes_.find(key); it != writes_.end()) {
      if (!it->second) return Versioned{};
      return Versioned{*it->second, kUncommittedVersion};
    }
    absl::StatusOr<Versioned> v = ReadStore(key);
    if (!v.ok()) return ReadFault(v.status());
    reads_.emplace(std::string(key), v->version);
    return v;
  }

  absl::StatusOr<std::vector<KeyValue>> Scan(std::string_view prefix,
                                             std::string_view start_after,
                                             size_t limit) override {
    if (storage::IsReservedKey(prefix)) {
      return absl::InvalidArgumentError(
          "prefix is in the framework's reserved key space");
    }
    storage::ScanOptions opts;
    opts.prefix = std::string(prefix);
    opts.start_after = std::string(start_after);
    opts.limit = limit;
    absl::StatusOr<std::vector<KeyValue>> got = [&] {
      StoreWait::Scope reading(wait_);
      return store_.Scan(opts);
    }();
    if (!got.ok()) return ReadFault(got.status());
    const bool truncated = got->size() >= limit;
    std::map<std::string, KeyValue, std::less<>> merged;
    for (KeyValue& kv : *got) {
      if (storage::IsReservedKey(kv.key)) continue;
      reads_.emplace(kv.key, kv.version);
      std::string k = kv.key;
      merged.emplace(std::move(k), std::move(kv));
    }
    const std::string last = merged.empty() ? "" : merged.rbegin()->first;
    for (const auto& [key, value] : writes_) {
      if (key.substr(0, prefix.size()) != prefix) continue;
      if (!start_after.empty() && key <= start_after) continue;
      if (truncated && key > last) continue;
      if (!value) {
        merged.erase(key);
      } else {
        merged[key] = KeyValue{key, *value, kUncommittedVersion};
      }
    }
    std::vector<KeyValue> out;
    for (auto& [key, kv] : merged) {
      if (out.size() >= limit) break;
      out.push_back(std::move(kv));
    }
    return out;
  }

  absl::Status Put(std::string_view key, std::string_view value) override {
    if (absl::Status s = CheckKey(key); !s.ok()) return s;
    if (value.size() > max_value_bytes_) {
      values_refused_.fetch_add(1, std::memory_order_relaxed);
      absl::Status refused = absl::ResourceExhaustedError(absl::StrCat(
          "value of ", value.size(), " bytes for key \"",
          absl::CHexEscape(AV(key.substr(0, 64))),
          "\" exceeds the pipeline's max_value_bytes (", max_value_bytes_,
          ")"));
      if (refusal_.ok()) refusal_ = refused;
      return refused;
    }
    writes_[std::string(key)] = std::string(value);
    return absl::OkStatus();
  }

  absl::Status Delete(std::string_view key) override {
    if (absl::Status s = CheckKey(key); !s.ok()) return s;
    writes_[std::string(key)] = std::nullopt;
    return absl::OkStatus();
  }

  bool has_writes() const { return !writes_.empty(); }
  bool stale() const {
    return consistency_ == storage::ReadConsistency::kMayBeStale;
  }
  size_t read_count() const { return reads_.size(); }
  // The first refused Put (OK: none): the request must commit nothing.
  const absl::Status& refusal() const { return refusal_; }

  std::vector<Condition> Conditions() const {
    std::vector<Condition> c;
    c.reserve(reads_.size() + 3);
    for (const auto& [key, version] : reads_) c.push_back({key, version});
    return c;
  }
  std::vector<Write> Writes() const {
    std::vector<Write> w;
    w.reserve(writes_.size() + 2);
    for (const auto& [key, value] : writes_) {
      w.push_back(value ? Write::Put(key, *value) : Write::Delete(key));
    }
    return w;
  }

 private:
  absl::StatusOr<Versioned> ReadStore(std::string_view key) {
    StoreWait::Scope reading(wait_);
    if (!stale()) return store_.Get(key);
    absl::StatusOr<std::vector<Versioned>> v = store_.GetMany(
        {std::string(key)}, storage::ReadOptions{consistency_});
    if (!v.ok()) return v.status();
    if (v->size() != 1) return absl::InternalError("GetMany: wrong count");
    return std::move(v->front());
  }

  storage::StableStore& store_;
  const storage::ReadConsistency consistency_;
  const size_t max_value_bytes_;
  std::atomic<uint64_t>& values_refused_;
  StoreWait* const wait_;
  absl::Status refusal_;
  std::map<std::string, uint64_t, std::less<>> reads_;
  std::map<std::string, std::optional<std::string>, std::less<>> writes_;
};

class FunctionHandler : public Handler {
 public:
  explicit FunctionHandler(HandlerFunction fn) : fn_(std::move(fn)) {}
  absl::StatusOr<Reply> Handle(const Request& request,
                               Transaction& txn) override {
    return fn_(request, txn);
  }

 private:
  HandlerFunction fn_;
};

storage::ReadConsistency Consistency(bool stale) {
  return stale ? storage::ReadConsistency::kMayBeStale
               : storage::ReadConsistency::kLatest;
}

// How many clients FirstArrival() remembers (beyond that, it forgets them
// all: they only lose the shortcut).
constexpr size_t kMaxClients = 65536;

// The in-flight timer re-reads the clock at least this often, so that a
// clock that jumps (NTP; a simulated clock in tests) is noticed.
constexpr absl::Duration kTimerRecheck = absl::Milliseconds(50);

}  // namespace

std::shared_ptr<Handler> MakeHandler(HandlerFunction fn) {
  return std::make_shared<FunctionHandler>(std::move(fn));
}

PipelineError GetPipelineError(const absl::Status& status) {
  auto p = status.GetPayload(AV(kPipelineErrorPayload));
  if (!p) return PipelineError::kNone;
  const std::string kind(*p);
  if (kind == "key-reused") return PipelineError::kKeyReused;
  if (kind == "in-progress") return PipelineError::kInProgress;
  if (kind == "acknowledged") return PipelineError::kAlreadyAcknowledged;
  if (kind == "unknown") return PipelineError::kOutcomeUnknown;
  if (kind == "fence-not-ready") return PipelineError::kFenceNotReady;
  if (kind == "deposed") return PipelineError::kDeposed;
  return PipelineError::kNone;
}

// A saved completion record.
struct RequestPipeline::Record {
  std::string fingerprint;
  uint64_t token = 0;  // Which attempt wrote it (resolves kUnknown).
  int64_t time_micros = 0;
  Reply reply;

  std::string Encode() const {
    std::string out(kRecordMagic);
    PutBytes(&out, fingerprint);
    PutU64(&out, token);
    PutU64(&out, static_cast<uint64_t>(time_micros));
    PutU64(&out, static_cast<uint64_t>(reply.code));
    PutBytes(&out, reply.content_type);
    PutBytes(&out, reply.body);
    return out;
  }

  static std::optional<Record> Decode(std::string_view in) {
    if (in.substr(0, kRecordMagic.size()) != kRecordMagic) return std::nullopt;
    in.remove_prefix(kRecordMagic.size());
    Record r;
    uint64_t time = 0, code = 0;
    if (!GetBytes(&in, &r.fingerprint) || !GetU64(&in, &r.token) ||
        !GetU64(&in, &time) || !GetU64(&in, &code) ||
        !GetBytes(&in, &r.reply.content_type) ||
        !GetBytes(&in, &r.reply.body) || !in.empty()) {
      return std::nullopt;
    }
    r.time_micros = static_cast<int64_t>(time);
    r.reply.code = static_cast<absl::StatusCode>(code);
    return r;
  }
};

// What one dedup lookup saw.
struct RequestPipeline::DedupView {
  std::optional<Record> record;
  // (client, seq) ids only: the watermark key, its version (0: absent) and
  // the acknowledged seq it holds (0: none).
  std::string watermark_key;
  uint64_t watermark_version = 0;
  uint64_t acked = 0;
  // Read with kMayBeStale: the view may be older than the store.
  bool stale = false;
};

absl::StatusOr<RequestPipeline::DedupView> RequestPipeline::ReadDedup(
    const std::string& client, const std::string& record_key, bool stale) {
  DedupView view;
  view.stale = stale;
  std::vector<std::string> keys = {record_key};
  if (!client.empty()) {
    view.watermark_key = WatermarkKey(client);
    keys.push_back(view.watermark_key);
  }
  absl::StatusOr<std::vector<Versioned>> got = [&] {
    StoreWait::Scope reading(&store_wait_);
    return store_.GetMany(keys, storage::ReadOptions{Consistency(stale)});
  }();
  if (!got.ok()) return got.status();
  if (got->size() != keys.size()) {
    return absl::InternalError("GetMany returned the wrong number of values");
  }
  if ((*got)[0].present()) {
    view.record = Record::Decode((*got)[0].value);
    if (!view.record) {
      return absl::DataLossError(absl::StrCat(
          "corrupt completion record \"", absl::CHexEscape(record_key), "\""));
    }
  }
  if (keys.size() > 1) {
    const Versioned& wm = (*got)[1];
    view.watermark_version = wm.version;
    if (!wm.present() || !absl::SimpleAtoi(wm.value, &view.acked)) {
      view.acked = 0;
    }
    // A latest read is the truth (also a watermark GC expired: its version
    // is then 0); a stale one only when it is not older than what we know.
    absl::MutexLock lock(&clients_mu_);
    auto it = clients_.find(client);
    if (it != clients_.end() &&
        (!stale || !it->second.watermark_known ||
         it->second.watermark_version <= view.watermark_version)) {
      it->second.watermark_known = true;
      it->second.watermark_version = view.watermark_version;
      it->second.acked = view.acked;
    }
  }
  return view;
}

bool RequestPipeline::FirstArrival(const std::string& client, uint64_t seq,
                                   DedupView* view) {
  absl::MutexLock lock(&clients_mu_);
  auto it = clients_.find(client);
  if (it == clients_.end()) {
    if (clients_.size() >= kMaxClients) clients_.clear();
    it = clients_.emplace(client, ClientState{}).first;
  }
  ClientState& c = it->second;
  if (seq + kSeqWindow <= c.max_seq) return false;  // Too old to tell.
  if (seq > c.max_seq) {
    // The window slides up: forget the seqs that fall out of it.
    if (seq - c.max_seq >= kSeqWindow) {
      c.recent.reset();
    } else {
      for (uint64_t s = c.max_seq + 1; s < seq; ++s) c.recent.reset(s % kSeqWindow);
    }
    c.max_seq = seq;
  } else if (c.recent.test(seq % kSeqWindow)) {
    return false;  // A retry.
  }
  c.recent.set(seq % kSeqWindow);
  if (!c.watermark_known || seq <= c.acked) return false;
  view->record.reset();
  view->watermark_key = WatermarkKey(client);
  view->watermark_version = c.watermark_version;
  view->acked = c.acked;
  view->stale = true;
  lookups_skipped_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void RequestPipeline::AddDedupConditions(const DedupView& view,
                                         const std::string& record_key,
                                         std::vector<Condition>* conditions) {
  conditions->push_back({record_key, 0});
  // A latest lookup needs no watermark condition: it read the record, then
  // the watermark, and GC writes the watermark before it deletes records.
  if (view.stale && !view.watermark_key.empty()) {
    conditions->push_back({view.watermark_key, view.watermark_version});
  }
}

RequestPipeline::RequestPipeline(storage::StableStore& store, Clock& clock,
                                 PipelineOptions options)
    : store_(store),
      clock_(clock),
      store_wait_(clock),
      options_(options),
      // Distinguishes this process's attempts from other processes' when a
      // kUnknown commit is resolved; only affects the "replayed" flag.
      instance_nonce_((static_cast<uint64_t>(std::random_device()()) << 32) ^
                      std::random_device()()) {}

RequestPipeline::~RequestPipeline() {
  StopBackgroundGc();
  {
    absl::MutexLock lock(&mu_);
    timer_stop_ = true;
    timer_wake_.SignalAll();
  }
  if (timer_thread_.joinable()) timer_thread_.join();
}

std::string RequestPipeline::Fingerprint(const Request& request) {
  std::string data;
  data.reserve(request.operation.size() + request.path.size() +
               request.body.size() + 24);
  PutBytes(&data, request.operation);
  PutBytes(&data, request.path);
  PutBytes(&data, request.body);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // Fetched once: EVP_sha256() makes OpenSSL 3 look the algorithm up again
  // (under a lock) on every digest.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (sha256 == nullptr ||
      EVP_Digest(data.data(), data.size(), md, &len, sha256, nullptr) != 1) {
    spdlog::critical("EVP_Digest(SHA-256) failed");
    std::abort();
  }
  return std::string(reinterpret_cast<const char*>(md), len);
}

absl::Status RequestPipeline::CheckRequest(const RequestId& id,
                                           const Request& request,
                                           std::optional<uint64_t>* ack) {
  if (request.principal.size() > kMaxPrincipalBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "principal must be at most ", kMaxPrincipalBytes, " bytes"));
  }
  switch (id.kind) {
    case RequestId::Kind::kNone:
      break;
    case RequestId::Kind::kClientSeq:
      if (!ValidClientId(id.client_id)) {
        return absl::InvalidArgumentError(
            "client id must be 1..128 printable ASCII characters without "
            "spaces");
      }
      // A client has the replies of seqs below the one it is sending, never
      // of this one or later: anything else would let one request retire
      // the client's future requests.
      if (id.acked && *id.acked >= id.seq) {
        acks_refused_.fetch_add(1, std::memory_order_relaxed);
      } else if (id.acked && *id.acked > 0) {
        *ack = id.acked;
      }
      break;
    case RequestId::Kind::kIdempotencyKey:
      if (!ValidIdempotencyKey(id.idempotency_key)) {
        return absl::InvalidArgumentError(
            "idempotency key must be 1..255 printable ASCII characters");
      }
      break;
  }
  return absl::OkStatus();
}

void RequestPipeline::NoteAck(const std::string& client, uint64_t acked) {
  absl::MutexLock lock(&mu_);
  NoteAckLocked(client, acked);
}

void RequestPipeline::NoteAckLocked(const std::string& client,
                                    uint64_t acked) {
  auto it = pending_acks_.find(client);
  if (it != pending_acks_.end()) {
    it->second = std::max(it->second, acked);
    return;
  }
  if (pending_acks_.size() >= kMaxPendingAcks) {
    pending_acks_dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  pending_acks_.emplace(client, acked);
}

// --- Retries of a running id: parked, resumed or timed out ------------------

void RequestPipeline::ParkLocked(std::string key, absl::Time deadline,
                                 absl::AnyInvocable<void(bool)> resume) {
  const uint64_t id = next_parked_++;
  const bool earliest =
      parked_deadlines_.empty() || deadline < parked_deadlines_.begin()->first;
  parked_by_key_[key].push_back(id);
  parked_deadlines_.emplace(deadline, id);
  parked_.emplace(id, Parked{std::move(key), deadline, std::move(resume)});
  if (!timer_thread_.joinable()) {
    timer_thread_ = std::thread([this] { TimerLoop(); });
  } else if (earliest) {
    timer_wake_.Signal();
  }
}

void RequestPipeline::ReleaseInFlight(const std::string& record_key) {
  std::vector<absl::AnyInvocable<void(bool)>> resumes;
  {
    absl::MutexLock lock(&mu_);
    in_flight_.erase(record_key);
    auto it = parked_by_key_.find(record_key);
    if (it != parked_by_key_.end()) {
      for (uint64_t id : it->second) {
        auto node = parked_.extract(id);
        parked_deadlines_.erase({node.mapped().deadline, id});
        resumes.push_back(std::move(node.mapped().resume));
      }
      parked_by_key_.erase(it);
    }
  }
  for (auto& resume : resumes) resume(/*expired=*/false);
}

void RequestPipeline::TimerLoop() {
  mu_.Lock();
  while (!timer_stop_) {
    if (parked_deadlines_.empty()) {
      timer_wake_.Wait(&mu_);
      continue;
    }
    const auto [deadline, id] = *parked_deadlines_.begin();
    const absl::Time now = clock_.Now();
    if (deadline > now) {
      timer_wake_.WaitWithTimeout(&mu_, std::min(deadline - now, kTimerRecheck));
      continue;
    }
    parked_deadlines_.erase(parked_deadlines_.begin());
    auto node = parked_.extract(id);
    auto by_key = parked_by_key_.find(node.mapped().key);
    std::vector<uint64_t>& ids = by_key->second;
    ids.erase(std::find(ids.begin(), ids.end(), id));
    if (ids.empty()) parked_by_key_.erase(by_key);
    mu_.Unlock();
    node.mapped().resume(/*expired=*/true);
    mu_.Lock();
  }
  mu_.Unlock();
}

// --- The one execution path ---------------------------------------------------

// Execute()'s executor: the calling thread runs every step of its execution
// (posted by store callbacks, the in-flight timer and ended attempts) until
// the result is there.
class RequestPipeline::CallerExecutor {
 public:
  void Post(absl::AnyInvocable<void()> step) {
    absl::MutexLock lock(&mu_);
    steps_.push_back(std::move(step));
  }
  void Done(absl::StatusOr<PipelineResult> result) {
    absl::MutexLock lock(&mu_);
    result_ = std::move(result);
  }
  absl::StatusOr<PipelineResult> Run() {
    for (;;) {
      absl::AnyInvocable<void()> step;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &CallerExecutor::Ready));
        if (result_) return *std::move(result_);
        step = std::move(steps_.front());
        steps_.pop_front();
      }
      step();
    }
  }

 private:
  bool Ready() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return result_.has_value() || !steps_.empty();
  }

  absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void()>> steps_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::StatusOr<PipelineResult>> result_ ABSL_GUARDED_BY(mu_);
};

// One request through the pipeline, as a chain of continuations: identify
// -> lookup (or park behind a running attempt) -> handler -> commit ->
// result. On the heap; deletes itself after calling back. With a
// CallerExecutor (Execute) every continuation that a store, timer or other
// thread triggers is handed to the caller's thread; without (ExecuteAsync)
// it runs where it was triggered.
class RequestPipeline::Execution {
 public:
  Execution(RequestPipeline* p, CallerExecutor* caller, const RequestId& id,
            const Request& request, Handler& handler, ExecuteCallback done)
      : p_(p),
        caller_(caller),
        id_(id),
        request_(request),
        handler_(handler),
        done_(std::move(done)) {}

  void Start() {
    stale_reads_ = p_->store_.StaleReadsAreCheaper();
    if (absl::Status s = p_->CheckRequest(id_, request_, &ack_); !s.ok()) {
      return Finish(s);
    }
    if (id_.kind == RequestId::Kind::kNone) return RunAttempt();
    const std::string scope = Scope(request_.principal);
    record_key_ = RecordPrefix() + IdPart(scope, id_);
    fingerprint_ = Fingerprint(request_);
    if (id_.kind == RequestId::Kind::kClientSeq) {
      client_ = scope + id_.client_id;
      if (stale_reads_ && p_->FirstArrival(client_, id_.seq, &view_)) {
        {
          absl::MutexLock lock(&p_->mu_);
          holds_in_flight_ = p_->in_flight_.insert(record_key_).second;
        }
        if (holds_in_flight_) return StartAttempts();
      }
    }
    Lookup();
  }

 private:
  using Continuation = void (Execution::*)(const absl::Status&);

  // Runs `step` on this execution's executor (see the class comment).
  void Resume(absl::AnyInvocable<void()> step) {
    if (caller_ != nullptr) return caller_->Post(std::move(step));
    step();
  }

  // Dedup. First the in-flight mark: if an attempt of this id is running
  // here, park until it ends (then look again) or until in_flight_wait has
  // passed since the first look (then kInProgress). Taking the mark before
  // reading means a retry reads only after the attempt it waited for (or
  // that just ended) released the mark, which it does after its commit is
  // durable: the read finds that attempt's record instead of running the
  // handler again. Then a stored record answers. The first read may be stale
  // (see "Reads" in pipeline.h); after a wait it is latest.
  void Lookup() {
    {
      absl::MutexLock lock(&p_->mu_);
      holds_in_flight_ = p_->in_flight_.insert(record_key_).second;
      if (!holds_in_flight_) {
        const absl::Time now = p_->clock_.Now();
        if (!deadline_) deadline_ = now + p_->options_.in_flight_wait;
        if (now < *deadline_) {
          p_->waited_.fetch_add(1, std::memory_order_relaxed);
          p_->ParkLocked(record_key_, *deadline_, [this](bool expired) {
            Resume([this, expired] {
              if (expired) return Finish(InProgressError());
              waited_ = true;
              Lookup();
            });
          });
          return;
        }
      }
    }
    if (!holds_in_flight_) return Finish(InProgressError());
    absl::StatusOr<DedupView> v =
        p_->ReadDedup(client_, record_key_, /*stale=*/stale_reads_ && !waited_);
    if (!v.ok()) return Finish(ReadFault(v.status()));
    view_ = *std::move(v);
    if (view_.record) {
      if (view_.record->fingerprint != fingerprint_) {
        return Finish(KeyReusedError());
      }
      p_->replayed_.fetch_add(1, std::memory_order_relaxed);
      return Finish(PipelineResult{std::move(view_.record->reply), true});
    }
    // GC persists a client's watermark before it deletes the records below
    // it, and the commit checks both the record's absence and (after a
    // stale look) the watermark's version: a collected record is always
    // noticed, so its request is never executed again.
    if (id_.kind == RequestId::Kind::kClientSeq && id_.seq <= view_.acked) {
      return Finish(AcknowledgedError(id_));
    }
    StartAttempts();
  }

  void StartAttempts() {
    token_ = p_->instance_nonce_ ^
             (p_->attempt_counter_.fetch_add(1) * 0x9e3779b97f4a7c15ULL);
    stale_reads_ = view_.stale;
    RunAttempt();
  }

  // After a failed condition that may be due to the dedup view: read the
  // record and watermark latest. True when that finished the request (a
  // replay, 410, or a read error); false: run the handler again.
  bool Revalidate() {
    p_->revalidations_.fetch_add(1, std::memory_order_relaxed);
    absl::StatusOr<DedupView> v =
        p_->ReadDedup(client_, record_key_, /*stale=*/false);
    if (!v.ok()) {
      Finish(ReadFault(v.status()));
      return true;
    }
    view_ = *std::move(v);
    if (view_.record) {
      AnswerFrom(*view_.record);
      return true;
    }
    if (id_.kind == RequestId::Kind::kClientSeq && id_.seq <= view_.acked) {
      Finish(AcknowledgedError(id_));
      return true;
    }
    return false;
  }

  // The handler, with whatever it throws caught: an exception must not
  // cross the pipeline (it would unwind through a store's or an event
  // loop's thread), and the request commits nothing.
  absl::StatusOr<Reply> RunHandler(Transaction& txn) {
    try {
      return handler_.Handle(request_, txn);
    } catch (const std::exception& e) {
      p_->handler_exceptions_.fetch_add(1, std::memory_order_relaxed);
      spdlog::error("handler for {} threw: {}; answered \"handler failed\"",
                    request_.operation, e.what());
    } catch (...) {
      p_->handler_exceptions_.fetch_add(1, std::memory_order_relaxed);
      spdlog::error("handler for {} threw a non-std exception; answered "
                    "\"handler failed\"",
                    request_.operation);
    }
    return absl::InternalError("handler failed");
  }

  void RunAttempt() {
    if (++attempt_ > p_->options_.max_attempts) {
      return Finish(ConflictsExhaustedError(p_->options_.max_attempts));
    }
    if (attempt_ > 1) p_->reruns_.fetch_add(1, std::memory_order_relaxed);
    TransactionImpl txn(p_->store_, Consistency(stale_reads_),
                        p_->options_.max_value_bytes, p_->values_refused_,
                        &p_->store_wait_);
    stale_reads_ = false;  // Runs after a failed condition read latest.
    absl::StatusOr<Reply> reply = RunHandler(txn);
    if (reply.ok() && !txn.refusal().ok()) reply = txn.refusal();
    if (reply.ok() && txn.has_writes() &&
        id_.kind != RequestId::Kind::kNone) {
      const size_t bytes = reply->body.size() + reply->content_type.size();
      if (bytes > p_->options_.max_reply_bytes) {
        p_->replies_refused_.fetch_add(1, std::memory_order_relaxed);
        reply = absl::ResourceExhaustedError(absl::StrCat(
            "the reply of ", bytes, " bytes exceeds the pipeline's "
            "max_reply_bytes (", p_->options_.max_reply_bytes,
            "); nothing was written"));
      }
    }
    // Whether an answer without writes must first check that this request
    // has no record: its lookup was stale, or one of its writing commits
    // failed -- a duplicate on another server may have committed the
    // request meanwhile, and its stored reply, not this run's refusal built
    // on the duplicate's writes, is the answer (found with the test kit:
    // racing duplicates on several servers, the losers re-ran and answered
    // "seat taken").
    const bool check_record = id_.kind != RequestId::Kind::kNone &&
                              (view_.stale || commit_failed_);
    handler_error_ = absl::OkStatus();
    if (!reply.ok()) {
      // An error built on stale reads (or on a stale lookup) is answered
      // only once confirmed, like a read-only reply: it may be due to the
      // staleness, or the request may have a record to replay.
      if (!txn.stale() && !check_record) return Finish(reply.status());
      handler_error_ = reply.status();
    } else {
      reply_ = *std::move(reply);
    }

    std::vector<Condition> conditions = txn.Conditions();
    if (!txn.has_writes() || !handler_error_.ok()) {
      // Nothing to commit. One latest read is a linearizable answer;
      // several, or stale ones, are confirmed by an empty conditional commit
      // (etcd serves it through the read index), with the dedup conditions
      // when the lookup was stale.
      if (check_record) AddDedupConditions(view_, record_key_, &conditions);
      if (!txn.stale() && !check_record && txn.read_count() <= 1) {
        return FinishReadOnly();
      }
      if (conditions.empty()) return FinishReadOnly();
      return SendCommit(std::move(conditions), {}, &Execution::OnConfirmed);
    }
    std::vector<Write> writes = txn.Writes();
    if (absl::Status f = p_->AddFence(request_, &conditions, &fence_);
        !f.ok()) {
      return Finish(f);
    }
    if (id_.kind == RequestId::Kind::kNone) {
      return SendCommit(std::move(conditions), std::move(writes),
                        &Execution::OnUnkeyedCommitted);
    }
    const absl::Time now = p_->clock_.Now();
    Record record{fingerprint_, token_, absl::ToUnixMicros(now), reply_};
    AddDedupConditions(view_, record_key_, &conditions);
    writes.push_back(Write::Put(record_key_, record.Encode()));
    writes.push_back(Write::Put(
        AgeIndexKey(IndexPrefix(), now,
                    std::string_view(record_key_).substr(RecordPrefix().size())),
        ""));
    SendCommit(std::move(conditions), std::move(writes),
               &Execution::OnKeyedCommitted);
  }

  // The store commit of a step; `then` continues with its outcome on this
  // execution's executor. Its latency is measured on the pipeline's clock.
  void SendCommit(std::vector<Condition> conditions, std::vector<Write> writes,
                  Continuation then) {
    const absl::Time sent = p_->clock_.Now();
    p_->store_.CommitAsync(
        std::move(conditions), std::move(writes),
        [this, sent, then](absl::StatusOr<uint64_t> c) {
          p_->CountCommitLatency(p_->clock_.Now() - sent);
          Resume([this, then, s = c.status()] { (this->*then)(s); });
        });
  }

  // A read-only reply's (or a handler error's) confirmation.
  void OnConfirmed(const absl::Status& s) {
    if (s.ok()) return FinishReadOnly();
    if (storage::IsConflict(s)) {
      if ((view_.stale || commit_failed_) && Revalidate()) return;
      return RunAttempt();
    }
    Finish(ReadFault(s));
  }

  void OnKeyedCommitted(const absl::Status& s) {
    if (s.ok()) {
      p_->executed_.fetch_add(1, std::memory_order_relaxed);
      return Finish(PipelineResult{std::move(reply_), false});
    }
    commit_failed_ = true;
    if (absl::Status d = p_->DeposedError(s, fence_); !d.ok()) return Finish(d);
    if (storage::IsConflict(s)) {
      std::optional<std::string> key = storage::ConflictKey(s);
      if (view_.stale || !key || *key == record_key_ ||
          *key == view_.watermark_key) {
        if (Revalidate()) return;
      }
      return RunAttempt();  // A read changed: run again on fresh state.
    }
    if (s.code() == absl::StatusCode::kUnknown) {
      p_->unknown_outcomes_.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("commit outcome unknown ({}); resolving by reading the "
                   "completion record",
                   std::string(s.message()));
      if (Revalidate()) return;
      // Absent now. Running again is safe: every attempt commits only if the
      // record is absent, so at most one of them (the lost one, if it lands
      // late, or this one) ever commits, and the other finds its record.
      return RunAttempt();
    }
    Finish(s);
  }

  void OnUnkeyedCommitted(const absl::Status& s) {
    if (s.ok()) {
      p_->executed_.fetch_add(1, std::memory_order_relaxed);
      return Finish(PipelineResult{std::move(reply_), false});
    }
    if (absl::Status d = p_->DeposedError(s, fence_); !d.ok()) return Finish(d);
    if (storage::IsConflict(s)) return RunAttempt();
    if (s.code() == absl::StatusCode::kUnknown) {
      p_->unknown_outcomes_.fetch_add(1, std::memory_order_relaxed);
      // Without a request id there is no record to resolve it by; the client
      // must not retry blindly. The only final "unknown" the pipeline gives.
      return Finish(MakePipelineError(
          absl::UnknownError(absl::StrCat(
              "commit outcome unknown (request had no idempotency key): ",
              std::string(s.message()))),
          "unknown"));
    }
    Finish(s);
  }

  // A record found after our commit attempt: ours (token) or a concurrent
  // process's attempt at the same id.
  void AnswerFrom(Record& r) {
    if (r.fingerprint != fingerprint_) return Finish(KeyReusedError());
    if (r.token == token_) {
      p_->executed_.fetch_add(1, std::memory_order_relaxed);
      return Finish(PipelineResult{std::move(r.reply), false});
    }
    p_->replayed_.fetch_add(1, std::memory_order_relaxed);
    Finish(PipelineResult{std::move(r.reply), true});
  }

  void FinishReadOnly() {
    if (!handler_error_.ok()) return Finish(handler_error_);
    p_->read_only_.fetch_add(1, std::memory_order_relaxed);
    Finish(PipelineResult{std::move(reply_), false});
  }

  void Finish(absl::StatusOr<PipelineResult> result) {
    // Released before calling back: a waiting retry then finds the record.
    if (holds_in_flight_) p_->ReleaseInFlight(record_key_);
    // Only a request answered with a reply (executed, read-only, or its own
    // record replayed) may move its client's watermark.
    if (result.ok() && ack_) p_->NoteAck(client_, *ack_);
    ExecuteCallback done = std::move(done_);
    delete this;
    done(std::move(result));
  }

  RequestPipeline* const p_;
  CallerExecutor* const caller_;  // Execute()'s thread; nullptr: inline
  const RequestId id_;
  const Request& request_;
  Handler& handler_;
  ExecuteCallback done_;
  std::string record_key_;  // keyed requests, scoped by the principal
  std::string fingerprint_;
  std::string client_;  // (client, seq) requests: scope + client id
  std::optional<uint64_t> ack_;  // the accepted acknowledgement, if any
  uint64_t token_ = 0;
  int attempt_ = 0;
  bool waited_ = false;  // waited for a running attempt of the same id
  std::optional<absl::Time> deadline_;  // of waiting for a running attempt
  // The next handler run may read stale (the first one, unkeyed or after a
  // stale lookup).
  bool stale_reads_ = true;
  DedupView view_;  // the last dedup lookup (keyed requests)
  absl::Status handler_error_;  // the current run's, while it is confirmed
  // A writing commit of this (keyed) request failed: later answers without
  // writes carry the "record absent" condition (see RunAttempt).
  bool commit_failed_ = false;
  bool holds_in_flight_ = false;
  Reply reply_;
  FenceDecision fence_;  // the fence the current attempt's commit carries
};

void RequestPipeline::ExecuteAsync(const RequestId& id, const Request& request,
                                   Handler& handler, ExecuteCallback done) {
  (new Execution(this, /*caller=*/nullptr, id, request, handler,
                 std::move(done)))
      ->Start();
}

absl::StatusOr<PipelineResult> RequestPipeline::Execute(const RequestId& id,
                                                        const Request& request,
                                                        Handler& handler) {
  CallerExecutor caller;
  (new Execution(this, &caller, id, request, handler,
                 [&caller](absl::StatusOr<PipelineResult> result) {
                   caller.Done(std::move(result));
                 }))
      ->Start();
  return caller.Run();
}
// --- Fencing ----------------------------------------------------------------

absl::Status RequestPipeline::AddFence(const Request& request,
                                       std::vector<Condition>* conditions,
                                       FenceDecision* used) {
  *used = FenceDecision{};
  FenceTable* fences = fences_.load(std::memory_order_acquire);
  if (fences == nullptr) return absl::OkStatus();
  *used = fences->ForAddress(request.local_address);
  switch (used->kind) {
    case FenceDecision::Kind::kUnfenced:
      return absl::OkStatus();
    case FenceDecision::Kind::kFenced:
      conditions->push_back({used->key, used->version});
      return absl::OkStatus();
    case FenceDecision::Kind::kNotReady:
      break;
  }
  fences->CountNotReady();
  return MakePipelineError(
      absl::UnavailableError(absl::StrCat(
          "service address ", request.local_address, " (slot ", used->slot,
          ") is not ready on this host (fence ",
          AV(FenceStateName(used->state)), "); retry")),
      "fence-not-ready");
}

absl::Status RequestPipeline::DeposedError(const absl::Status& commit_status,
                                           const FenceDecision& used) {
  if (used.kind != FenceDecision::Kind::kFenced ||
      !storage::IsConflict(commit_status)) {
    return absl::OkStatus();
  }
  std::optional<std::string> key = storage::ConflictKey(commit_status);
  if (!key || *key != used.key) return absl::OkStatus();
  if (FenceTable* fences = fences_.load(std::memory_order_acquire)) {
    fences->Deposed(used.slot, used.version);
  }
  return MakePipelineError(
      absl::UnavailableError(absl::StrCat(
          "this host was deposed as holder of slot ", used.slot,
          " (a newer holder's fence is in the store); nothing was written; "
          "retry")),
      "deposed");
}

void RequestPipeline::CountCommitLatency(absl::Duration d) {
  const uint64_t micros =
      d <= absl::ZeroDuration()
          ? 0
          : static_cast<uint64_t>(absl::ToInt64Microseconds(d));
  const size_t bucket = static_cast<size_t>(
      std::lower_bound(kCommitLatencyBoundsMicros.begin(),
                       kCommitLatencyBoundsMicros.end(), micros) -
      kCommitLatencyBoundsMicros.begin());
  commit_latency_buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  commit_latency_sum_micros_.fetch_add(micros, std::memory_order_relaxed);
}

// --- Garbage collection ---------------------------------------------------

absl::StatusOr<size_t> RequestPipeline::CollectGarbage() {
  absl::MutexLock gc_lock(&gc_mu_);
  gc_passes_.fetch_add(1, std::memory_order_relaxed);
  absl::StatusOr<size_t> by_ack = CollectByWatermark();
  absl::StatusOr<size_t> by_age = CollectByAge();
  absl::StatusOr<size_t> expired = ExpireWatermarks();
  collected_.fetch_add((by_ack.ok() ? *by_ack : 0) + (by_age.ok() ? *by_age : 0),
                       std::memory_order_relaxed);
  for (const absl::StatusOr<size_t>* part : {&by_ack, &by_age, &expired}) {
    if (!part->ok()) {
      gc_errors_.fetch_add(1, std::memory_order_relaxed);
      return part->status();
    }
  }
  return *by_ack + *by_age;
}

absl::StatusOr<size_t> RequestPipeline::CollectByWatermark() {
  absl::flat_hash_map<std::string, uint64_t> pending;
  {
    absl::MutexLock lock(&mu_);
    pending.swap(pending_acks_);
  }
  auto requeue = [&](auto it) {
    absl::MutexLock lock(&mu_);
    for (; it != pending.end(); ++it) NoteAckLocked(it->first, it->second);
  };
  size_t deleted = 0;
  for (auto it = pending.begin(); it != pending.end(); ++it) {
    const std::string& client = it->first;  // scope + client id
    const uint64_t acked = it->second;
    // 1. Persist the watermark (it only grows), so that Execute() refuses a
    //    late duplicate of a collected request instead of running it again.
    //    Each write adds an age index entry written in the same commit (so
    //    with the same version): ExpireWatermarks() deletes the watermark
    //    when its newest entry is older than the retention.
    const std::string wkey = WatermarkKey(client);
    absl::Status persisted = absl::AbortedError("watermark contention");
    for (int tries = 0; tries < 8; ++tries) {
      absl::StatusOr<Versioned> cur = store_.Get(wkey);
      if (!cur.ok()) {
        persisted = cur.status();
        break;
      }
      uint64_t stored = 0;
      if (cur->present() && !absl::SimpleAtoi(cur->value, &stored)) stored = 0;
      if (acked <= stored) {
        persisted = absl::OkStatus();
        break;
      }
      absl::StatusOr<uint64_t> c = store_.Commit(
          {{wkey, cur->version}},
          {Write::Put(wkey, absl::StrCat(acked)),
           Write::Put(AgeIndexKey(WatermarkIndexPrefix(), clock_.Now(), client),
                      "")});
      persisted = c.status();
      if (c.ok() || !storage::IsConflict(c.status())) break;
    }
    if (!persisted.ok()) {
      requeue(it);
      return persisted;
    }
    // 2. Delete the client's records with seq <= acked; they are ordered by
    //    seq under the client's prefix, so this stops at the first newer one.
    const std::string prefix = ClientRecordPrefix(client);
    std::string start_after;
    for (;;) {
      absl::StatusOr<std::vector<KeyValue>> kvs =
          store_.Scan({prefix, start_after, GcBatch()});
      if (!kvs.ok()) {
        requeue(it);
        return kvs.status();
      }
      std::vector<Write> deletes;
      bool done = kvs->size() < GcBatch();
      for (const KeyValue& kv : *kvs) {
        uint64_t seq = 0;
        if (!ParseHex16(std::string_view(kv.key).substr(prefix.size()), &seq)) {
          continue;
        }
        if (seq > acked) {
          done = true;
          break;
        }
        deletes.push_back(Write::Delete(kv.key));
      }
      if (!deletes.empty()) {
        absl::StatusOr<uint64_t> c = store_.Commit({}, deletes);
        if (!c.ok()) {
          requeue(it);
          return c.status();
        }
        deleted += deletes.size();
      }
      if (done || kvs->empty()) break;
      start_after = kvs->back().key;
    }
  }
  return deleted;
}

namespace {

// Walks the age index under `index_prefix` (<micros, 16 hex>/<suffix>) from
// its oldest entry up to `cutoff` (unix micros), `batch` entries per commit,
// and deletes every entry it walks. For each entry, `collect` is given the
// entry's suffix and version and adds the deletes (with their conditions)
// of what the entry indexes, returning how many items they collect. A
// commit that fails a condition ends the walk (the next pass reads again).
// Returns the items collected.
absl::StatusOr<size_t> SweepAgeIndex(
    storage::StableStore& store, const std::string& index_prefix,
    int64_t cutoff, size_t batch,
    absl::FunctionRef<absl::StatusOr<size_t>(
        std::string_view suffix, uint64_t entry_version,
        std::vector<Condition>* conditions, std::vector<Write>* writes)>
        collect) {
  size_t collected = 0;
  std::string start_after;
  for (;;) {
    absl::StatusOr<std::vector<KeyValue>> kvs =
        store.Scan({index_prefix, start_after, batch});
    if (!kvs.ok()) return kvs.status();
    std::vector<Condition> conditions;
    std::vector<Write> writes;
    size_t items = 0;
    bool done = kvs->size() < batch;
    for (const KeyValue& kv : *kvs) {
      uint64_t micros = 0;
      std::string_view suffix;
      if (ParseAgeIndexEntry(
              std::string_view(kv.key).substr(index_prefix.size()), &micros,
              &suffix)) {
        if (static_cast<int64_t>(micros) > cutoff) {
          done = true;
          break;
        }
        absl::StatusOr<size_t> n =
            collect(suffix, kv.version, &conditions, &writes);
        if (!n.ok()) return n.status();
        items += *n;
      }  // else: not ours, malformed; it goes.
      writes.push_back(Write::Delete(kv.key));
    }
    if (!writes.empty()) {
      absl::StatusOr<uint64_t> c = store.Commit(conditions, writes);
      if (!c.ok()) {
        if (storage::IsConflict(c.status())) break;
        return c.status();
      }
      collected += items;
    }
    if (done || kvs->empty()) break;
    start_after = kvs->back().key;
  }
  return collected;
}

}  // namespace

size_t RequestPipeline::GcBatch() const {
  // An age-index entry costs a commit one condition and two deletes (what it
  // indexes, and itself): a batch must fit the store's limit, or every GC
  // commit is refused and nothing is ever collected (etcd: max_txn_ops 128
  // against the default batch of 256).
  const size_t max_ops = store_.MaxCommitOps();
  if (max_ops == 0) return options_.gc_batch;
  return std::max<size_t>(1, std::min(options_.gc_batch, max_ops / 2));
}

absl::StatusOr<size_t> RequestPipeline::CollectByAge() {
  const int64_t cutoff =
      absl::ToUnixMicros(clock_.Now() - options_.retention);
  const std::string record_prefix = RecordPrefix();
  return SweepAgeIndex(
      store_, IndexPrefix(), cutoff, GcBatch(),
      [&](std::string_view id, uint64_t, std::vector<Condition>* conditions,
          std::vector<Write>* writes) -> absl::StatusOr<size_t> {
        const std::string rkey = record_prefix + std::string(id);
        absl::StatusOr<Versioned> r = store_.Get(rkey);
        if (!r.ok()) return r.status();
        if (!r->present()) return 0;
        std::optional<Record> rec = Record::Decode(r->value);
        // The id may have been reused after an earlier collection: only a
        // record at least as old as this entry goes.
        if (rec && rec->time_micros > cutoff) return 0;
        conditions->push_back({rkey, r->version});
        writes->push_back(Write::Delete(rkey));
        return 1;
      });
}

absl::StatusOr<size_t> RequestPipeline::ExpireWatermarks() {
  absl::StatusOr<size_t> expired = SweepAgeIndex(
      store_, WatermarkIndexPrefix(),
      absl::ToUnixMicros(clock_.Now() - options_.retention), GcBatch(),
      [&](std::string_view client, uint64_t entry_version,
          std::vector<Condition>* conditions,
          std::vector<Write>* writes) -> absl::StatusOr<size_t> {
        // The entry was written with the watermark, in one commit: the same
        // version. A watermark written since has a newer version (and a
        // newer entry); only the entry goes then.
        const std::string wkey = WatermarkKey(client);
        absl::StatusOr<Versioned> w = store_.Get(wkey);
        if (!w.ok()) return w.status();
        if (!w->present() || w->version != entry_version) return 0;
        conditions->push_back({wkey, w->version});
        writes->push_back(Write::Delete(wkey));
        return 1;
      });
  if (expired.ok()) {
    watermarks_expired_.fetch_add(*expired, std::memory_order_relaxed);
  }
  return expired;
}

void RequestPipeline::StartBackgroundGc() {
  absl::MutexLock lock(&mu_);
  if (gc_thread_.joinable()) return;
  gc_stop_ = false;
  gc_thread_ = std::thread([this] { GcLoop(); });
}

void RequestPipeline::StopBackgroundGc() {
  {
    absl::MutexLock lock(&mu_);
    gc_stop_ = true;
    gc_wake_.SignalAll();
  }
  if (gc_thread_.joinable()) gc_thread_.join();
}

void RequestPipeline::GcLoop() {
  mu_.Lock();
  while (!gc_stop_) {
    gc_wake_.WaitWithTimeout(&mu_, options_.gc_interval);
    if (gc_stop_) break;
    mu_.Unlock();
    absl::StatusOr<size_t> n = CollectGarbage();
    if (!n.ok()) {
      spdlog::warn("completion-record GC failed: {}", n.status().ToString());
    } else if (*n > 0) {
      spdlog::info("completion-record GC deleted {} records", *n);
    }
    mu_.Lock();
  }
  mu_.Unlock();
}

PipelineStats RequestPipeline::Stats() const {
  constexpr auto kRelaxed = std::memory_order_relaxed;
  PipelineStats s;
  s.executed = executed_.load(kRelaxed);
  s.replayed = replayed_.load(kRelaxed);
  s.read_only = read_only_.load(kRelaxed);
  s.reruns = reruns_.load(kRelaxed);
  s.unknown_outcomes = unknown_outcomes_.load(kRelaxed);
  s.waited = waited_.load(kRelaxed);
  s.collected = collected_.load(kRelaxed);
  s.revalidations = revalidations_.load(kRelaxed);
  s.lookups_skipped = lookups_skipped_.load(kRelaxed);
  s.acks_refused = acks_refused_.load(kRelaxed);
  s.pending_acks_dropped = pending_acks_dropped_.load(kRelaxed);
  s.gc_passes = gc_passes_.load(kRelaxed);
  s.gc_errors = gc_errors_.load(kRelaxed);
  s.watermarks_expired = watermarks_expired_.load(kRelaxed);
  s.replies_refused = replies_refused_.load(kRelaxed);
  s.values_refused = values_refused_.load(kRelaxed);
  s.handler_exceptions = handler_exceptions_.load(kRelaxed);
  for (size_t i = 0; i < s.commit_latency_buckets.size(); ++i) {
    s.commit_latency_buckets[i] = commit_latency_buckets_[i].load(kRelaxed);
  }
  s.commit_latency_sum_micros = commit_latency_sum_micros_.load(kRelaxed);
  return s;
}

}  // namespace baton::framework

#include "framework/pipeline.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
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
std::string WatermarkKey(std::string_view client) {
  return absl::StrCat(FrameworkPrefix(), "w/", AV(client));
}
std::string Hex16(uint64_t v) { return absl::StrFormat("%016x", v); }

// The part of a record key after RecordPrefix(); also the suffix of its age
// index entry.
std::string IdPart(const RequestId& id) {
  if (id.kind == RequestId::Kind::kClientSeq) {
    return absl::StrCat("s/", id.client_id, absl::string_view("\0", 1),
                        Hex16(id.seq));
  }
  return absl::StrCat("k/", id.idempotency_key);
}
std::string ClientRecordPrefix(std::string_view client) {
  return absl::StrCat(RecordPrefix(), "s/", AV(client),
                      absl::string_view("\0", 1));
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
  // every version read; Scan always reads the latest state.
  TransactionImpl(storage::StableStore& store,
                  storage::ReadConsistency consistency)
      : store_(store), consistency_(consistency) {}

  absl::StatusOr<Versioned> Get(std::string_view key) override {
    if (absl::Status s = CheckKey(key); !s.ok()) return s;
    if (auto it = writes_.find(key); it != writes_.end()) {
      if (!it->second) return Versioned{};
      return Versioned{*it->second, kUncommittedVersion};
    }
    absl::StatusOr<Versioned> v = ReadStore(key);
    if (!v.ok()) return v.status();
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
    absl::StatusOr<std::vector<KeyValue>> got = store_.Scan(opts);
    if (!got.ok()) return got.status();
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

  std::vector<Condition> Conditions() const {
    std::vector<Condition> c;
    c.reserve(reads_.size() + 1);
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
    if (!stale()) return store_.Get(key);
    absl::StatusOr<std::vector<Versioned>> v = store_.GetMany(
        {std::string(key)}, storage::ReadOptions{consistency_});
    if (!v.ok()) return v.status();
    if (v->size() != 1) return absl::InternalError("GetMany: wrong count");
    return std::move(v->front());
  }

  storage::StableStore& store_;
  const storage::ReadConsistency consistency_;
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

// A request that wrote nothing needs no completion record. Its reply may be
// sent only if its reads are the state at one instant within the request:
// one latest read is; several latest reads, or any stale one, are confirmed
// by an empty conditional commit (linearizable: etcd serves a read-only Txn
// through the read index), which also carries `extra` (the dedup conditions
// when the record and watermark were read stale). false: a condition failed;
// the conflict status is in *conflict.
absl::StatusOr<bool> ReadsStillCurrent(storage::StableStore& store,
                                       const TransactionImpl& txn,
                                       const std::vector<Condition>& extra,
                                       absl::Status* conflict) {
  if (!txn.stale() && extra.empty() && txn.read_count() <= 1) return true;
  std::vector<Condition> conditions = txn.Conditions();
  conditions.insert(conditions.end(), extra.begin(), extra.end());
  if (conditions.empty()) return true;
  absl::StatusOr<uint64_t> c = store.Commit(conditions, {});
  if (c.ok()) return true;
  if (storage::IsConflict(c.status())) {
    *conflict = c.status();
    return false;
  }
  return c.status();
}

storage::ReadConsistency Consistency(bool stale) {
  return stale ? storage::ReadConsistency::kMayBeStale
               : storage::ReadConsistency::kLatest;
}

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

// Marks an id as running in this process; wakes waiters when done.
class RequestPipeline::InFlightGuard {
 public:
  InFlightGuard(RequestPipeline* p, std::string key)
      : p_(p), key_(std::move(key)) {}
  ~InFlightGuard() { p_->ReleaseInFlight(key_); }

 private:
  RequestPipeline* p_;
  std::string key_;
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

namespace {

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

}  // namespace

absl::StatusOr<RequestPipeline::DedupView> RequestPipeline::ReadDedup(
    const RequestId& id, const std::string& record_key, bool stale) {
  DedupView view;
  view.stale = stale;
  std::vector<std::string> keys = {record_key};
  if (id.kind == RequestId::Kind::kClientSeq) {
    view.watermark_key = WatermarkKey(id.client_id);
    keys.push_back(view.watermark_key);
  }
  absl::StatusOr<std::vector<Versioned>> got =
      store_.GetMany(keys, storage::ReadOptions{Consistency(stale)});
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
    absl::MutexLock lock(&clients_mu_);
    auto it = clients_.find(id.client_id);
    if (it != clients_.end() &&
        (!it->second.watermark_known ||
         it->second.watermark_version <= view.watermark_version)) {
      it->second.watermark_known = true;
      it->second.watermark_version = view.watermark_version;
      it->second.acked = view.acked;
    }
  }
  return view;
}

namespace {
// How many clients FirstArrival() remembers (beyond that, it forgets them
// all: they only lose the shortcut).
constexpr size_t kMaxClients = 65536;
}  // namespace

bool RequestPipeline::FirstArrival(const RequestId& id, DedupView* view) {
  absl::MutexLock lock(&clients_mu_);
  auto it = clients_.find(id.client_id);
  if (it == clients_.end()) {
    if (clients_.size() >= kMaxClients) clients_.clear();
    it = clients_.emplace(id.client_id, ClientState{}).first;
  }
  ClientState& c = it->second;
  if (id.seq + kSeqWindow <= c.max_seq) return false;  // Too old to tell.
  if (id.seq > c.max_seq) {
    // The window slides up: forget the seqs that fall out of it.
    if (id.seq - c.max_seq >= kSeqWindow) {
      c.recent.reset();
    } else {
      for (uint64_t s = c.max_seq + 1; s < id.seq; ++s) c.recent.reset(s % kSeqWindow);
    }
    c.max_seq = id.seq;
  } else if (c.recent.test(id.seq % kSeqWindow)) {
    return false;  // A retry.
  }
  c.recent.set(id.seq % kSeqWindow);
  if (!c.watermark_known || id.seq <= c.acked) return false;
  view->record.reset();
  view->watermark_key = WatermarkKey(id.client_id);
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
      options_(options),
      // Distinguishes this process's attempts from other processes' when a
      // kUnknown commit is resolved; only affects the "replayed" flag.
      instance_nonce_((static_cast<uint64_t>(std::random_device()()) << 32) ^
                      std::random_device()()) {}

RequestPipeline::~RequestPipeline() { StopBackgroundGc(); }

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

absl::Status RequestPipeline::CheckId(const RequestId& id) {
  switch (id.kind) {
    case RequestId::Kind::kNone:
      break;
    case RequestId::Kind::kClientSeq:
      if (!ValidClientId(id.client_id)) {
        return absl::InvalidArgumentError(
            "client id must be 1..128 printable ASCII characters without "
            "spaces");
      }
      if (id.acked) {
        absl::MutexLock lock(&mu_);
        uint64_t& a = pending_acks_[id.client_id];
        a = std::max(a, *id.acked);
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

void RequestPipeline::ReleaseInFlight(const std::string& record_key) {
  std::vector<absl::AnyInvocable<void()>> waiters;
  {
    absl::MutexLock lock(&mu_);
    in_flight_.erase(record_key);
    in_flight_done_.SignalAll();
    auto it = in_flight_async_waiters_.find(record_key);
    if (it != in_flight_async_waiters_.end()) {
      waiters = std::move(it->second);
      in_flight_async_waiters_.erase(it);
    }
  }
  for (auto& w : waiters) w();
}

// --- Asynchronous execution -------------------------------------------------

// One ExecuteAsync() call: the steps of Execute() as a chain of
// continuations (lookup -> handler -> CommitAsync -> result). On the heap;
// deletes itself after calling back.
class RequestPipeline::AsyncExecution {
 public:
  AsyncExecution(RequestPipeline* p, const RequestId& id,
                 const Request& request, Handler& handler,
                 ExecuteCallback done)
      : p_(p),
        id_(id),
        request_(request),
        handler_(handler),
        done_(std::move(done)) {}

  void Start() {
    stale_reads_ = p_->store_.StaleReadsAreCheaper();
    if (id_.kind == RequestId::Kind::kNone) return RunAttempt();
    if (absl::Status s = p_->CheckId(id_); !s.ok()) return Finish(s);
    record_key_ = RecordPrefix() + IdPart(id_);
    fingerprint_ = Fingerprint(request_);
    if (stale_reads_ && id_.kind == RequestId::Kind::kClientSeq &&
        p_->FirstArrival(id_, &view_)) {
      {
        absl::MutexLock lock(&p_->mu_);
        holds_in_flight_ = p_->in_flight_.emplace(record_key_, 1).second;
      }
      if (holds_in_flight_) return StartAttempts();
    }
    Lookup();
  }

 private:
  // Dedup: a stored record answers; otherwise take the in-flight mark, or
  // wait (as a continuation) for the attempt that holds it. The first look
  // may be stale (see "Reads" in pipeline.h); after a wait it is latest.
  void Lookup() {
    absl::StatusOr<DedupView> v =
        p_->ReadDedup(id_, record_key_, /*stale=*/stale_reads_ && !waited_);
    if (!v.ok()) return Finish(v.status());
    view_ = *std::move(v);
    if (view_.record) {
      if (view_.record->fingerprint != fingerprint_) {
        return Finish(KeyReusedError());
      }
      p_->replayed_.fetch_add(1, std::memory_order_relaxed);
      return Finish(PipelineResult{std::move(view_.record->reply), true});
    }
    if (id_.kind == RequestId::Kind::kClientSeq && id_.seq <= view_.acked) {
      return Finish(AcknowledgedError(id_));
    }
    {
      absl::MutexLock lock(&p_->mu_);
      if (!p_->in_flight_.emplace(record_key_, 1).second) {
        p_->waited_.fetch_add(1, std::memory_order_relaxed);
        p_->in_flight_async_waiters_[record_key_].push_back([this] {
          waited_ = true;
          Lookup();
        });
        return;
      }
    }
    holds_in_flight_ = true;
    StartAttempts();
  }

  void StartAttempts() {
    token_ = p_->instance_nonce_ ^
             (p_->attempt_counter_.fetch_add(1) * 0x9e3779b97f4a7c15ULL);
    stale_reads_ = view_.stale;
    RunAttempt();
  }

  // See ExecuteKeyed(): after a failed condition that may be due to the
  // dedup view, read it latest. True when that finished the request.
  bool Revalidate() {
    p_->revalidations_.fetch_add(1, std::memory_order_relaxed);
    absl::StatusOr<DedupView> v =
        p_->ReadDedup(id_, record_key_, /*stale=*/false);
    if (!v.ok()) {
      Finish(v.status());
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

  void RunAttempt() {
    if (++attempt_ > p_->options_.max_attempts) {
      return Finish(absl::AbortedError(
          absl::StrCat("request conflicted with concurrent requests ",
                       p_->options_.max_attempts, " times; retry")));
    }
    if (attempt_ > 1) p_->reruns_.fetch_add(1, std::memory_order_relaxed);
    TransactionImpl txn(p_->store_, Consistency(stale_reads_));
    stale_reads_ = false;  // Runs after a failed condition read latest.
    absl::StatusOr<Reply> reply = absl::InternalError("handler failed");
    try {
      reply = handler_.Handle(request_, txn);
    } catch (const std::exception& e) {
      spdlog::error("handler for {} threw: {}", request_.operation, e.what());
      reply = absl::InternalError("handler failed");
    } catch (...) {
      spdlog::error("handler for {} threw", request_.operation);
      reply = absl::InternalError("handler failed");
    }
    handler_error_ = absl::OkStatus();
    if (!reply.ok()) {
      // An error built on stale reads (or on a stale lookup) is answered
      // only once confirmed, like a read-only reply: it may be due to the
      // staleness, or the request may have a record to replay.
      if (!txn.stale() && !view_.stale) return Finish(reply.status());
      handler_error_ = reply.status();
    } else {
      reply_ = *std::move(reply);
    }

    std::vector<Condition> conditions = txn.Conditions();
    if (!txn.has_writes() || !handler_error_.ok()) {
      // See ReadsStillCurrent(): one latest read is a linearizable answer;
      // several, or stale ones, are confirmed by an empty conditional
      // commit, with the dedup conditions when the lookup was stale.
      if (view_.stale) RequestPipeline::AddDedupConditions(view_, record_key_, &conditions);
      if (!txn.stale() && !view_.stale && txn.read_count() <= 1) {
        return FinishReadOnly();
      }
      if (conditions.empty()) return FinishReadOnly();
      return p_->store_.CommitAsync(
          std::move(conditions), {}, [this](absl::StatusOr<uint64_t> c) {
            if (!c.ok() && storage::IsConflict(c.status())) {
              if (view_.stale && Revalidate()) return;
              return RunAttempt();
            }
            if (!c.ok()) return Finish(c.status());
            FinishReadOnly();
          });
    }
    std::vector<Write> writes = txn.Writes();
    if (absl::Status f = p_->AddFence(request_, &conditions, &fence_);
        !f.ok()) {
      return Finish(f);
    }
    if (id_.kind == RequestId::Kind::kNone) {
      return p_->store_.CommitAsync(
          std::move(conditions), std::move(writes),
          [this](absl::StatusOr<uint64_t> c) { OnUnkeyedCommitted(c.status()); });
    }
    Record record{fingerprint_, token_, absl::ToUnixMicros(p_->clock_.Now()),
                  reply_};
    RequestPipeline::AddDedupConditions(view_, record_key_, &conditions);
    writes.push_back(Write::Put(record_key_, record.Encode()));
    writes.push_back(Write::Put(
        absl::StrCat(IndexPrefix(),
                     Hex16(static_cast<uint64_t>(
                         std::max<int64_t>(record.time_micros, 0))),
                     "/", IdPart(id_)),
        ""));
    p_->store_.CommitAsync(
        std::move(conditions), std::move(writes),
        [this](absl::StatusOr<uint64_t> c) { OnKeyedCommitted(c.status()); });
  }

  void OnKeyedCommitted(const absl::Status& s) {
    if (s.ok()) {
      p_->executed_.fetch_add(1, std::memory_order_relaxed);
      return Finish(PipelineResult{std::move(reply_), false});
    }
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
      return RunAttempt();  // Safe: see ExecuteKeyed().
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
      return Finish(MakePipelineError(
          absl::UnknownError(absl::StrCat(
              "commit outcome unknown (request had no idempotency key): ",
              std::string(s.message()))),
          "unknown"));
    }
    Finish(s);
  }

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
    ExecuteCallback done = std::move(done_);
    delete this;
    done(std::move(result));
  }

  RequestPipeline* const p_;
  const RequestId id_;
  const Request& request_;
  Handler& handler_;
  ExecuteCallback done_;
  std::string record_key_;
  std::string fingerprint_;
  uint64_t token_ = 0;
  int attempt_ = 0;
  bool waited_ = false;  // waited for a running attempt of the same id
  // The next handler run may read stale (the first one, unkeyed or after a
  // stale lookup).
  bool stale_reads_ = true;
  DedupView view_;  // the last dedup lookup (keyed requests)
  absl::Status handler_error_;  // the current run's, while it is confirmed
  bool holds_in_flight_ = false;
  Reply reply_;
  FenceDecision fence_;  // the fence the current attempt's commit carries
};

void RequestPipeline::ExecuteAsync(const RequestId& id, const Request& request,
                                   Handler& handler, ExecuteCallback done) {
  (new AsyncExecution(this, id, request, handler, std::move(done)))->Start();
}

absl::StatusOr<PipelineResult> RequestPipeline::Execute(const RequestId& id,
                                                        const Request& request,
                                                        Handler& handler) {
  if (id.kind == RequestId::Kind::kNone) {
    return ExecuteUnkeyed(request, handler);
  }
  if (absl::Status s = CheckId(id); !s.ok()) return s;

  const std::string record_key = RecordPrefix() + IdPart(id);
  const std::string fingerprint = Fingerprint(request);
  // The first lookup may be stale: the commit re-checks what it saw (see
  // "Reads" in pipeline.h). After waiting for a running attempt of the same
  // id, read the latest state, so that attempt's record answers us.
  bool stale = store_.StaleReadsAreCheaper();
  // The wait is real time (not the injected clock): it bounds how long a
  // client's connection is held, not a protocol decision.
  const absl::Time deadline = absl::Now() + options_.in_flight_wait;
  DedupView view;
  bool marked = false;
  if (stale && id.kind == RequestId::Kind::kClientSeq &&
      FirstArrival(id, &view)) {
    absl::MutexLock lock(&mu_);
    marked = in_flight_.emplace(record_key, 1).second;
  }
  while (!marked) {
    absl::StatusOr<DedupView> v = ReadDedup(id, record_key, stale);
    if (!v.ok()) return v.status();
    view = *std::move(v);
    if (view.record) {
      if (view.record->fingerprint != fingerprint) return KeyReusedError();
      replayed_.fetch_add(1, std::memory_order_relaxed);
      return PipelineResult{std::move(view.record->reply), true};
    }
    // GC persists a client's watermark before it deletes the records below
    // it, and the commit checks both the record's absence and the
    // watermark's version: a collected record is always noticed, so its
    // request is never executed again.
    if (id.kind == RequestId::Kind::kClientSeq && id.seq <= view.acked) {
      return AcknowledgedError(id);
    }
    absl::MutexLock lock(&mu_);
    if (in_flight_.emplace(record_key, 1).second) {
      marked = true;
      break;
    }
    waited_.fetch_add(1, std::memory_order_relaxed);
    while (in_flight_.contains(record_key)) {
      if (in_flight_done_.WaitWithDeadline(&mu_, deadline) &&
          in_flight_.contains(record_key)) {
        return MakePipelineError(
            absl::AbortedError("a request with this id is still in progress; "
                               "retry later"),
            "in-progress");
      }
    }
    // The first attempt finished: its record (if any) answers us.
    stale = false;
  }
  InFlightGuard guard(this, record_key);
  return ExecuteKeyed(id, record_key, fingerprint, request, handler,
                      std::move(view));
}

absl::StatusOr<PipelineResult> RequestPipeline::ExecuteKeyed(
    const RequestId& id, const std::string& record_key,
    const std::string& fingerprint, const Request& request, Handler& handler,
    DedupView view) {
  const uint64_t token =
      instance_nonce_ ^ (attempt_counter_.fetch_add(1) * 0x9e3779b97f4a7c15ULL);

  // A record found after our commit attempt: ours (token) or a concurrent
  // process's attempt at the same id.
  auto answer_from = [&](Record& r) -> absl::StatusOr<PipelineResult> {
    if (r.fingerprint != fingerprint) {
      return MakePipelineError(
          absl::FailedPreconditionError(
              "this request id was already used for a different request"),
          "key-reused");
    }
    if (r.token == token) {
      executed_.fetch_add(1, std::memory_order_relaxed);
      return PipelineResult{std::move(r.reply), false};
    }
    replayed_.fetch_add(1, std::memory_order_relaxed);
    return PipelineResult{std::move(r.reply), true};
  };
  // After a failed condition that may be due to the dedup view: read the
  // record and watermark latest. An answer (replay, 410), or nullopt: run
  // the handler again.
  auto revalidate = [&]() -> std::optional<absl::StatusOr<PipelineResult>> {
    revalidations_.fetch_add(1, std::memory_order_relaxed);
    absl::StatusOr<DedupView> v = ReadDedup(id, record_key, /*stale=*/false);
    if (!v.ok()) return v.status();
    view = *std::move(v);
    if (view.record) return answer_from(*view.record);
    if (id.kind == RequestId::Kind::kClientSeq && id.seq <= view.acked) {
      return AcknowledgedError(id);
    }
    return std::nullopt;
  };
  // The first run reads stale-allowed when the lookup did; every run after a
  // failed condition reads the latest state (a lagging replica would
  // otherwise fail the same condition again).
  bool stale_reads = view.stale;

  for (int attempt = 1;; ++attempt) {
    if (attempt > options_.max_attempts) {
      return absl::AbortedError(absl::StrCat(
          "request conflicted with concurrent requests ",
          options_.max_attempts, " times; retry"));
    }
    if (attempt > 1) reruns_.fetch_add(1, std::memory_order_relaxed);
    TransactionImpl txn(store_, Consistency(stale_reads));
    stale_reads = false;
    absl::StatusOr<Reply> reply = handler.Handle(request, txn);
    // An error built on stale reads (or on a stale lookup) is answered only
    // once confirmed, like a read-only reply (see ExecuteAsync's).
    if (!reply.ok() && !txn.stale() && !view.stale) return reply.status();

    std::vector<Condition> conditions = txn.Conditions();
    if (!txn.has_writes() || !reply.ok()) {
      std::vector<Condition> extra;
      if (view.stale) AddDedupConditions(view, record_key, &extra);
      absl::Status conflict;
      absl::StatusOr<bool> current =
          ReadsStillCurrent(store_, txn, extra, &conflict);
      if (!current.ok()) return current.status();
      if (!*current) {
        if (view.stale) {
          if (auto answer = revalidate()) return *std::move(answer);
        }
        continue;
      }
      if (!reply.ok()) return reply.status();
      read_only_.fetch_add(1, std::memory_order_relaxed);
      return PipelineResult{*std::move(reply), false};
    }

    FenceDecision fence;
    if (absl::Status f = AddFence(request, &conditions, &fence); !f.ok()) {
      return f;
    }
    Record record{fingerprint, token, absl::ToUnixMicros(clock_.Now()), *reply};
    AddDedupConditions(view, record_key, &conditions);
    std::vector<Write> writes = txn.Writes();
    writes.push_back(Write::Put(record_key, record.Encode()));
    writes.push_back(Write::Put(
        absl::StrCat(IndexPrefix(),
                     Hex16(static_cast<uint64_t>(std::max<int64_t>(
                         record.time_micros, 0))),
                     "/", IdPart(id)),
        ""));
    absl::StatusOr<uint64_t> c = store_.Commit(conditions, writes);
    if (c.ok()) {
      executed_.fetch_add(1, std::memory_order_relaxed);
      return PipelineResult{*std::move(reply), false};
    }
    const absl::Status& s = c.status();
    if (absl::Status d = DeposedError(s, fence); !d.ok()) return d;
    if (storage::IsConflict(s)) {
      std::optional<std::string> key = storage::ConflictKey(s);
      if (view.stale || !key || *key == record_key ||
          *key == view.watermark_key) {
        if (auto answer = revalidate()) return *std::move(answer);
      }
      continue;  // A read changed: run the handler again on fresh state.
    }
    if (s.code() == absl::StatusCode::kUnknown) {
      unknown_outcomes_.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("commit outcome unknown ({}); resolving by reading the "
                   "completion record",
                   std::string(s.message()));
      if (auto answer = revalidate()) return *std::move(answer);
      // Absent now. Running again is safe: every attempt commits only if the
      // record is absent, so at most one of them (the lost one, if it lands
      // late, or this one) ever commits, and the other finds its record.
      continue;
    }
    return s;
  }
}

absl::StatusOr<PipelineResult> RequestPipeline::ExecuteUnkeyed(
    const Request& request, Handler& handler) {
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    if (attempt > 1) reruns_.fetch_add(1, std::memory_order_relaxed);
    // Only the first run reads stale-allowed (see ExecuteKeyed).
    TransactionImpl txn(
        store_, Consistency(attempt == 1 && store_.StaleReadsAreCheaper()));
    absl::StatusOr<Reply> reply = handler.Handle(request, txn);
    if (!reply.ok() && !txn.stale()) return reply.status();
    std::vector<Condition> conditions = txn.Conditions();
    if (!txn.has_writes() || !reply.ok()) {
      absl::Status conflict;
      absl::StatusOr<bool> current =
          ReadsStillCurrent(store_, txn, {}, &conflict);
      if (!current.ok()) return current.status();
      if (!*current) continue;
      if (!reply.ok()) return reply.status();
      read_only_.fetch_add(1, std::memory_order_relaxed);
      return PipelineResult{*std::move(reply), false};
    }
    FenceDecision fence;
    if (absl::Status f = AddFence(request, &conditions, &fence); !f.ok()) {
      return f;
    }
    absl::StatusOr<uint64_t> c = store_.Commit(conditions, txn.Writes());
    if (c.ok()) {
      executed_.fetch_add(1, std::memory_order_relaxed);
      return PipelineResult{*std::move(reply), false};
    }
    if (absl::Status d = DeposedError(c.status(), fence); !d.ok()) return d;
    if (storage::IsConflict(c.status())) continue;
    if (c.status().code() == absl::StatusCode::kUnknown) {
      unknown_outcomes_.fetch_add(1, std::memory_order_relaxed);
      // Without a request id there is no record to resolve it by; the client
      // must not retry blindly.
      return MakePipelineError(
          absl::UnknownError(absl::StrCat(
              "commit outcome unknown (request had no idempotency key): ",
              std::string(c.status().message()))),
          "unknown");
    }
    return c.status();
  }
  return absl::AbortedError(
      absl::StrCat("request conflicted with concurrent requests ",
                   options_.max_attempts, " times; retry"));
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

// --- Garbage collection ---------------------------------------------------

absl::StatusOr<size_t> RequestPipeline::CollectGarbage() {
  absl::MutexLock gc_lock(&gc_mu_);
  absl::StatusOr<size_t> by_ack = CollectByWatermark();
  absl::StatusOr<size_t> by_age = CollectByAge();
  if (!by_ack.ok()) return by_ack.status();
  if (!by_age.ok()) return by_age.status();
  collected_.fetch_add(*by_ack + *by_age, std::memory_order_relaxed);
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
    for (; it != pending.end(); ++it) {
      uint64_t& a = pending_acks_[it->first];
      a = std::max(a, it->second);
    }
  };
  size_t deleted = 0;
  for (auto it = pending.begin(); it != pending.end(); ++it) {
    const std::string& client = it->first;
    const uint64_t acked = it->second;
    // 1. Persist the watermark (it only grows), so that Execute() refuses a
    //    late duplicate of a collected request instead of running it again.
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
          {{wkey, cur->version}}, {Write::Put(wkey, absl::StrCat(acked))});
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
          store_.Scan({prefix, start_after, options_.gc_batch});
      if (!kvs.ok()) {
        requeue(it);
        return kvs.status();
      }
      std::vector<Write> deletes;
      bool done = kvs->size() < options_.gc_batch;
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

absl::StatusOr<size_t> RequestPipeline::CollectByAge() {
  const int64_t cutoff =
      absl::ToUnixMicros(clock_.Now() - options_.retention);
  const std::string index_prefix = IndexPrefix();
  const std::string record_prefix = RecordPrefix();
  size_t deleted = 0;
  std::string start_after;
  for (;;) {
    absl::StatusOr<std::vector<KeyValue>> kvs =
        store_.Scan({index_prefix, start_after, options_.gc_batch});
    if (!kvs.ok()) return kvs.status();
    std::vector<Condition> conditions;
    std::vector<Write> writes;
    size_t records = 0;
    bool done = kvs->size() < options_.gc_batch;
    for (const KeyValue& kv : *kvs) {
      std::string_view rest = std::string_view(kv.key).substr(index_prefix.size());
      uint64_t micros = 0;
      if (rest.size() < 17 || !ParseHex16(rest.substr(0, 16), &micros)) {
        writes.push_back(Write::Delete(kv.key));  // Not ours; malformed.
        continue;
      }
      if (static_cast<int64_t>(micros) > cutoff) {
        done = true;
        break;
      }
      const std::string rkey = record_prefix + std::string(rest.substr(17));
      absl::StatusOr<Versioned> r = store_.Get(rkey);
      if (!r.ok()) return r.status();
      if (r->present()) {
        std::optional<Record> rec = Record::Decode(r->value);
        // The id may have been reused after an earlier collection: only a
        // record at least as old as this entry goes.
        if (!rec || rec->time_micros <= cutoff) {
          conditions.push_back({rkey, r->version});
          writes.push_back(Write::Delete(rkey));
          ++records;
        }
      }
      writes.push_back(Write::Delete(kv.key));
    }
    if (!writes.empty()) {
      absl::StatusOr<uint64_t> c = store_.Commit(conditions, writes);
      if (!c.ok()) {
        if (storage::IsConflict(c.status())) break;  // Next pass re-reads.
        return c.status();
      }
      deleted += records;
    }
    if (done || kvs->empty()) break;
    start_after = kvs->back().key;
  }
  return deleted;
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
  PipelineStats s;
  s.executed = executed_.load();
  s.replayed = replayed_.load();
  s.read_only = read_only_.load();
  s.reruns = reruns_.load();
  s.unknown_outcomes = unknown_outcomes_.load();
  s.waited = waited_.load();
  s.collected = collected_.load();
  s.revalidations = revalidations_.load();
  s.lookups_skipped = lookups_skipped_.load();
  return s;
}

}  // namespace baton::framework

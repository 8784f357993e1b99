#include "storage/etcd/etcd_store.h"

#include <pthread.h>

#include <algorithm>
#include <map>
#include <string_view>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "spdlog/spdlog.h"
#include "storage/etcd/capacity.h"
#include "storage/etcd/commit_queue.h"
#include "storage/etcd/etcd_client.h"
#include "storage/etcd/read_cache.h"

namespace baton::storage {
namespace {

using etcd_internal::CallKind;
using etcd_internal::Endpoint;

// etcd's raft envelope around a request (header, ids, user name): etcd
// checks its limit on the envelope, so leave room for it.
constexpr size_t kRaftEnvelopeBytes = 1024;

// The first key after every key that starts with `prefix`; "\0" (etcd's
// "to the end of the key space") when there is none.
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty()) {
    unsigned char last = static_cast<unsigned char>(prefix.back());
    if (last != 0xff) {
      prefix.back() = static_cast<char>(last + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');
}

// The etcd key through which every baton store on a cluster takes turns
// compacting (compaction is cluster-wide). Outside every key prefix (no
// service's keys or scans see it), as the Kubernetes API server keeps its
// compact_rev_key outside its /registry.
constexpr char kCompactKey[] = "\xff" "baton/compact";

// The outcome of one commit from its Txn's response: the revision when its
// compares held, else a conflict naming the first key whose version differed
// (its failure branch read every condition's key in the same snapshot).
absl::StatusOr<uint64_t> CommitOutcome(const etcdserverpb::TxnResponse& resp,
                                       int64_t revision,
                                       const std::vector<Condition>& conditions) {
  if (resp.succeeded()) return static_cast<uint64_t>(revision);
  for (size_t i = 0; i < conditions.size(); ++i) {
    if (static_cast<int>(i) >= resp.responses_size()) break;
    const etcdserverpb::RangeResponse& r = resp.responses(static_cast<int>(i)).response_range();
    const uint64_t seen = r.kvs_size() > 0 ? static_cast<uint64_t>(r.kvs(0).mod_revision()) : 0;
    if (seen != conditions[i].expected_version) return ConflictError(conditions[i].key);
  }
  // etcd said a compare failed but every key reads as expected: cannot
  // happen within one txn; name the first key rather than none.
  return conditions.empty() ? absl::InternalError("etcd: txn without compares failed")
                            : ConflictError(conditions.front().key);
}

}  // namespace

// One commit, from CommitAsync() until its callback has run: what the
// group-commit queue looks at (keys, size), its Txn, and what its outcome is
// for.
struct EtcdStore::QueuedCommit : etcd_internal::PendingCommit {
  etcdserverpb::TxnRequest txn;
  std::vector<Condition> conditions;
  std::vector<Write> writes;
  CommitCallback done;
};

// A batch on its way: the Txn that carries it and the answer.
struct EtcdStore::SentBatch {
  etcd_internal::CommitBatch batch;
  bool queued = false;  // released by queue_ (group commit), which must hear of it
  etcdserverpb::TxnRequest request;
  etcdserverpb::TxnResponse response;
};

namespace {

etcd_internal::CommitQueue::Options QueueOptions(const EtcdOptions& o) {
  etcd_internal::CommitQueue::Options q;
  q.max_in_flight = std::max<size_t>(o.max_commit_txns_in_flight, 1);
  q.stuck_after_ns = std::chrono::nanoseconds(o.stuck_batch_after).count();
  q.max_members = std::max<size_t>(o.max_txn_ops, 1);
  q.byte_budget = o.max_request_bytes > kRaftEnvelopeBytes ? o.max_request_bytes - kRaftEnvelopeBytes
                                                           : 0;
  return q;
}

}  // namespace

EtcdStore::EtcdStore(EtcdOptions options,
                     std::unique_ptr<etcd_internal::Client> client)
    : options_(std::move(options)),
      client_(std::move(client)),
      cache_(std::make_unique<etcd_internal::ReadCache>(options_.read_cache_bytes)),
      queue_(std::make_unique<etcd_internal::CommitQueue>(QueueOptions(options_))) {}

EtcdStore::~EtcdStore() {
  {
    absl::MutexLock lock(&maintenance_mu_);
    stop_maintenance_ = true;
  }
  if (probe_thread_.joinable()) probe_thread_.join();
  if (maintenance_thread_.joinable()) maintenance_thread_.join();
  // Before the queue and the cache go: the callbacks of the commits still
  // in flight use them.
  client_->Shutdown();
}

absl::StatusOr<Versioned> EtcdStore::Get(std::string_view key) {
  etcdserverpb::RangeRequest req;
  req.set_key(absl::StrCat(options_.key_prefix, ToAbsl(key)));
  etcdserverpb::RangeResponse resp;
  absl::Status s = client_->Call(CallKind::kRead, [&](Endpoint& ep, grpc::ClientContext& ctx) {
    return ep.kv->Range(&ctx, req, &resp);
  });
  if (!s.ok()) return s;
  Versioned out;
  if (resp.kvs_size() > 0) {
    out.value = resp.kvs(0).value();
    out.version = static_cast<uint64_t>(resp.kvs(0).mod_revision());
  }
  cache_->Observe(key, out, static_cast<uint64_t>(resp.header().revision()));
  return out;
}

absl::StatusOr<std::vector<Versioned>> EtcdStore::GetMany(const std::vector<std::string>& keys,
                                                          const ReadOptions& options) {
  const bool serializable = options.consistency == ReadConsistency::kMayBeStale;
  std::vector<Versioned> out(keys.size());
  // The keys to read from etcd (all of them for kLatest) and where their
  // answers go in `out`.
  std::vector<std::string> missing;
  std::vector<size_t> slot;
  if (serializable) {
    for (size_t i = 0; i < keys.size(); ++i) {
      if (std::optional<Versioned> v = cache_->Lookup(keys[i])) {
        out[i] = *std::move(v);
      } else {
        missing.push_back(keys[i]);
        slot.push_back(i);
      }
    }
    cache_hits_.fetch_add(keys.size() - missing.size(), std::memory_order_relaxed);
    cache_misses_.fetch_add(missing.size(), std::memory_order_relaxed);
    if (missing.empty()) return out;
  }
  const std::vector<std::string>& to_read = serializable ? missing : keys;
  std::vector<Versioned> read;
  read.reserve(to_read.size());
  auto take = [&](const etcdserverpb::RangeResponse& r, int64_t revision) {
    Versioned v;
    if (r.kvs_size() > 0) {
      v.value = r.kvs(0).value();
      v.version = static_cast<uint64_t>(r.kvs(0).mod_revision());
    }
    cache_->Observe(to_read[read.size()], v, static_cast<uint64_t>(revision));
    read.push_back(std::move(v));
  };
  if (to_read.size() == 1) {
    etcdserverpb::RangeRequest req;
    req.set_key(absl::StrCat(options_.key_prefix, ToAbsl(to_read[0])));
    req.set_serializable(serializable);
    etcdserverpb::RangeResponse resp;
    absl::Status s = client_->Call(CallKind::kRead, [&](Endpoint& ep, grpc::ClientContext& ctx) {
      return ep.kv->Range(&ctx, req, &resp);
    });
    if (!s.ok()) return s;
    take(resp, resp.header().revision());
  } else {
    // etcd refuses a txn with more than --max-txn-ops operations: one txn
    // per chunk. A txn without compares and puts is read-only; it is
    // serializable (served from the member's state) when every range in it
    // is.
    const size_t chunk = std::max<size_t>(options_.max_txn_ops, 1);
    for (size_t begin = 0; begin < to_read.size(); begin += chunk) {
      const size_t end = std::min(to_read.size(), begin + chunk);
      etcdserverpb::TxnRequest req;
      for (size_t i = begin; i < end; ++i) {
        etcdserverpb::RangeRequest* r = req.add_success()->mutable_request_range();
        r->set_key(absl::StrCat(options_.key_prefix, ToAbsl(to_read[i])));
        r->set_serializable(serializable);
      }
      etcdserverpb::TxnResponse resp;
      absl::Status s = client_->Call(CallKind::kRead, [&](Endpoint& ep, grpc::ClientContext& ctx) {
        return ep.kv->Txn(&ctx, req, &resp);
      });
      if (!s.ok()) return s;
      if (!resp.succeeded() || resp.responses_size() != static_cast<int>(end - begin)) {
        return absl::InternalError("etcd: read-only txn answered with the wrong shape");
      }
      for (const etcdserverpb::ResponseOp& op : resp.responses()) {
        take(op.response_range(), resp.header().revision());
      }
    }
  }
  if (!serializable) return read;
  for (size_t j = 0; j < slot.size(); ++j) out[slot[j]] = std::move(read[j]);
  return out;
}

absl::StatusOr<std::vector<KeyValue>> EtcdStore::Scan(const ScanOptions& options) {
  std::vector<KeyValue> out;
  if (options.limit == 0) return out;
  const std::string& ns = options_.key_prefix;
  std::string begin = absl::StrCat(ns, ToAbsl(options.prefix));
  const std::string end = PrefixEnd(begin);
  if (!options.start_after.empty()) {
    // The smallest key after start_after.
    std::string after = absl::StrCat(ns, ToAbsl(options.start_after));
    after.push_back('\0');
    begin = std::max(begin, after);
    if (end != std::string(1, '\0') && begin >= end) return out;
  }
  etcdserverpb::RangeRequest req;
  req.set_key(begin);
  req.set_range_end(end);
  req.set_limit(static_cast<int64_t>(std::min<size_t>(options.limit, INT64_MAX)));
  // etcd returns a range in key order (bytewise) already; asking for it
  // explicitly costs nothing and does not depend on that default.
  req.set_sort_order(etcdserverpb::RangeRequest::ASCEND);
  req.set_sort_target(etcdserverpb::RangeRequest::KEY);
  etcdserverpb::RangeResponse resp;
  absl::Status s = client_->Call(CallKind::kRead, [&](Endpoint& ep, grpc::ClientContext& ctx) {
    return ep.kv->Range(&ctx, req, &resp);
  });
  if (!s.ok()) return s;
  out.reserve(static_cast<size_t>(resp.kvs_size()));
  for (const mvccpb::KeyValue& kv : resp.kvs()) {
    if (kv.key().compare(0, ns.size(), ns) != 0) {
      return absl::DataLossError("etcd: range returned a key outside the prefix");
    }
    out.push_back(KeyValue{kv.key().substr(ns.size()), kv.value(),
                           static_cast<uint64_t>(kv.mod_revision())});
  }
  return out;
}

absl::StatusOr<std::unique_ptr<EtcdStore::QueuedCommit>> EtcdStore::BuildCommit(
    std::vector<Condition> conditions, std::vector<Write> writes) const {
  const std::string& ns = options_.key_prefix;
  // etcd refuses a txn that writes one key twice; the contract lets the last
  // write of a key win, so keep only that one.
  std::map<std::string_view, const Write*> last;
  for (const Write& w : writes) last[w.key] = &w;

  if (conditions.size() > options_.max_txn_ops || last.size() > options_.max_txn_ops) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "etcd: commit with ", conditions.size(), " conditions and ", last.size(),
        " written keys exceeds max_txn_ops = ", options_.max_txn_ops,
        " (etcd's --max-txn-ops); not sent"));
  }

  auto c = std::make_unique<QueuedCommit>();
  etcdserverpb::TxnRequest& req = c->txn;
  for (const Condition& cond : conditions) {
    std::string key = absl::StrCat(ns, ToAbsl(cond.key));
    etcdserverpb::Compare* cmp = req.add_compare();
    cmp->set_result(etcdserverpb::Compare::EQUAL);
    cmp->set_target(etcdserverpb::Compare::MOD);
    cmp->set_key(key);
    // An absent key compares as mod_revision 0.
    cmp->set_mod_revision(static_cast<int64_t>(cond.expected_version));
    // On failure, read every condition's key in the same txn, so the key
    // that failed is known from the same snapshot the compare saw.
    etcdserverpb::RangeRequest* r = req.add_failure()->mutable_request_range();
    r->set_key(key);
    r->set_keys_only(true);
    c->compared.push_back(std::move(key));
  }
  for (const Write& w : writes) {
    if (last[w.key] != &w) continue;
    std::string key = absl::StrCat(ns, ToAbsl(w.key));
    etcdserverpb::RequestOp* op = req.add_success();
    if (w.kind == Write::Kind::kPut) {
      etcdserverpb::PutRequest* put = op->mutable_request_put();
      put->set_key(key);
      put->set_value(w.value);
    } else {
      op->mutable_request_delete_range()->set_key(key);
    }
    c->written.push_back(std::move(key));
  }
  c->bytes = req.ByteSizeLong();
  if (c->bytes + kRaftEnvelopeBytes > options_.max_request_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "etcd: commit of ", c->bytes, " bytes (+", kRaftEnvelopeBytes,
        " for etcd's envelope) exceeds max_request_bytes = ", options_.max_request_bytes,
        " (etcd's --max-request-bytes); not sent"));
  }
  c->conditions = std::move(conditions);
  c->writes = std::move(writes);
  return c;
}

absl::StatusOr<uint64_t> EtcdStore::Commit(const std::vector<Condition>& conditions,
                                           const std::vector<Write>& writes) {
  if (client_->InCallback()) {
    // A callback of this store committing synchronously: waiting for the
    // batch queue from here could wait for this very callback to return.
    // Send this commit alone, blocking here.
    absl::StatusOr<std::unique_ptr<QueuedCommit>> c = BuildCommit(conditions, writes);
    if (!c.ok()) return c.status();
    commits_.fetch_add(1, std::memory_order_relaxed);
    commit_txns_.fetch_add(1, std::memory_order_relaxed);
    etcdserverpb::TxnResponse resp;
    const etcdserverpb::TxnRequest& req = (*c)->txn;
    absl::Status s = client_->Call(CallKind::kWrite, [&](Endpoint& ep, grpc::ClientContext& ctx) {
      return ep.kv->Txn(&ctx, req, &resp);
    });
    absl::StatusOr<uint64_t> result =
        s.ok() ? CommitOutcome(resp, resp.header().revision(), (*c)->conditions)
               : absl::StatusOr<uint64_t>(s);
    NoteCommit((*c)->conditions, (*c)->writes, result);
    return result;
  }
  // The one commit path, waited for.
  absl::Notification answered;
  absl::StatusOr<uint64_t> result = absl::InternalError("not answered");
  CommitAsync(conditions, writes, [&](absl::StatusOr<uint64_t> r) {
    result = std::move(r);
    answered.Notify();
  });
  answered.WaitForNotification();
  return result;
}

void EtcdStore::CommitAsync(std::vector<Condition> conditions, std::vector<Write> writes,
                            CommitCallback done) {
  absl::StatusOr<std::unique_ptr<QueuedCommit>> c =
      BuildCommit(std::move(conditions), std::move(writes));
  if (!c.ok()) {
    done(c.status());
    return;
  }
  (*c)->done = std::move(done);
  commits_.fetch_add(1, std::memory_order_relaxed);
  if (!options_.group_commits) {
    etcd_internal::CommitBatch lone;
    lone.members.push_back(c->release());
    SendBatch(std::move(lone), /*queued=*/false);
    return;
  }
  std::vector<etcd_internal::CommitBatch> ready;
  {
    absl::MutexLock lock(&commit_mu_);
    ready = queue_->Add(c->release(), etcd_internal::Client::NowNs());
    ArmTick();
  }
  for (etcd_internal::CommitBatch& b : ready) SendBatch(std::move(b), /*queued=*/true);
}

void EtcdStore::ArmTick() {
  const std::optional<int64_t> at = queue_->NextTick();
  if (!at || (tick_at_ && *tick_at_ <= *at)) return;
  tick_at_ = *at;
  client_->RunAt(*at, [this] { OnTick(); });
}

void EtcdStore::OnTick() {
  std::vector<etcd_internal::CommitBatch> ready;
  {
    absl::MutexLock lock(&commit_mu_);
    const int64_t now = etcd_internal::Client::NowNs();
    if (tick_at_ && *tick_at_ <= now) tick_at_.reset();
    ready = queue_->Tick(now);
    ArmTick();
  }
  for (etcd_internal::CommitBatch& b : ready) SendBatch(std::move(b), /*queued=*/true);
}

void EtcdStore::SendBatch(etcd_internal::CommitBatch batch, bool queued) {
  commit_txns_.fetch_add(1, std::memory_order_relaxed);
  auto* sent = new SentBatch;
  sent->batch = std::move(batch);
  sent->queued = queued;
  if (sent->batch.members.size() == 1) {
    sent->request.Swap(&static_cast<QueuedCommit*>(sent->batch.members[0])->txn);
  } else {
    // No compares of its own: the outer Txn always takes its success
    // branch, and each nested Txn decides by its own compares.
    for (etcd_internal::PendingCommit* p : sent->batch.members) {
      sent->request.add_success()->mutable_request_txn()->Swap(
          &static_cast<QueuedCommit*>(p)->txn);
    }
  }
  client_->TxnAsync(CallKind::kWrite, &sent->request, &sent->response,
                    [this, sent](absl::Status s) { OnBatchAnswered(sent, std::move(s)); });
}

void EtcdStore::OnBatchAnswered(SentBatch* sent, absl::Status s) {
  const std::vector<etcd_internal::PendingCommit*>& members = sent->batch.members;
  const etcdserverpb::TxnResponse& resp = sent->response;
  std::vector<absl::StatusOr<uint64_t>> results;
  results.reserve(members.size());
  if (members.size() == 1) {
    results.push_back(s.ok() ? CommitOutcome(resp, resp.header().revision(),
                                             static_cast<QueuedCommit*>(members[0])->conditions)
                             : absl::StatusOr<uint64_t>(s));
  } else {
    if (s.ok() &&
        (!resp.succeeded() || resp.responses_size() != static_cast<int>(members.size()))) {
      // Applied, but in a shape that says nothing about each commit.
      s = absl::UnknownError("etcd: group commit answered with the wrong shape");
    }
    for (size_t i = 0; i < members.size(); ++i) {
      if (!s.ok()) {
        // Call() counted the request once; each commit in it has that outcome.
        if (absl::IsUnknown(s) && i > 0) client_->CountUnknown();
        results.push_back(s);
        continue;
      }
      results.push_back(CommitOutcome(resp.responses(static_cast<int>(i)).response_txn(),
                                      resp.header().revision(),
                                      static_cast<QueuedCommit*>(members[i])->conditions));
    }
  }
  if (sent->queued) {
    // The next batch goes out before this one's callbacks run.
    std::vector<etcd_internal::CommitBatch> ready;
    {
      absl::MutexLock lock(&commit_mu_);
      ready = queue_->Done(sent->batch.id, etcd_internal::Client::NowNs());
      ArmTick();
    }
    for (etcd_internal::CommitBatch& b : ready) SendBatch(std::move(b), /*queued=*/true);
  }
  for (size_t i = 0; i < members.size(); ++i) {
    std::unique_ptr<QueuedCommit> c(static_cast<QueuedCommit*>(members[i]));
    NoteCommit(c->conditions, c->writes, results[i]);
    CommitCallback done = std::move(c->done);
    c.reset();
    done(std::move(results[i]));
  }
  delete sent;
}

void EtcdStore::NoteCommit(const std::vector<Condition>& conditions,
                           const std::vector<Write>& writes,
                           const absl::StatusOr<uint64_t>& result) {
  if (result.ok()) {
    uint64_t bytes = 0;
    for (const Write& w : writes) bytes += w.key.size() + w.value.size();
    written_bytes_.fetch_add(bytes, std::memory_order_relaxed);
    for (const Write& w : writes) {
      // The last write of a key wins, as in the commit itself. Only keys the
      // cache holds (keys this process reads) are updated.
      cache_->Refresh(w.key,
                      w.kind == Write::Kind::kPut ? Versioned{w.value, *result} : Versioned{},
                      *result);
    }
    return;
  }
  if (IsConflict(result.status())) {
    // The named key is not what the caller read; the others may not be
    // either. The caller's latest re-read refreshes them.
    for (const Condition& c : conditions) cache_->Forget(c.key);
    return;
  }
  // Unknown outcome (or refused): the written keys may or may not have
  // changed.
  for (const Write& w : writes) cache_->Forget(w.key);
}

absl::Status EtcdStore::Ping() {
  etcdserverpb::StatusRequest req;
  etcdserverpb::StatusResponse resp;
  std::string target;
  absl::Status s = client_->Call(CallKind::kRead, [&](Endpoint& ep, grpc::ClientContext& ctx) {
    target = ep.target;
    return ep.maintenance->Status(&ctx, req, &resp);
  });
  if (!s.ok()) return s;
  if (resp.leader() == 0) {
    return absl::UnavailableError(absl::StrCat("etcd at ", target, ": no leader"));
  }
  if (resp.errors_size() > 0) {
    return absl::UnavailableError(absl::StrCat("etcd at ", target, ": ",
                                               absl::StrJoin(resp.errors(), "; ")));
  }
  return absl::OkStatus();
}

EtcdStoreStats EtcdStore::Stats() const {
  EtcdStoreStats s = client_->Stats();
  s.commits = commits_.load(std::memory_order_relaxed);
  s.commit_txns = commit_txns_.load(std::memory_order_relaxed);
  s.cache_hits = cache_hits_.load(std::memory_order_relaxed);
  s.cache_misses = cache_misses_.load(std::memory_order_relaxed);
  s.written_bytes = written_bytes_.load(std::memory_order_relaxed);
  s.compactions = compactions_.load(std::memory_order_relaxed);
  s.compacted_revision = compacted_revision_.load(std::memory_order_relaxed);
  s.keys = keys_.load(std::memory_order_relaxed);
  {
    absl::MutexLock lock(&commit_mu_);
    s.stuck_batches = queue_->stuck_batches();
  }
  if (std::optional<etcd_internal::MemberHealth> h = client_->LastHealth()) {
    s.db_size_bytes = static_cast<uint64_t>(std::max<int64_t>(h->db_size, 0));
    s.db_size_in_use_bytes = static_cast<uint64_t>(std::max<int64_t>(h->db_size_in_use, 0));
    s.revision = static_cast<uint64_t>(std::max<int64_t>(h->revision, 0));
  }
  return s;
}

double EtcdStore::SustainableCommitRate(const EtcdStoreStats& st) const {
  // History lives up to two compaction intervals (compacted to what was
  // seen one interval earlier, once an interval); without the store's
  // compaction, assume etcd's own keeps it as short.
  const double interval_s = static_cast<double>(options_.compaction_interval.count());
  return etcd_internal::SustainableCommitRate(
      options_.quota_backend_bytes, static_cast<double>(options_.record_retention.count()),
      2 * interval_s, etcd_internal::BytesPerCommit(st.written_bytes, st.commits));
}

size_t EtcdStore::MaxCommitOps() const { return options_.max_txn_ops; }

std::vector<StoreStatistic> EtcdStore::Statistics() const {
  const EtcdStoreStats st = Stats();
  auto n = [](uint64_t v) { return static_cast<double>(v); };
  return {
      {"commits", n(st.commits), "Commits sent (alone or grouped).", true},
      {"commit_txns", n(st.commit_txns),
       "etcd Txn requests that carried the commits (fewer with group commit).",
       true},
      {"cache_hits", n(st.cache_hits),
       "Stale-allowed reads answered from the read cache.", true},
      {"cache_misses", n(st.cache_misses),
       "Stale-allowed reads that went to etcd.", true},
      {"endpoint_failovers", n(st.failovers),
       "Calls that moved to another etcd endpoint.", true},
      {"unknown_outcomes", n(st.unknown_outcomes),
       "Commits whose outcome was unknown (resolved by reading).", true},
      {"authentications", n(st.authentications),
       "Successful etcd authentications.", true},
      {"probe_failures", n(st.probe_failures),
       "Health probes that found the etcd member in use dead or without a leader.", true},
      {"cancelled_calls", n(st.cancelled_calls),
       "etcd calls cancelled because their member failed or changed leader.", true},
      {"stuck_batches", n(st.stuck_batches),
       "Group-commit batches unanswered past stuck_batch_after.", true},
      {"written_bytes", n(st.written_bytes),
       "Bytes of keys and values in acknowledged commits.", true},
      {"compactions", n(st.compactions), "etcd history compactions made by this store.", true},
      {"compacted_revision", n(st.compacted_revision),
       "The revision etcd's history was last compacted to by this store.", false},
      {"keys", n(st.keys),
       "Keys under the store's key prefix (the framework's records included), last counted.",
       false},
      {"db_size_bytes", n(st.db_size_bytes),
       "Size of the etcd member's database file (etcd's quota applies to it).", false},
      {"db_size_in_use_bytes", n(st.db_size_in_use_bytes),
       "Part of the etcd member's database file in use (the rest is free pages).", false},
      {"quota_bytes", n(options_.quota_backend_bytes),
       "etcd's database quota as configured (EtcdOptions::quota_backend_bytes).", false},
      {"revision", n(st.revision), "etcd's store revision, last seen.", false},
      {"sustainable_commit_rate", SustainableCommitRate(st),
       "Commits per second the quota holds for the record retention (half the quota, the "
       "observed bytes per commit).",
       false},
  };
}

std::string EtcdStore::CurrentEndpoint() const { return client_->CurrentEndpoint().target; }

// ---------------------------------------------------------- maintenance ----

void EtcdStore::StartMaintenance() {
  if (options_.health_probe_interval.count() > 0) {
    probe_thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "etcd-probe");
      const absl::Duration period = absl::FromChrono(options_.health_probe_interval);
      for (;;) {
        {
          absl::MutexLock lock(&maintenance_mu_);
          maintenance_mu_.AwaitWithTimeout(absl::Condition(&stop_maintenance_), period);
          if (stop_maintenance_) return;
        }
        client_->ProbeOnce();
      }
    });
  }
  if (options_.compaction_interval.count() > 0 || options_.statistics_interval.count() > 0) {
    maintenance_thread_ = std::thread([this] { MaintenanceLoop(); });
  }
}

void EtcdStore::MaintenanceLoop() {
  pthread_setname_np(pthread_self(), "etcd-maintain");
  using etcd_internal::Client;
  const int64_t compact_every = std::chrono::nanoseconds(options_.compaction_interval).count();
  const int64_t count_every = std::chrono::nanoseconds(options_.statistics_interval).count();
  // The first compaction turn one interval after open (it only notes the
  // revision: compacting starts one interval later); the first count soon,
  // to give the statistics a value.
  int64_t next_compact = compact_every > 0 ? Client::NowNs() + compact_every : INT64_MAX;
  int64_t next_count = count_every > 0 ? Client::NowNs() + 1000000000 : INT64_MAX;
  int64_t window_start_ns = Client::NowNs();
  uint64_t window_start_commits = commits_.load(std::memory_order_relaxed);
  for (;;) {
    {
      absl::MutexLock lock(&maintenance_mu_);
      const int64_t wait_ns = std::min(next_compact, next_count) - Client::NowNs();
      if (wait_ns > 0) {
        maintenance_mu_.AwaitWithTimeout(absl::Condition(&stop_maintenance_),
                                         absl::Nanoseconds(wait_ns));
      }
      if (stop_maintenance_) return;
    }
    const int64_t now = Client::NowNs();
    if (now >= next_compact) {
      CompactOnce();
      next_compact = now + compact_every;
    }
    if (now >= next_count) {
      CountKeys();
      // The capacity check with the rate seen since the last count.
      const uint64_t commits = commits_.load(std::memory_order_relaxed);
      const double seconds = static_cast<double>(now - window_start_ns) / 1e9;
      if (seconds > 0 && commits > window_start_commits) {
        CheckCapacity(static_cast<double>(commits - window_start_commits) / seconds, "observed");
      }
      window_start_ns = now;
      window_start_commits = commits;
      next_count = now + count_every;
    }
  }
}

void EtcdStore::CountKeys() {
  etcdserverpb::RangeRequest req;
  req.set_key(options_.key_prefix);
  req.set_range_end(PrefixEnd(options_.key_prefix));
  req.set_count_only(true);
  req.set_serializable(true);  // the member's own state: no raft round
  etcdserverpb::RangeResponse resp;
  absl::Status s = client_->Call(CallKind::kRead, [&](Endpoint& ep, grpc::ClientContext& ctx) {
    return ep.kv->Range(&ctx, req, &resp);
  });
  if (!s.ok()) {
    spdlog::debug("etcd: counting the keys under the prefix failed: {}", s.ToString());
    return;
  }
  keys_.store(static_cast<uint64_t>(std::max<int64_t>(resp.count(), 0)),
              std::memory_order_relaxed);
}

void EtcdStore::CompactOnce() {
  // The Kubernetes API server's scheme: a compare-and-swap on the version
  // of one key decides which of the servers sharing it compacts this
  // interval; the winner compacts to the revision seen one interval ago,
  // so at least one interval of history is always kept.
  const std::string key = kCompactKey;
  etcdserverpb::TxnRequest req;
  etcdserverpb::Compare* cmp = req.add_compare();
  cmp->set_result(etcdserverpb::Compare::EQUAL);
  cmp->set_target(etcdserverpb::Compare::VERSION);
  cmp->set_key(key);
  cmp->set_version(compact_key_version_);
  etcdserverpb::PutRequest* put = req.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value(absl::StrCat(compact_target_));
  req.add_failure()->mutable_request_range()->set_key(key);
  etcdserverpb::TxnResponse resp;
  // Sent like a read (again elsewhere after an ambiguous failure): a
  // compare-and-swap applied twice fails the second time, which only
  // teaches this store the key's version.
  absl::Status s = client_->Call(CallKind::kRead, [&](Endpoint& ep, grpc::ClientContext& ctx) {
    return ep.kv->Txn(&ctx, req, &resp);
  });
  if (!s.ok()) {
    spdlog::debug("etcd: compaction turn failed: {}", s.ToString());
    return;
  }
  const int64_t seen = resp.header().revision();
  if (!resp.succeeded()) {
    // Another server took this turn (or this one's last turn is unknown).
    const etcdserverpb::RangeResponse& r = resp.responses(0).response_range();
    compact_key_version_ = r.kvs_size() > 0 ? r.kvs(0).version() : 0;
    compact_target_ = seen;
    return;
  }
  ++compact_key_version_;
  const int64_t target = compact_target_;
  compact_target_ = seen;
  if (target <= 0) return;  // the first turn only notes the revision
  etcdserverpb::CompactionRequest creq;
  creq.set_revision(target);
  etcdserverpb::CompactionResponse cresp;
  s = client_->Call(CallKind::kRead, [&](Endpoint& ep, grpc::ClientContext& ctx) {
    return ep.kv->Compact(&ctx, creq, &cresp);
  });
  if (!s.ok() && !absl::StrContains(s.message(), "required revision has been compacted")) {
    spdlog::warn("etcd: compacting history up to revision {} failed: {}", target, s.ToString());
    return;
  }
  compactions_.fetch_add(1, std::memory_order_relaxed);
  compacted_revision_.store(static_cast<uint64_t>(target), std::memory_order_relaxed);
  spdlog::debug("etcd: history compacted up to revision {}", target);
}

void EtcdStore::CheckCapacity(double commits_per_second, const char* which) {
  const EtcdStoreStats st = Stats();
  const double sustainable = SustainableCommitRate(st);
  if (commits_per_second <= sustainable) return;
  // Once per doubling of the rate, not at every count.
  if (commits_per_second < 2 * warned_rate_) return;
  warned_rate_ = commits_per_second;
  spdlog::warn(
      "etcd: the quota of {} MiB holds about {:.0f} commits/s with records kept {} s "
      "({:.0f} B per commit); at the {} rate of {:.0f} commits/s etcd fills up and refuses "
      "writes (NOSPACE). Raise --quota-backend-bytes (and quota_backend_bytes), shorten the "
      "retention, or have clients acknowledge their replies (docs/etcd.md, \"Capacity "
      "planning\")",
      options_.quota_backend_bytes >> 20, sustainable, options_.record_retention.count(),
      etcd_internal::BytesPerCommit(st.written_bytes, st.commits), which, commits_per_second);
}

void EtcdStore::WaitForFirstEndpoint() {
  using etcd_internal::Client;
  const std::string target = client_->endpoint(0).target;
  const int64_t start = Client::NowNs();
  const int64_t deadline =
      start + std::chrono::nanoseconds(options_.wait_for_first_endpoint).count();
  spdlog::info("etcd: waiting up to {} ms for {} (the first endpoint) to serve",
               options_.wait_for_first_endpoint.count(), target);
  std::string why;
  for (;;) {
    // A linearizable read answered by this member: it has a leader and has
    // applied the log up to the leader's commit index.
    etcdserverpb::RangeRequest req;
    req.set_key(options_.key_prefix);
    req.set_keys_only(true);
    req.set_limit(1);
    etcdserverpb::RangeResponse resp;
    grpc::ClientContext ctx;
    client_->Prepare(ctx);
    const int64_t left_ms = std::max<int64_t>((deadline - Client::NowNs()) / 1000000, 1);
    ctx.set_deadline(gpr_time_from_millis(
        std::min<int64_t>(left_ms, options_.request_timeout.count()), GPR_TIMESPAN));
    // Waits for the connection within the deadline. A fail-fast call would
    // fail at once on a channel in backoff, and nothing else polls the
    // channel's connection attempt before the store has sent anything: the
    // attempt would time out every time (gRPC: "tcp handshaker shutdown").
    ctx.set_wait_for_ready(true);
    const grpc::Status s = client_->endpoint(0).kv->Range(&ctx, req, &resp);
    if (s.ok()) {
      spdlog::info("etcd: {} serves (waited {} ms)", target, (Client::NowNs() - start) / 1000000);
      return;
    }
    why = s.error_message();
    if (Client::NowNs() >= deadline) break;
    // A start-up poll, not a protocol step.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (Client::NowNs() >= deadline) break;
  }
  spdlog::warn("etcd: {} (the first endpoint) does not serve after {} ms ({}); opening anyway, "
               "on the other members",
               target, options_.wait_for_first_endpoint.count(), why);
}

absl::StatusOr<std::unique_ptr<EtcdStore>> OpenEtcd(const EtcdOptions& options) {
  absl::StatusOr<std::unique_ptr<etcd_internal::Client>> client =
      etcd_internal::Client::Create(options);
  if (!client.ok()) return client.status();
  std::unique_ptr<EtcdStore> store(new EtcdStore(options, std::move(*client)));
  if (options.wait_for_first_endpoint.count() > 0) store->WaitForFirstEndpoint();
  if (options.expected_commits_per_second > 0) {
    store->CheckCapacity(options.expected_commits_per_second, "configured");
  }
  store->StartMaintenance();
  return store;
}

absl::StatusOr<std::unique_ptr<StableStore>> OpenEtcdStore(const EtcdOptions& options) {
  absl::StatusOr<std::unique_ptr<EtcdStore>> store = OpenEtcd(options);
  if (!store.ok()) return store.status();
  return std::unique_ptr<StableStore>(std::move(*store));
}

}  // namespace baton::storage

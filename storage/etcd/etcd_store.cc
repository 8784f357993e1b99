#include "storage/etcd/etcd_store.h"

#include <algorithm>
#include <map>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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

// A nested Txn costs its own encoding plus this much in the outer one (tag,
// length and the RequestOp around it).
constexpr size_t kNestingBytes = 16;

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

// One caller of Commit(), queued for group commit. Owned by the caller's
// stack frame; the fields after `txn` are written by the thread that sends
// the batch, under commit_mu_ (done, result) or before it is published.
struct EtcdStore::PendingCommit {
  etcdserverpb::TxnRequest txn;
  const std::vector<Condition>* conditions = nullptr;
  // etcd keys (prefixed) this commit compares and writes.
  std::vector<std::string> compared;
  std::vector<std::string> written;
  size_t bytes = 0;

  absl::CondVar cv;
  bool taken = false;  // in a batch (no longer queued)
  bool done = false;   // its batch was answered; result is set
  absl::StatusOr<uint64_t> result = absl::InternalError("not sent");
};

EtcdStore::EtcdStore(EtcdOptions options,
                     std::unique_ptr<etcd_internal::Client> client)
    : options_(std::move(options)),
      client_(std::move(client)),
      cache_(std::make_unique<etcd_internal::ReadCache>(options_.read_cache_bytes)) {}

EtcdStore::~EtcdStore() = default;

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

absl::StatusOr<uint64_t> EtcdStore::Commit(const std::vector<Condition>& conditions,
                                           const std::vector<Write>& writes) {
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

  PendingCommit me;
  me.conditions = &conditions;
  etcdserverpb::TxnRequest& req = me.txn;
  for (const Condition& c : conditions) {
    std::string key = absl::StrCat(ns, ToAbsl(c.key));
    etcdserverpb::Compare* cmp = req.add_compare();
    cmp->set_result(etcdserverpb::Compare::EQUAL);
    cmp->set_target(etcdserverpb::Compare::MOD);
    cmp->set_key(key);
    // An absent key compares as mod_revision 0.
    cmp->set_mod_revision(static_cast<int64_t>(c.expected_version));
    // On failure, read every condition's key in the same txn, so the key
    // that failed is known from the same snapshot the compare saw.
    etcdserverpb::RangeRequest* r = req.add_failure()->mutable_request_range();
    r->set_key(key);
    r->set_keys_only(true);
    me.compared.push_back(std::move(key));
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
    me.written.push_back(std::move(key));
  }
  me.bytes = req.ByteSizeLong();
  if (me.bytes + kRaftEnvelopeBytes > options_.max_request_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "etcd: commit of ", me.bytes, " bytes (+", kRaftEnvelopeBytes,
        " for etcd's envelope) exceeds max_request_bytes = ", options_.max_request_bytes,
        " (etcd's --max-request-bytes); not sent"));
  }
  commits_.fetch_add(1, std::memory_order_relaxed);

  if (!options_.group_commits) {
    SendBatch({&me});
  } else {
    commit_mu_.Lock();
    commit_queue_.push_back(&me);
    // Wait until a batch took this commit along, or it is at the front of
    // the commits not yet taken and fewer than max_commit_txns_in_flight
    // batches are in flight: then it sends the next batch itself.
    const size_t max_in_flight = std::max<size_t>(options_.max_commit_txns_in_flight, 1);
    while (!me.taken && (commit_queue_.front() != &me || commit_txns_in_flight_ >= max_in_flight)) {
      me.cv.Wait(&commit_mu_);
    }
    if (!me.taken) {
      std::vector<PendingCommit*> batch = PickBatch();
      for (PendingCommit* p : batch) p->taken = true;
      commit_queue_.erase(
          std::remove_if(commit_queue_.begin(), commit_queue_.end(),
                         [](const PendingCommit* p) { return p->taken; }),
          commit_queue_.end());
      ++commit_txns_in_flight_;
      // Another batch may go out while this one is in flight.
      if (!commit_queue_.empty()) commit_queue_.front()->cv.Signal();
      commit_mu_.Unlock();
      SendBatch(batch);
      commit_mu_.Lock();
      --commit_txns_in_flight_;
      for (PendingCommit* p : batch) {
        p->done = true;
        if (p != &me) p->cv.Signal();
      }
      if (!commit_queue_.empty()) commit_queue_.front()->cv.Signal();
    }
    while (!me.done) me.cv.Wait(&commit_mu_);
    commit_mu_.Unlock();
  }
  NoteCommit(conditions, writes, me.result);
  return me.result;
}

std::vector<EtcdStore::PendingCommit*> EtcdStore::PickBatch() {
  std::vector<PendingCommit*> batch;
  // Keys the batch writes, and every key it compares or writes. A commit
  // joins only if it writes none of the batch's keys and compares or writes
  // none of the keys the batch writes: etcd evaluates every compare of a
  // Txn before applying any write, so the batch then acts as its members
  // one after another, in queue order (and etcd refuses one key written
  // twice in a Txn).
  absl::flat_hash_set<std::string_view> written, touched;
  size_t bytes = 0;
  const size_t byte_budget = options_.max_request_bytes > kRaftEnvelopeBytes
                                 ? options_.max_request_bytes - kRaftEnvelopeBytes
                                 : 0;
  for (PendingCommit* p : commit_queue_) {
    if (batch.size() >= std::max<size_t>(options_.max_txn_ops, 1)) break;
    if (!batch.empty()) {
      if (bytes + p->bytes + kNestingBytes > byte_budget) continue;
      auto hits = [](const std::vector<std::string>& keys,
                     const absl::flat_hash_set<std::string_view>& set) {
        for (const std::string& k : keys) {
          if (set.contains(k)) return true;
        }
        return false;
      };
      if (hits(p->written, touched) || hits(p->compared, written)) continue;
    }
    batch.push_back(p);
    bytes += p->bytes + kNestingBytes;
    for (const std::string& k : p->written) {
      written.insert(k);
      touched.insert(k);
    }
    for (const std::string& k : p->compared) touched.insert(k);
  }
  return batch;
}

void EtcdStore::SendBatch(const std::vector<PendingCommit*>& batch) {
  commit_txns_.fetch_add(1, std::memory_order_relaxed);
  if (batch.size() == 1) {
    PendingCommit& p = *batch.front();
    etcdserverpb::TxnResponse resp;
    absl::Status s = client_->Call(CallKind::kWrite, [&](Endpoint& ep, grpc::ClientContext& ctx) {
      return ep.kv->Txn(&ctx, p.txn, &resp);
    });
    p.result = s.ok() ? CommitOutcome(resp, resp.header().revision(), *p.conditions)
                      : absl::StatusOr<uint64_t>(s);
    return;
  }
  // No compares of its own: the outer Txn always takes its success branch,
  // and each nested Txn decides by its own compares.
  etcdserverpb::TxnRequest outer;
  for (PendingCommit* p : batch) outer.add_success()->mutable_request_txn()->Swap(&p->txn);
  etcdserverpb::TxnResponse resp;
  absl::Status s = client_->Call(CallKind::kWrite, [&](Endpoint& ep, grpc::ClientContext& ctx) {
    return ep.kv->Txn(&ctx, outer, &resp);
  });
  if (s.ok() && (!resp.succeeded() || resp.responses_size() != static_cast<int>(batch.size()))) {
    // Applied, but in a shape that says nothing about each commit.
    s = absl::UnknownError("etcd: group commit answered with the wrong shape");
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    PendingCommit& p = *batch[i];
    if (!s.ok()) {
      p.result = s;
      // Call() counted the request once; each commit in it has that outcome.
      if (absl::IsUnknown(s) && i > 0) client_->CountUnknown();
      continue;
    }
    p.result = CommitOutcome(resp.responses(static_cast<int>(i)).response_txn(),
                             resp.header().revision(), *p.conditions);
  }
}

void EtcdStore::NoteCommit(const std::vector<Condition>& conditions,
                           const std::vector<Write>& writes,
                           const absl::StatusOr<uint64_t>& result) {
  if (result.ok()) {
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
  return s;
}

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
  };
}

std::string EtcdStore::CurrentEndpoint() const { return client_->CurrentEndpoint().target; }

absl::StatusOr<std::unique_ptr<EtcdStore>> OpenEtcd(const EtcdOptions& options) {
  absl::StatusOr<std::unique_ptr<etcd_internal::Client>> client =
      etcd_internal::Client::Create(options);
  if (!client.ok()) return client.status();
  return std::unique_ptr<EtcdStore>(new EtcdStore(options, std::move(*client)));
}

absl::StatusOr<std::unique_ptr<StableStore>> OpenEtcdStore(const EtcdOptions& options) {
  absl::StatusOr<std::unique_ptr<EtcdStore>> store = OpenEtcd(options);
  if (!store.ok()) return store.status();
  return std::unique_ptr<StableStore>(std::move(*store));
}

}  // namespace baton::storage

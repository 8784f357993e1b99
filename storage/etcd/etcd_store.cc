#include "storage/etcd/etcd_store.h"

#include <algorithm>
#include <map>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "storage/etcd/etcd_client.h"

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

}  // namespace

EtcdStore::EtcdStore(EtcdOptions options,
                     std::unique_ptr<etcd_internal::Client> client)
    : options_(std::move(options)), client_(std::move(client)) {}

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
  return out;
}

absl::StatusOr<std::vector<Versioned>> EtcdStore::GetMany(const std::vector<std::string>& keys,
                                                          const ReadOptions& options) {
  const bool serializable = options.consistency == ReadConsistency::kMayBeStale;
  std::vector<Versioned> out;
  out.reserve(keys.size());
  auto take = [&out](const etcdserverpb::RangeResponse& r) {
    Versioned v;
    if (r.kvs_size() > 0) {
      v.value = r.kvs(0).value();
      v.version = static_cast<uint64_t>(r.kvs(0).mod_revision());
    }
    out.push_back(std::move(v));
  };
  if (keys.size() == 1) {
    etcdserverpb::RangeRequest req;
    req.set_key(absl::StrCat(options_.key_prefix, ToAbsl(keys[0])));
    req.set_serializable(serializable);
    etcdserverpb::RangeResponse resp;
    absl::Status s = client_->Call(CallKind::kRead, [&](Endpoint& ep, grpc::ClientContext& ctx) {
      return ep.kv->Range(&ctx, req, &resp);
    });
    if (!s.ok()) return s;
    take(resp);
    return out;
  }
  // etcd refuses a txn with more than --max-txn-ops operations: one txn per
  // chunk. A txn without compares and puts is read-only; it is serializable
  // (served from the member's state) when every range in it is.
  const size_t chunk = std::max<size_t>(options_.max_txn_ops, 1);
  for (size_t begin = 0; begin < keys.size(); begin += chunk) {
    const size_t end = std::min(keys.size(), begin + chunk);
    etcdserverpb::TxnRequest req;
    for (size_t i = begin; i < end; ++i) {
      etcdserverpb::RangeRequest* r = req.add_success()->mutable_request_range();
      r->set_key(absl::StrCat(options_.key_prefix, ToAbsl(keys[i])));
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
    for (const etcdserverpb::ResponseOp& op : resp.responses()) take(op.response_range());
  }
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

  etcdserverpb::TxnRequest req;
  for (const Condition& c : conditions) {
    const std::string key = absl::StrCat(ns, ToAbsl(c.key));
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
  }
  for (const Write* w : [&] {
         std::vector<const Write*> v;
         for (const Write& w : writes) {
           if (last[w.key] == &w) v.push_back(&w);
         }
         return v;
       }()) {
    const std::string key = absl::StrCat(ns, ToAbsl(w->key));
    etcdserverpb::RequestOp* op = req.add_success();
    if (w->kind == Write::Kind::kPut) {
      etcdserverpb::PutRequest* put = op->mutable_request_put();
      put->set_key(key);
      put->set_value(w->value);
    } else {
      op->mutable_request_delete_range()->set_key(key);
    }
  }
  const size_t bytes = req.ByteSizeLong();
  if (bytes + kRaftEnvelopeBytes > options_.max_request_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "etcd: commit of ", bytes, " bytes (+", kRaftEnvelopeBytes,
        " for etcd's envelope) exceeds max_request_bytes = ", options_.max_request_bytes,
        " (etcd's --max-request-bytes); not sent"));
  }

  etcdserverpb::TxnResponse resp;
  absl::Status s = client_->Call(CallKind::kWrite, [&](Endpoint& ep, grpc::ClientContext& ctx) {
    return ep.kv->Txn(&ctx, req, &resp);
  });
  if (!s.ok()) return s;
  if (resp.succeeded()) return static_cast<uint64_t>(resp.header().revision());

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

EtcdStoreStats EtcdStore::Stats() const { return client_->Stats(); }

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

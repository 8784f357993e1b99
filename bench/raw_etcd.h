// The raw etcd baseline of the benchmarks (baton-etcd-bench,
// baton-kv-throughput): the minimal Txn a hand-written client sends for a
// durable, idempotent PUT — compare "record absent", put the state, put the
// record — through the very gRPC stubs the store uses. Header-only; includes
// gRPC (storage/etcd/etcd_client.h), so only benchmarks include it.
#ifndef BATON_BENCH_RAW_ETCD_H_
#define BATON_BENCH_RAW_ETCD_H_

#include <string>

#include <grpcpp/grpcpp.h>

#include "storage/etcd/etcd_client.h"

namespace baton::bench {

// Sends one such Txn; true when etcd applied it.
inline bool RawEtcdPut(storage::etcd_internal::Client& client, const std::string& state_key,
                       const std::string& value, const std::string& record_key,
                       const std::string& record) {
  etcdserverpb::TxnRequest req;
  etcdserverpb::Compare* cmp = req.add_compare();
  cmp->set_result(etcdserverpb::Compare::EQUAL);
  cmp->set_target(etcdserverpb::Compare::MOD);
  cmp->set_key(record_key);
  cmp->set_mod_revision(0);
  etcdserverpb::PutRequest* put = req.add_success()->mutable_request_put();
  put->set_key(state_key);
  put->set_value(value);
  put = req.add_success()->mutable_request_put();
  put->set_key(record_key);
  put->set_value(record);
  etcdserverpb::TxnResponse resp;
  grpc::ClientContext ctx;
  client.Prepare(ctx);
  grpc::Status s = client.CurrentEndpoint().kv->Txn(&ctx, req, &resp);
  return s.ok() && resp.succeeded();
}

}  // namespace baton::bench

#endif  // BATON_BENCH_RAW_ETCD_H_

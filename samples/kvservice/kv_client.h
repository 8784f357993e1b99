// A typed client of the sample key-value service over HTTP or gRPC, on
// baton's retrying client (framework/client/client.h): every operation gets a
// request id reused by all its retries. Used by the baton-kv command-line
// tool, the tests and the benchmarks.
//
// Thread safety: thread-safe (as RetryingClient).
#ifndef BATON_SAMPLES_KVSERVICE_KV_CLIENT_H_
#define BATON_SAMPLES_KVSERVICE_KV_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "framework/client/client.h"

namespace baton::kvservice {

enum class KvProtocol { kHttp, kGrpc };

struct KvResult {
  // The call's outcome and statistics (attempts, outage, replay flag in
  // call.response.replayed). call.status not OK: no final answer.
  framework::client::CallResult call;
  // The answer's code (kOk, kNotFound, kFailedPrecondition, ...).
  absl::StatusCode code = absl::StatusCode::kUnknown;
  // On kOk: the reply's fields; value_json is a JSON text.
  std::string key;
  std::string value_json;
  int64_t version = 0;
  bool deleted = false;
  // Otherwise: the error text the server sent.
  std::string error;

  bool ok() const { return call.status.ok() && code == absl::StatusCode::kOk; }
  bool replayed() const { return call.response.replayed; }
  // The host that answered (Baton-Node / baton-node), "" if none said.
  const std::string& node() const { return call.response.node; }
};

class KvClient {
 public:
  // `endpoint` is host:port (HTTP also http://host:port, or
  // https://host:port = TLS with the system's CA store unless `tls` says
  // more). `tls`: TLS for either protocol (framework/client/transport.h).
  // Errors: kInvalidArgument (bad endpoint; TLS files that cannot be used).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<KvClient>> Connect(
      KvProtocol protocol, const std::string& endpoint,
      framework::client::ClientOptions options = {},
      framework::client::Environment& env =
          framework::client::RealEnvironment());
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<KvClient>> Connect(
      KvProtocol protocol, const std::string& endpoint,
      framework::client::ClientOptions options,
      framework::client::TlsOptions tls,
      framework::client::Environment& env =
          framework::client::RealEnvironment());

  // Values are JSON texts ("42", "\"s\""); Cas's expected "null" = absent.
  KvResult Get(const std::string& key);
  KvResult Put(const std::string& key, const std::string& value_json);
  KvResult Delete(const std::string& key);
  KvResult Cas(const std::string& key, const std::string& expected_json,
               const std::string& value_json);
  KvResult Incr(const std::string& key, int64_t by = 1);
  KvResult Append(const std::string& key, const std::string& value);

  // The wire form of an operation, for RetryingClient::SendAsync, and the
  // decoding of its result. Errors: kInvalidArgument (bad JSON value).
  [[nodiscard]] absl::StatusOr<framework::client::Call> MakeCall(
      const std::string& op, const std::string& key, const std::string& arg1,
      const std::string& arg2) const;
  KvResult Decode(framework::client::CallResult call) const;

  framework::client::RetryingClient& client() { return *client_; }
  KvProtocol protocol() const { return protocol_; }

 private:
  KvClient(KvProtocol p, std::unique_ptr<framework::client::RetryingClient> c)
      : protocol_(p), client_(std::move(c)) {}
  KvResult Run(const std::string& op, const std::string& key,
               const std::string& arg1 = "", const std::string& arg2 = "");

  KvProtocol protocol_;
  std::unique_ptr<framework::client::RetryingClient> client_;
};

}  // namespace baton::kvservice

#endif  // BATON_SAMPLES_KVSERVICE_KV_CLIENT_H_

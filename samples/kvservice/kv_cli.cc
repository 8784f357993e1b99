// baton-kv: command-line client of the sample key-value service, over HTTP or
// gRPC, on baton's retrying client. Prints the reply, then how many attempts
// it took and whether the reply was a replay from a completion record, so a
// user can watch retries work (kill -9 the server mid-call and restart it).
//
//   baton-kv --http 127.0.0.1:8080 put greeting '"hello"'
//   baton-kv --grpc 127.0.0.1:9090 incr visits 5
//   baton-kv --grpc 127.0.0.1:9090 --idempotency-key incr-1 incr visits
//   baton-kv --http https://kv.example:8443 --tls-ca ca.pem get greeting
//   baton-kv --grpc kv.example:9443 --tls-ca ca.pem --tls-cert me.pem --tls-key me.key get a
//
// Exit codes: 0 OK answer, 1 another answer (not found, precondition failed,
// ...), 2 bad usage, 3 no final answer before the deadline, 4 no answer for
// a reason no retry cures (TLS: the server's certificate is not trusted or
// does not name the host, the server refused ours, or one end speaks TLS and
// the other does not).
#include <cstdio>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "samples/kvservice/kv_client.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  CLI::App app{"baton sample kv client (retries with a stable request id)"};
  std::string http, grpc, client_id, key, op, idempotency_key;
  std::vector<std::string> args;
  uint64_t seq = 1;
  int64_t attempt_timeout_ms = 2000, deadline_ms = 30000, hedge_delay_ms = 0;
  bool verbose = false;
  baton::framework::client::TlsOptions tls;
  auto* h = app.add_option("--http", http,
                           "HTTP endpoint host:port, http://host:port or "
                           "https://host:port (TLS)");
  auto* g = app.add_option("--grpc", grpc, "gRPC endpoint host:port");
  h->excludes(g);
  app.add_flag("--tls", tls.enabled,
               "speak TLS, verifying the server against the system CA store "
               "(or --tls-ca); implied by the other --tls options");
  app.add_option("--tls-ca", tls.ca_file,
                 "PEM file of the CA certificates that sign the server's");
  app.add_option("--tls-cert", tls.cert_file,
                 "PEM client certificate, for servers that verify clients (mTLS)");
  app.add_option("--tls-key", tls.key_file, "PEM private key of --tls-cert");
  app.add_option("--tls-server-name", tls.server_name,
                 "name the server's certificate must carry (default: the host)");
  app.add_option("--hedge-delay-ms", hedge_delay_ms,
                 "send a second attempt of the same request if none answered "
                 "after this long (default 0: no hedging)")
      ->check(CLI::Range(int64_t{0}, int64_t{600000}));
  app.add_option("--client-id", client_id,
                 "client id (default: random; reuse only with a higher --seq)");
  app.add_option("--seq", seq, "sequence number of this request (default 1)");
  app.add_option("--idempotency-key", idempotency_key,
                 "send this Idempotency-Key instead of client id + seq");
  app.add_option("--attempt-timeout-ms", attempt_timeout_ms,
                 "time allowed per attempt (default 2000 ms)");
  app.add_option("--deadline-ms", deadline_ms,
                 "time allowed for all attempts (default 30000 ms)");
  app.add_flag("-v,--verbose", verbose, "log every retry");
  app.add_option("op", op, "get | put | delete | cas | incr | append")
      ->required()
      ->check(CLI::IsMember({"get", "put", "delete", "cas", "incr", "append"}));
  app.add_option("key", key, "the key")->required();
  app.add_option("args", args,
                 "put VALUE_JSON | cas EXPECTED_JSON VALUE_JSON | incr [BY] | "
                 "append STRING");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  if (http.empty() == grpc.empty()) {
    std::fprintf(stderr, "baton-kv: give one of --http or --grpc\n");
    return 2;
  }
  const size_t want = op == "put" || op == "append" ? 1 : op == "cas" ? 2 : 0;
  if ((op == "incr" && args.size() > 1) || (op != "incr" && args.size() != want)) {
    std::fprintf(stderr, "baton-kv: wrong number of arguments for %s\n",
                 op.c_str());
    return 2;
  }
  spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::warn);

  baton::framework::client::ClientOptions options;
  options.client_id = client_id;
  options.first_seq = seq;
  options.async_threads = 1;
  options.retry.attempt_timeout = absl::Milliseconds(attempt_timeout_ms);
  options.retry.deadline = absl::Milliseconds(deadline_ms);
  if (hedge_delay_ms > 0) {
    options.retry.hedge.enabled = true;
    options.retry.hedge.delay = absl::Milliseconds(hedge_delay_ms);
  }
  if (!tls.ca_file.empty() || !tls.cert_file.empty() || !tls.key_file.empty() ||
      !tls.server_name.empty()) {
    tls.enabled = true;
  }
  auto kv = baton::kvservice::KvClient::Connect(
      http.empty() ? baton::kvservice::KvProtocol::kGrpc
                   : baton::kvservice::KvProtocol::kHttp,
      http.empty() ? grpc : http, options, tls);
  if (!kv.ok()) {
    std::fprintf(stderr, "baton-kv: %s\n",
                 std::string(kv.status().message()).c_str());
    return 2;
  }
  args.resize(2);
  auto call = (*kv)->MakeCall(op, key, args[0], args[1]);
  if (!call.ok()) {
    std::fprintf(stderr, "baton-kv: %s\n",
                 std::string(call.status().message()).c_str());
    return 2;
  }
  baton::framework::client::RetryingClient& c = (*kv)->client();
  baton::kvservice::KvResult r = (*kv)->Decode(
      idempotency_key.empty() ? c.Send(*call)
                              : c.SendWithKey(*call, idempotency_key));
  if (r.ok()) {
    std::printf("%s = %s (version %lld%s)\n", r.key.c_str(),
                r.value_json.empty() ? "-" : r.value_json.c_str(),
                static_cast<long long>(r.version), r.deleted ? ", deleted" : "");
  } else {
    std::printf("%s: %s\n", absl::StatusCodeToString(r.code).c_str(),
                r.error.c_str());
  }
  const std::string id =
      idempotency_key.empty()
          ? "client " + c.client_id() + " seq " + std::to_string(r.call.seq)
          : "idempotency key " + idempotency_key;
  std::printf("%s: attempts=%d hedges=%d replayed=%s outage=%s node=%s\n",
              id.c_str(), r.call.attempts, r.call.hedges,
              r.replayed() ? "true" : "false",
              absl::FormatDuration(r.call.outage).c_str(),
              r.node().empty() ? "-" : r.node().c_str());
  if (!r.call.status.ok()) {
    return r.call.status.code() == absl::StatusCode::kDeadlineExceeded ? 3 : 4;
  }
  return r.ok() ? 0 : 1;
}

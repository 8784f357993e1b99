// A gRPC client of baton-kvserver for kv_grpc_drain.sh (the gRPC twin of
// kv_drain_client.py): the gRPC transport of baton's client library
// (framework/client, one channel, kept across calls), INCRs of one counter
// back to back, each with its own idempotency key (so a retry after a lost
// reply is safe). After an attempt that failed it retries the same key at once
// (after 1 ms) on a fresh channel, as the retrying client does; an attempt that
// gets no answer within --attempt-timeout-ms is what a drain must never cause.
// Writes one JSON line per attempt to --out:
//   {"t0": start (unix s), "t1": end, "node": baton-node or null, "outcome":
//    "ok" | "timeout" | "refused" (UNAVAILABLE, never sent: no connection, or
//    a stream refused after GOAWAY) | "cut" (UNAVAILABLE after it was sent: a
//    reset or close under the call) | "cancelled" (by the server's gRPC
//    before baton saw it: a call that raced with GOAWAY) |
//    "grpc-<code>-<baton-error>" | "error",
//    "replayed": answered from a completion record, "conn": channel number,
//    "key"}
// and runs until --stop-file exists (the request under way is still retried
// until answered, up to 10 s). Exit 0, or 2 on a usage error.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "framework/client/transport.h"
#include "nlohmann/json.hpp"
#include "samples/kvservice/kv_client.h"

namespace {

using baton::framework::client::Call;
using baton::framework::client::GrpcTransportOptions;
using baton::framework::client::IdHeaders;
using baton::framework::client::MakeGrpcTransport;
using baton::framework::client::Response;
using baton::framework::client::Transport;
using baton::kvservice::KvClient;
using baton::kvservice::KvProtocol;

double UnixSeconds() { return absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()); }

}  // namespace

int main(int argc, char** argv) {
  std::string target, out_path, stop_file, id = "g";
  int attempt_timeout_ms = 1000;
  CLI::App app{"kv_grpc_drain's client: gRPC INCRs back to back, one line per attempt"};
  app.add_option("--target", target, "HOST:PORT of the service")->required();
  app.add_option("--out", out_path, "JSONL file, one line per attempt")->required();
  app.add_option("--stop-file", stop_file, "stop once this file exists")->required();
  app.add_option("--id", id, "counter key and idempotency key prefix");
  app.add_option("--attempt-timeout-ms", attempt_timeout_ms, "per attempt (default 1000)")
      ->check(CLI::Range(1, 60000));
  CLI11_PARSE(app, argc, argv);

  // KvClient only builds the wire form of an INCR here; the attempts go
  // through a transport of their own, so that each one is seen.
  auto kv = KvClient::Connect(KvProtocol::kGrpc, target);
  if (!kv.ok()) {
    std::fprintf(stderr, "%s\n", kv.status().ToString().c_str());
    return 2;
  }
  absl::StatusOr<Call> call = (*kv)->MakeCall("incr", id, "1", "");
  GrpcTransportOptions to;
  to.target = target;
  absl::StatusOr<std::unique_ptr<Transport>> transport = MakeGrpcTransport(to);
  if (!call.ok() || !transport.ok()) {
    std::fprintf(stderr, "cannot set up the client\n");
    return 2;
  }
  std::ofstream out(out_path);
  int conn = 1;
  absl::Time stopping_since = absl::InfinitePast();
  for (uint64_t n = 1; !std::filesystem::exists(stop_file); ++n) {
    IdHeaders ids;
    ids.idempotency_key = absl::StrCat(id, "-", n);
    bool fresh = false;
    for (;;) {  // attempts of one request
      nlohmann::json rec = {{"t0", UnixSeconds()}, {"key", ids.idempotency_key},
                            {"conn", conn}, {"node", nullptr}};
      absl::StatusOr<Response> r = (*transport)->Attempt(
          *call, ids, absl::Milliseconds(attempt_timeout_ms), fresh);
      rec["t1"] = UnixSeconds();
      if (r.ok()) {
        if (!r->node.empty()) rec["node"] = r->node;
        rec["replayed"] = r->replayed;
        rec["outcome"] = r->code == absl::StatusCode::kOk
                             ? std::string("ok")
                             : absl::StrCat("grpc-", static_cast<int>(r->code), "-",
                                            r->error_code);
      } else if (r.status().code() == absl::StatusCode::kDeadlineExceeded) {
        rec["outcome"] = "timeout";
      } else if (r.status().code() == absl::StatusCode::kUnavailable) {
        const std::string error(r.status().message());
        // Never sent (no connection, or a stream refused after GOAWAY), or
        // sent and cut off (a reset or close under a running call: its reply
        // is lost, although the server may have executed it).
        const bool unsent = absl::StrContains(error, "failed to connect") ||
                            absl::StrContains(error, "GOAWAY") ||
                            absl::StrContains(error, "refused");
        // CANCELLED by the server's gRPC before baton saw the call (raced
        // with GOAWAY; the transport retries it): allowed, and the replay
        // check of kv_drain.sh shows it was not executed.
        const bool cancelled =
            absl::StrContains(error, "cancelled the call before answering");
        rec["outcome"] = unsent ? "refused" : cancelled ? "cancelled" : "cut";
        rec["error"] = error;
      } else {
        rec["outcome"] = "error";
        rec["error"] = std::string(r.status().message());
      }
      out << rec.dump() << "\n" << std::flush;
      if (rec["outcome"] == "ok") break;
      // A transport failure: the next attempt on a new channel (the
      // transport replaces it), as baton's retrying client does.
      fresh = !r.ok();
      if (fresh) ++conn;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      // Once stopping, a request whose outcome is unknown is still retried
      // (for up to 10 s) until it is answered: the counter check needs
      // every executed INCR acknowledged.
      if (std::filesystem::exists(stop_file)) {
        if (stopping_since == absl::InfinitePast()) stopping_since = absl::Now();
        if (absl::Now() - stopping_since > absl::Seconds(10)) break;
      }
    }
  }
  return 0;
}

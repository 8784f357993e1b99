// libFuzzer target: the request-id parsers of the two front ends.
//   - framework::ParseIdempotencyKey (the HTTP Idempotency-Key header): the
//     whole input is the header value;
//   - framework::RequestIdFromHttpHeaders (request_builder.h, what the HTTP
//     front end calls) and framework::RequestIdFromMetadata (gRPC): the input
//     read as lines "name: value" (the form the seeds are written in).
// Properties checked besides crashes and sanitizer reports: a parsed key is
// printable ASCII and survives being written as an sf-string and parsed again;
// a parsed RequestId is the kind the metadata (headers) name and carries
// their values.
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "framework/grpc/grpc_server.h"
#include "framework/http_server.h"
#include "framework/request_builder.h"
#include "tests/fuzz/fuzz_util.h"

namespace baton::fuzz {
namespace {

using Metadata = std::map<std::string, std::string, std::less<>>;

std::string Quote(std::string_view key) {
  std::string q = "\"";
  for (char c : key) {
    if (c == '"' || c == '\\') q.push_back('\\');
    q.push_back(c);
  }
  return q + "\"";
}

void CheckIdempotencyKey(std::string_view header) {
  absl::StatusOr<std::string> key = framework::ParseIdempotencyKey(header);
  if (!key.ok()) return;
  for (char c : *key) {
    Check(c >= 0x20 && c <= 0x7e, "ParseIdempotencyKey returned a non-printable byte");
  }
  absl::StatusOr<std::string> again = framework::ParseIdempotencyKey(Quote(*key));
  Check(again.ok() && *again == *key,
        "a parsed Idempotency-Key, written as an sf-string, parses differently");
}

Metadata ParseLines(absl::string_view input) {
  Metadata md;
  for (absl::string_view line : absl::StrSplit(input, '\n')) {
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    absl::string_view value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    md.insert_or_assign(std::string(line.substr(0, colon)), std::string(value));
  }
  return md;
}

void CheckMetadata(const Metadata& md) {
  absl::StatusOr<framework::RequestId> id = framework::RequestIdFromMetadata(md);
  if (!id.ok()) return;
  auto has = [&](const char* name) { return md.count(name) > 0; };
  using Kind = framework::RequestId::Kind;
  switch (id->kind) {
    case Kind::kNone:
      Check(!has("idempotency-key") && !has("baton-client-id") && !has("baton-seq") &&
                !has("baton-ack"),
            "request-id metadata present but RequestIdFromMetadata found no id");
      break;
    case Kind::kIdempotencyKey: {
      // gRPC metadata carries the key as it is (no sf-string quoting).
      Check(has("idempotency-key") &&
                md.find("idempotency-key")->second == id->idempotency_key,
            "RequestIdFromMetadata's key is not the idempotency-key entry");
      break;
    }
    case Kind::kClientSeq:
      Check(has("baton-client-id") && has("baton-seq"),
            "a (client, seq) id without both entries");
      Check(md.find("baton-client-id")->second == id->client_id,
            "RequestIdFromMetadata changed the client id");
      Check(id->acked.has_value() == has("baton-ack"),
            "Baton-Ack present and absent disagree");
      break;
  }
}

// The same lines as HTTP headers (names in any case, first occurrence wins).
void CheckHttpHeaders(absl::string_view input) {
  std::vector<framework::HttpHeader> headers;
  for (absl::string_view line : absl::StrSplit(input, '\n')) {
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    absl::string_view value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    headers.push_back({std::string_view(line.data(), colon),
                       std::string_view(value.data(), value.size())});
  }
  absl::StatusOr<framework::RequestId> id = framework::RequestIdFromHttpHeaders(headers);
  if (!id.ok()) return;
  auto first = [&](std::string_view name) -> const framework::HttpHeader* {
    for (const framework::HttpHeader& h : headers) {
      if (absl::EqualsIgnoreCase(absl::string_view(h.name.data(), h.name.size()),
                                 absl::string_view(name.data(), name.size()))) {
        return &h;
      }
    }
    return nullptr;
  };
  using Kind = framework::RequestId::Kind;
  switch (id->kind) {
    case Kind::kNone:
      Check(!first("idempotency-key") && !first("baton-client-id") && !first("baton-seq"),
            "request-id headers present but RequestIdFromHttpHeaders found no id");
      break;
    case Kind::kIdempotencyKey: {
      const framework::HttpHeader* h = first("idempotency-key");
      Check(h != nullptr, "an idempotency key from no Idempotency-Key header");
      absl::StatusOr<std::string> key = framework::ParseIdempotencyKey(h->value);
      Check(key.ok() && *key == id->idempotency_key,
            "RequestIdFromHttpHeaders' key differs from ParseIdempotencyKey's");
      break;
    }
    case Kind::kClientSeq:
      Check(first("baton-client-id") && first("baton-seq"),
            "a (client, seq) id without both headers");
      break;
  }
}

}  // namespace
}  // namespace baton::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  baton::fuzz::CheckIdempotencyKey(input);
  baton::fuzz::CheckMetadata(baton::fuzz::ParseLines(absl::string_view(input.data(), size)));
  baton::fuzz::CheckHttpHeaders(absl::string_view(input.data(), size));
  return 0;
}

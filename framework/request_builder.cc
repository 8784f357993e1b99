#include "framework/request_builder.h"

#include <cstdint>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "framework/absl_compat.h"

namespace baton::framework {



using internal::AV;
using internal::SV;

absl::StatusOr<std::string> ParseIdempotencyKey(std::string_view header) {
  std::string_view v = SV(absl::StripAsciiWhitespace(AV(header)));
  std::string out;
  if (!v.empty() && v.front() == '"') {
    size_t i = 1;
    bool closed = false;
    for (; i < v.size(); ++i) {
      char c = v[i];
      if (c == '\\') {
        if (i + 1 >= v.size() || (v[i + 1] != '"' && v[i + 1] != '\\')) {
          return absl::InvalidArgumentError(
              "Idempotency-Key: bad escape in string");
        }
        out.push_back(v[++i]);
      } else if (c == '"') {
        closed = true;
        ++i;
        break;
      } else if (c < 0x20 || c > 0x7e) {
        return absl::InvalidArgumentError(
            "Idempotency-Key: non-printable character");
      } else {
        out.push_back(c);
      }
    }
    if (!closed) {
      return absl::InvalidArgumentError("Idempotency-Key: unterminated string");
    }
    // Structured-field parameters (";a=b") are allowed and ignored.
    std::string_view rest = SV(absl::StripAsciiWhitespace(AV(v.substr(i))));
    if (!rest.empty() && rest.front() != ';') {
      return absl::InvalidArgumentError(
          "Idempotency-Key: trailing characters after the string");
    }
  } else {
    for (char c : v) {
      if (c <= 0x20 || c > 0x7e || c == '"' || c == ',' || c == ';') {
        return absl::InvalidArgumentError(
            "Idempotency-Key must be a quoted string (\"...\") or a token");
      }
    }
    out = std::string(v);
  }
  if (out.empty() || out.size() > 255) {
    return absl::InvalidArgumentError(
        "Idempotency-Key must be 1..255 characters");
  }
  return out;
}

namespace {

// Longest id value accepted in gRPC metadata (idempotency keys are 1..255).
constexpr size_t kMaxGrpcIdValueBytes = 255;

// The messages of the two forms (see RequestIdForm), word for word what the
// front ends answered before they shared this parser.
struct IdMessages {
  const char* both_schemes;
  const char* client_and_seq;  // One of the pair missing.
  const char* bad_seq;
  const char* bad_ack;
  const char* ack_alone;
};
constexpr IdMessages kHttpMessages = {
    "use either Idempotency-Key or Baton-Client-Id/Baton-Seq, not both",
    "Baton-Client-Id and Baton-Seq (an unsigned integer) go together",
    "Baton-Client-Id and Baton-Seq (an unsigned integer) go together",
    "Baton-Ack must be an unsigned integer",
    "Baton-Ack needs Baton-Client-Id",
};
constexpr IdMessages kGrpcMessages = {
    "idempotency-key and baton-client-id/baton-seq are exclusive",
    "baton-client-id and baton-seq must come together (baton-ack is optional "
    "with them)",
    "baton-seq must be a decimal integer",
    "baton-ack must be a decimal integer",
    "baton-client-id and baton-seq must come together (baton-ack is optional "
    "with them)",
};

// A sequence number or ack in `form`'s syntax.
bool ParseNumber(std::string_view s, RequestIdForm form, uint64_t* out) {
  if (form == RequestIdForm::kGrpcMetadata) {
    if (s.empty() || s.size() > 20) return false;
    for (char c : s) {
      if (c < '0' || c > '9') return false;
    }
  }
  return absl::SimpleAtoi(AV(s), out);
}

}  // namespace

absl::StatusOr<RequestId> ParseRequestId(const RequestIdFields& f,
                                         RequestIdForm form) {
  const bool grpc = form == RequestIdForm::kGrpcMetadata;
  const IdMessages& msg = grpc ? kGrpcMessages : kHttpMessages;
  if (grpc) {
    for (const std::optional<std::string_view>& v :
         {f.idempotency_key, f.client_id, f.seq, f.ack}) {
      if (v && v->size() > kMaxGrpcIdValueBytes) {
        return absl::InvalidArgumentError(absl::StrCat(
            "request id metadata longer than ", kMaxGrpcIdValueBytes, " bytes"));
      }
    }
  }
  if (f.idempotency_key && (f.client_id || f.seq || (grpc && f.ack))) {
    return absl::InvalidArgumentError(msg.both_schemes);
  }
  if (f.idempotency_key) {
    if (grpc) {
      if (f.idempotency_key->empty()) {
        return absl::InvalidArgumentError("empty idempotency-key");
      }
      return RequestId::Key(std::string(*f.idempotency_key));
    }
    absl::StatusOr<std::string> key = ParseIdempotencyKey(*f.idempotency_key);
    if (!key.ok()) return key.status();
    return RequestId::Key(*std::move(key));
  }
  if (!f.client_id && !f.seq) {
    if (f.ack) return absl::InvalidArgumentError(msg.ack_alone);
    return RequestId::None();
  }
  if (!f.client_id || !f.seq) {
    return absl::InvalidArgumentError(msg.client_and_seq);
  }
  uint64_t seq = 0;
  if (!ParseNumber(*f.seq, form, &seq)) {
    return absl::InvalidArgumentError(msg.bad_seq);
  }
  std::optional<uint64_t> acked;
  if (f.ack) {
    uint64_t a = 0;
    if (!ParseNumber(*f.ack, form, &a)) {
      return absl::InvalidArgumentError(msg.bad_ack);
    }
    acked = a;
  }
  std::string client(grpc ? *f.client_id
                          : SV(absl::StripAsciiWhitespace(AV(*f.client_id))));
  return RequestId::ClientSeq(std::move(client), seq, acked);
}

absl::StatusOr<RequestId> RequestIdFromHttpHeaders(
    std::span<const HttpHeader> headers) {
  auto first = [&](std::string_view name) -> std::optional<std::string_view> {
    for (const HttpHeader& h : headers) {
      if (absl::EqualsIgnoreCase(AV(h.name), AV(name))) return h.value;
    }
    return std::nullopt;
  };
  return ParseRequestId({first("Idempotency-Key"), first("Baton-Client-Id"),
                         first("Baton-Seq"), first("Baton-Ack")},
                        RequestIdForm::kHttpHeaders);
}

absl::StatusOr<RequestId> RequestIdFromGrpcMetadata(
    const std::map<std::string, std::string, std::less<>>& metadata) {
  auto get = [&](std::string_view name) -> std::optional<std::string_view> {
    auto it = metadata.find(name);
    if (it == metadata.end()) return std::nullopt;
    return it->second;
  };
  return ParseRequestId({get("idempotency-key"), get("baton-client-id"),
                         get("baton-seq"), get("baton-ack")},
                        RequestIdForm::kGrpcMetadata);
}

void AddMetadata(std::string_view name, std::string_view value,
                 std::map<std::string, std::string, std::less<>>* metadata) {
  auto [it, inserted] =
      metadata->emplace(absl::AsciiStrToLower(AV(name)), value);
  if (!inserted) absl::StrAppend(&it->second, ",", AV(value));
}

std::variant<RoutedRequest, HttpRequestError> BuildHttpRequest(
    const Router& router, HttpRequestParts parts) {
  const std::string_view path = parts.target.substr(0, parts.target.find('?'));
  Router::Match m = router.Find(parts.method, path);
  if (m.result == Router::Match::Result::kNoRoute) {
    return HttpRequestError{404, "not_found",
                            absl::StrCat("no route for ", AV(path)), {},
                            "unrouted"};
  }
  if (m.result == Router::Match::Result::kWrongMethod) {
    return HttpRequestError{
        405,
        "method_not_allowed",
        absl::StrCat(AV(parts.method), " is not allowed on ", AV(path)),
        {{"Allow", absl::StrJoin(m.allowed_methods, ", ")}},
        "unrouted"};
  }
  std::string operation = absl::StrCat(AV(parts.method), " ", m.pattern);
  absl::StatusOr<RequestId> id = RequestIdFromHttpHeaders(parts.headers);
  if (!id.ok()) {
    return HttpRequestError{400, "bad_request_id",
                            std::string(id.status().message()), {},
                            std::move(operation)};
  }
  RoutedRequest routed;
  routed.handler = m.handler;
  routed.id = *std::move(id);
  Request& r = routed.request;
  r.operation = std::move(operation);
  r.path = std::string(parts.target);
  r.params = std::move(m.params);
  r.body = std::move(parts.body);
  r.local_address = std::move(parts.local_address);
  for (const HttpHeader& h : parts.headers) AddMetadata(h.name, h.value, &r.metadata);
  r.principal = std::move(parts.principal);
  if (parts.authenticate != nullptr && *parts.authenticate) {
    absl::StatusOr<std::string> who = (*parts.authenticate)(r);
    if (!who.ok()) {
      const absl::StatusCode code =
          who.status().code() == absl::StatusCode::kPermissionDenied
              ? absl::StatusCode::kPermissionDenied
              : absl::StatusCode::kUnauthenticated;
      HttpRequestError e{HttpStatusForCode(code), ErrorName(absl::Status(code, "")),
                         std::string(who.status().message()), {}, r.operation};
      if (code == absl::StatusCode::kUnauthenticated) {
        e.headers.emplace_back("WWW-Authenticate", "Bearer");
      }
      return e;
    }
    r.principal = *std::move(who);
  }
  return routed;
}

std::string ErrorName(const absl::Status& status) {
  switch (GetPipelineError(status)) {
    case PipelineError::kKeyReused: return "idempotency_key_reused";
    case PipelineError::kInProgress: return "request_in_progress";
    case PipelineError::kAlreadyAcknowledged: return "request_already_acknowledged";
    case PipelineError::kOutcomeUnknown: return "outcome_unknown";
    case PipelineError::kFenceNotReady: return "fence_not_ready";
    case PipelineError::kDeposed: return "deposed";
    case PipelineError::kNone: break;
  }
  return absl::AsciiStrToLower(absl::StatusCodeToString(status.code()));
}

int HttpStatusForError(const absl::Status& status) {
  switch (GetPipelineError(status)) {
    case PipelineError::kKeyReused: return 422;
    case PipelineError::kInProgress: return 409;
    case PipelineError::kAlreadyAcknowledged: return 410;
    case PipelineError::kOutcomeUnknown: return 500;
    case PipelineError::kFenceNotReady:
    case PipelineError::kDeposed: return 503;
    case PipelineError::kNone: break;
  }
  return HttpStatusForCode(status.code());
}

}  // namespace baton::framework

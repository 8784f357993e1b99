#include "takeover/daemon/status_protocol.h"

#include "absl/strings/str_cat.h"
#include "base/strings.h"

namespace baton::takeover::status_protocol {
namespace {

using nlohmann::json;

constexpr char kOp[] = "op";
constexpr char kVersionField[] = "version";
constexpr char kSlot[] = "slot";
constexpr char kUndo[] = "undo";
constexpr char kOk[] = "ok";
constexpr char kError[] = "error";
constexpr char kStatusOp[] = "status";
constexpr char kDrainOp[] = "drain";

absl::Status Malformed(std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("malformed request: ", AV(what)));
}

}  // namespace

std::string Encode(const Request& request) {
  json j;
  if (const auto* d = std::get_if<DrainRequest>(&request)) {
    j = {{kOp, kDrainOp}, {kVersionField, d->version}, {kUndo, d->undo}};
    j[kSlot] = d->slot ? json(*d->slot) : json(nullptr);
  } else {
    j = {{kOp, kStatusOp}, {kVersionField, std::get<StatusRequest>(request).version}};
  }
  return j.dump();
}

absl::StatusOr<Request> DecodeRequest(std::string_view line) {
  if (line.size() > kMaxRequestBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("request longer than ", kMaxRequestBytes, " bytes"));
  }
  if (line.find_first_not_of(" \t\r") == std::string_view::npos) return StatusRequest{};
  const json req = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (req.is_discarded() || !req.is_object() || !req.contains(kOp) || !req[kOp].is_string()) {
    return Malformed("expected {\"op\": ...}");
  }
  uint32_t version = 0;
  if (req.contains(kVersionField)) {
    const json& v = req[kVersionField];
    if (!v.is_number_unsigned() || v.get<uint64_t>() > UINT32_MAX) {
      return Malformed("\"version\" must be an unsigned integer");
    }
    version = static_cast<uint32_t>(v.get<uint64_t>());
  }
  if (version != 0 && version != kVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "status protocol version ", version, " from the client, expected ", kVersion));
  }
  const std::string op = req[kOp].get<std::string>();
  if (op == kStatusOp) return StatusRequest{version};
  if (op != kDrainOp) return absl::UnimplementedError(absl::StrCat("unknown op '", op, "'"));
  DrainRequest d;
  d.version = version;
  if (req.contains(kSlot) && !req[kSlot].is_null()) {
    const json& s = req[kSlot];
    if (!s.is_number_unsigned() || s.get<uint64_t>() > UINT32_MAX) {
      return Malformed("\"slot\" must be an unsigned integer or null");
    }
    d.slot = static_cast<uint32_t>(s.get<uint64_t>());
  }
  if (req.contains(kUndo)) {
    if (!req[kUndo].is_boolean()) return Malformed("\"undo\" must be a boolean");
    d.undo = req[kUndo].get<bool>();
  }
  return d;
}

json ErrorReply(std::string_view error) {
  return json{{kOk, false}, {kError, std::string(error)}};
}

absl::StatusOr<json> DecodeReply(std::string_view text) {
  if (text.size() > kMaxReplyBytes) {
    return absl::DataLossError(absl::StrCat("status reply longer than ", kMaxReplyBytes, " bytes"));
  }
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::DataLossError("status socket sent malformed JSON");
  }
  if (j.contains(kOk) && j[kOk].is_boolean() && !j[kOk].get<bool>()) {
    const std::string error =
        j.contains(kError) && j[kError].is_string() ? j[kError].get<std::string>() : "?";
    return absl::InvalidArgumentError(absl::StrCat("daemon refused: ", error));
  }
  return j;
}

}  // namespace baton::takeover::status_protocol

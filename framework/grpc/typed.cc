#include "framework/grpc/typed.h"

#include <climits>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"

namespace baton::framework {
namespace {

using google::protobuf::internal::WireFormatLite;

// google.rpc.Status field numbers (google/rpc/status.proto).
constexpr int kStatusCode = 1;
constexpr int kStatusMessage = 2;
constexpr int kStatusDetails = 3;

RequestId IdOf(const Request& request) {
  // The front end refused a malformed id before the handler; a request that
  // reached the handler some other way (a test calling the pipeline) and
  // has none counts as unidentified.
  absl::StatusOr<RequestId> id = RequestIdFromMetadata(request.metadata);
  return id.ok() ? *std::move(id) : RequestId::None();
}

}  // namespace

RequestContext::RequestContext(const Request& request)
    : request_(request), id_(IdOf(request)) {}

std::string_view RequestContext::metadata(std::string_view name) const {
  auto it = request_.metadata.find(name);
  return it == request_.metadata.end() ? std::string_view()
                                       : std::string_view(it->second);
}

std::string SerializeRpcStatus(const RpcStatus& status) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    if (status.code != absl::StatusCode::kOk) {
      WireFormatLite::WriteInt32(kStatusCode, static_cast<int32_t>(status.code),
                                 &coded);
    }
    if (!status.message.empty()) {
      WireFormatLite::WriteString(kStatusMessage, status.message, &coded);
    }
    for (const google::protobuf::Any& detail : status.details) {
      WireFormatLite::WriteBytes(kStatusDetails, detail.SerializeAsString(),
                                 &coded);
    }
  }
  return out;
}

absl::StatusOr<RpcStatus> ParseRpcStatus(std::string_view bytes) {
  if (bytes.size() > static_cast<size_t>(INT_MAX)) {
    return absl::InvalidArgumentError("google.rpc.Status too large");
  }
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(bytes.data()),
      static_cast<int>(bytes.size()));
  RpcStatus status;
  const auto malformed = [] {
    return absl::InvalidArgumentError("malformed google.rpc.Status");
  };
  while (uint32_t tag = in.ReadTag()) {
    const int field = WireFormatLite::GetTagFieldNumber(tag);
    const WireFormatLite::WireType type = WireFormatLite::GetTagWireType(tag);
    if (field == kStatusCode && type == WireFormatLite::WIRETYPE_VARINT) {
      uint64_t v = 0;
      if (!in.ReadVarint64(&v)) return malformed();
      status.code = static_cast<absl::StatusCode>(static_cast<int32_t>(v));
    } else if (field == kStatusMessage &&
               type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      if (!WireFormatLite::ReadString(&in, &status.message)) return malformed();
    } else if (field == kStatusDetails &&
               type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      std::string any;
      if (!WireFormatLite::ReadBytes(&in, &any) ||
          !status.details.emplace_back().ParseFromString(any)) {
        return malformed();
      }
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return malformed();
    }
  }
  if (!in.ConsumedEntireMessage()) return malformed();
  return status;
}

namespace internal {

absl::Status ParseRequestMessage(std::string_view bytes,
                                 google::protobuf::MessageLite* message) {
  // protobuf parses at most INT_MAX bytes; gRPC's max_message_bytes keeps
  // requests far below that, this guards other callers.
  if (bytes.size() > static_cast<size_t>(INT_MAX) ||
      !message->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "malformed ", message->GetTypeName(), " message (", bytes.size(),
        " bytes)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Reply> ResponseReply(
    const google::protobuf::MessageLite& response) {
  Reply reply;
  reply.code = absl::StatusCode::kOk;
  reply.content_type = kGrpcMessageContentType;
  if (!response.SerializeToString(&reply.body)) {
    return absl::InternalError(absl::StrCat(
        "cannot serialize the ", response.GetTypeName(), " response"));
  }
  return reply;
}

Reply ErrorReply(absl::StatusCode code, const std::string& message,
                 const std::string& name,
                 const std::vector<google::protobuf::Any>& details) {
  GrpcError error;
  error.code =
      code == absl::StatusCode::kOk ? absl::StatusCode::kUnknown : code;
  error.name = name;
  error.message = message;
  if (!details.empty()) {
    error.status_details = SerializeRpcStatus({error.code, message, details});
  }
  return GrpcErrorReply(std::move(error));
}

}  // namespace internal
}  // namespace baton::framework

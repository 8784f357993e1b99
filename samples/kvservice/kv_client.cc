#include "samples/kvservice/kv_client.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "samples/kvservice/kv_grpc.h"
#include "samples/kvservice/proto/kv.pb.h"

namespace baton::kvservice {
namespace {

using framework::client::Call;
using json = nlohmann::json;
namespace pb = baton::kv::v1;

std::string PercentEncode(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

absl::StatusOr<json> ParseJson(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat("not JSON: ", text));
  }
  return j;
}

}  // namespace

absl::StatusOr<std::unique_ptr<KvClient>> KvClient::Connect(
    KvProtocol protocol, const std::string& endpoint,
    framework::client::ClientOptions options,
    framework::client::Environment& env) {
  return Connect(protocol, endpoint, std::move(options), {}, env);
}

absl::StatusOr<std::unique_ptr<KvClient>> KvClient::Connect(
    KvProtocol protocol, const std::string& url,
    framework::client::ClientOptions options, framework::client::TlsOptions tls,
    framework::client::Environment& env) {
  std::string endpoint = url;
  if (protocol == KvProtocol::kHttp && absl::StartsWith(endpoint, "https://")) {
    endpoint = endpoint.substr(8);
    tls.enabled = true;
  } else if (protocol == KvProtocol::kHttp && absl::StartsWith(endpoint, "http://")) {
    endpoint = endpoint.substr(7);
    if (tls.enabled) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", url, "\" says http:// but TLS options are given"));
    }
  }
  if (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  const size_t colon = endpoint.rfind(':');
  uint32_t port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(endpoint.substr(colon + 1), &port) || port == 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("endpoint must be host:port, got \"", endpoint, "\""));
  }
  absl::StatusOr<std::unique_ptr<framework::client::Transport>> t;
  if (protocol == KvProtocol::kHttp) {
    framework::client::HttpTransportOptions o;
    o.host = endpoint.substr(0, colon);
    o.port = static_cast<uint16_t>(port);
    o.connect_timeout = options.retry.connect_timeout;
    o.tls = tls;
    t = framework::client::MakeHttpTransport(o);
  } else {
    framework::client::GrpcTransportOptions o;
    o.target = endpoint;
    o.tls = tls;
    t = framework::client::MakeGrpcTransport(o);
  }
  if (!t.ok()) return t.status();
  auto c = std::make_unique<framework::client::RetryingClient>(
      *std::move(t), std::move(options), env);
  return std::unique_ptr<KvClient>(new KvClient(protocol, std::move(c)));
}

absl::StatusOr<Call> KvClient::MakeCall(const std::string& op,
                                        const std::string& key,
                                        const std::string& arg1,
                                        const std::string& arg2) const {
  Call call;
  if (protocol_ == KvProtocol::kHttp) {
    const std::string base = "/kv/" + PercentEncode(key);
    json body;
    if (op == "get" || op == "delete") {
      call.method = op == "get" ? "GET" : "DELETE";
      call.target = base;
      return call;
    }
    if (op == "put") {
      auto v = ParseJson(arg1);
      if (!v.ok()) return v.status();
      call.method = "PUT";
      call.target = base;
      body = {{"value", *v}};
    } else if (op == "cas") {
      auto e = ParseJson(arg1);
      if (!e.ok()) return e.status();
      auto v = ParseJson(arg2);
      if (!v.ok()) return v.status();
      call.method = "POST";
      call.target = base + "/cas";
      body = {{"expected", *e}, {"value", *v}};
    } else if (op == "incr") {
      int64_t by = 1;
      if (!arg1.empty() && !absl::SimpleAtoi(arg1, &by)) {
        return absl::InvalidArgumentError("incr: by must be an integer");
      }
      call.method = "POST";
      call.target = base + "/incr";
      body = {{"by", by}};
    } else if (op == "append") {
      call.method = "POST";
      call.target = base + "/append";
      body = {{"value", arg1}};
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown operation ", op));
    }
    call.body = body.dump();
    return call;
  }
  call.content_type = "application/grpc";
  if (op == "get") {
    pb::GetRequest m;
    m.set_key(key);
    call.method = kGrpcGet;
    m.SerializeToString(&call.body);
  } else if (op == "put") {
    pb::PutRequest m;
    m.set_key(key);
    m.set_value_json(arg1);
    call.method = kGrpcPut;
    m.SerializeToString(&call.body);
  } else if (op == "delete") {
    pb::DeleteRequest m;
    m.set_key(key);
    call.method = kGrpcDelete;
    m.SerializeToString(&call.body);
  } else if (op == "cas") {
    pb::CasRequest m;
    m.set_key(key);
    m.set_expected_json(arg1);
    m.set_value_json(arg2);
    call.method = kGrpcCas;
    m.SerializeToString(&call.body);
  } else if (op == "incr") {
    pb::IncrRequest m;
    m.set_key(key);
    int64_t by = 1;
    if (!arg1.empty() && !absl::SimpleAtoi(arg1, &by)) {
      return absl::InvalidArgumentError("incr: by must be an integer");
    }
    m.set_by(by);
    call.method = kGrpcIncr;
    m.SerializeToString(&call.body);
  } else if (op == "append") {
    pb::AppendRequest m;
    m.set_key(key);
    m.set_value(arg1);
    call.method = kGrpcAppend;
    m.SerializeToString(&call.body);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown operation ", op));
  }
  return call;
}

KvResult KvClient::Decode(framework::client::CallResult call) const {
  KvResult r;
  r.call = std::move(call);
  if (!r.call.status.ok()) {
    r.code = r.call.status.code();
    r.error = std::string(r.call.status.message());
    return r;
  }
  const framework::client::Response& res = r.call.response;
  r.code = res.code;
  if (res.code != absl::StatusCode::kOk) {
    r.error = res.body;
    return r;
  }
  if (protocol_ == KvProtocol::kHttp) {
    json j = json::parse(res.body, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) {
      r.code = absl::StatusCode::kInternal;
      r.error = "reply is not a JSON object";
      return r;
    }
    r.key = j.value("key", "");
    if (j.contains("value")) r.value_json = j["value"].dump();
    r.version = j.value("version", int64_t{0});
    r.deleted = j.value("deleted", false);
    return r;
  }
  pb::KvReply m;
  if (!m.ParseFromString(res.body)) {
    r.code = absl::StatusCode::kInternal;
    r.error = "malformed KvReply";
    return r;
  }
  r.key = m.key();
  r.value_json = m.value_json();
  r.version = m.version();
  r.deleted = m.deleted();
  return r;
}

KvResult KvClient::Run(const std::string& op, const std::string& key,
                       const std::string& arg1, const std::string& arg2) {
  absl::StatusOr<Call> call = MakeCall(op, key, arg1, arg2);
  if (!call.ok()) {
    KvResult r;
    r.call.status = call.status();
    r.code = call.status().code();
    r.error = std::string(call.status().message());
    return r;
  }
  return Decode(client_->Send(*call));
}

KvResult KvClient::Get(const std::string& key) { return Run("get", key); }
KvResult KvClient::Put(const std::string& key, const std::string& value_json) {
  return Run("put", key, value_json);
}
KvResult KvClient::Delete(const std::string& key) { return Run("delete", key); }
KvResult KvClient::Cas(const std::string& key, const std::string& expected_json,
                       const std::string& value_json) {
  return Run("cas", key, expected_json, value_json);
}
KvResult KvClient::Incr(const std::string& key, int64_t by) {
  return Run("incr", key, std::to_string(by));
}
KvResult KvClient::Append(const std::string& key, const std::string& value) {
  return Run("append", key, value);
}

}  // namespace baton::kvservice

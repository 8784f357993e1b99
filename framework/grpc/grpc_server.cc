#include "framework/grpc/grpc_server.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <deque>
#include <functional>
#include <optional>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "framework/request_builder.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "grpcpp/support/byte_buffer.h"
#include "google/protobuf/stubs/logging.h"
#include "spdlog/spdlog.h"

namespace baton::framework {
namespace {


grpc::Status ToGrpc(absl::StatusCode code, std::string message) {
  return grpc::Status(static_cast<grpc::StatusCode>(code), std::move(message));
}

// A fixed pool of threads running queued jobs.
class WorkerPool {
 public:
  explicit WorkerPool(int n) {
    for (int i = 0; i < std::max(n, 1); ++i) {
      threads_.emplace_back([this] { Loop(); });
    }
  }
  ~WorkerPool() { Stop(); }
  void Submit(std::function<void()> job) {
    absl::MutexLock lock(&mu_);
    jobs_.push_back(std::move(job));
  }
  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  void Loop() {
    for (;;) {
      std::function<void()> job;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](WorkerPool* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
              return p->stopping_ || !p->jobs_.empty();
            },
            this));
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }
  absl::Mutex mu_;
  std::deque<std::function<void()>> jobs_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

class Service;

// One call: read the request message, run the pipeline on a worker, answer.
class CallReactor : public grpc::ServerGenericBidiReactor {
 public:
  CallReactor(Service* service, grpc::GenericCallbackServerContext* ctx,
              Handler* handler)
      : service_(service),
        ctx_(ctx),
        handler_(handler),
        started_(std::chrono::steady_clock::now()) {
    AddNodeTrailer(ctx);
    StartRead(&request_);
  }
  void OnReadDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  // Builds request_obj_ and id_ from the call; false if it was answered
  // with an error.
  bool Prepare();
  // Blocking path (worker thread): Execute().
  void Run();
  // Non-blocking path (this gRPC thread): ExecuteAsync(); the answer is
  // sent from the store's completion callback.
  void RunAsync();
  void Respond(absl::StatusOr<PipelineResult> result);
  void AddNodeTrailer(grpc::GenericCallbackServerContext* ctx);
  void FinishWithError(absl::StatusCode code, const std::string& name,
                       std::string message) {
    ctx_->AddTrailingMetadata("baton-error", name);
    Observe(code, name, false);
    Finish(ToGrpc(code, std::move(message)));
  }
  void Observe(absl::StatusCode code, std::string_view name, bool replayed);

  Service* service_;
  grpc::GenericCallbackServerContext* ctx_;
  Handler* handler_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  Request request_obj_;
  RequestId id_;
  const std::chrono::steady_clock::time_point started_;
};

class Service : public grpc::CallbackGenericService {
 public:
  Service(GrpcRouter router, RequestPipeline& pipeline,
          const GrpcServerOptions& options)
      : router_(std::move(router)),
        pipeline_(pipeline),
        pool_(options.worker_threads),
        node_name_(options.node_name),
        authenticate_(options.authenticate),
        observer_(options.observer) {}

  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* ctx) override {
    framework::Handler* h = router_.Find(ctx->method());
    if (h == nullptr) {
      class Unknown : public grpc::ServerGenericBidiReactor {
       public:
        Unknown(grpc::GenericCallbackServerContext* ctx,
                const std::string& node, RequestObserver* observer) {
          if (!node.empty()) ctx->AddTrailingMetadata("baton-node", node);
          ctx->AddTrailingMetadata("baton-error", "unknown_method");
          if (observer != nullptr) {
            observer->RequestDone("grpc", "unrouted",
                                  static_cast<int>(grpc::StatusCode::UNIMPLEMENTED),
                                  "unknown_method", absl::ZeroDuration(), false);
          }
          Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                              absl::StrCat("unknown method \"", ctx->method(),
                                           "\"")));
        }
        void OnDone() override { delete this; }
      };
      return new Unknown(ctx, node_name_, observer_);
    }
    return new CallReactor(this, ctx, h);
  }

  RequestPipeline& pipeline() { return pipeline_; }
  WorkerPool& pool() { return pool_; }
  const std::string& node_name() const { return node_name_; }
  const std::function<absl::StatusOr<std::string>(const Request&)>&
  authenticate() const {
    return authenticate_;
  }
  RequestObserver* observer() const { return observer_; }

 private:
  GrpcRouter router_;
  RequestPipeline& pipeline_;
  WorkerPool pool_;
  const std::string node_name_;
  const std::function<absl::StatusOr<std::string>(const Request&)>
      authenticate_;
  RequestObserver* const observer_;
};

void CallReactor::Observe(absl::StatusCode code, std::string_view name,
                          bool replayed) {
  if (RequestObserver* o = service_->observer()) {
    o->RequestDone("grpc",
                   request_obj_.operation.empty() ? ctx_->method()
                                                  : request_obj_.operation,
                   static_cast<int>(code), name,
                   absl::FromChrono(std::chrono::steady_clock::now() -
                                    started_),
                   replayed);
  }
}

void CallReactor::AddNodeTrailer(grpc::GenericCallbackServerContext* ctx) {
  if (!service_->node_name().empty()) {
    ctx->AddTrailingMetadata("baton-node", service_->node_name());
  }
}

// The host part of a call's :authority ("10.78.0.100:9090" -> "10.78.0.100",
// "[::1]:9090" -> "::1"): the address the client dialled.
std::string AuthorityHost(std::string_view authority) {
  if (!authority.empty() && authority.front() == '[') {
    const size_t end = authority.find(']');
    return std::string(authority.substr(1, end == std::string_view::npos
                                               ? std::string_view::npos
                                               : end - 1));
  }
  const size_t colon = authority.find(':');
  if (colon != std::string_view::npos &&
      authority.find(':', colon + 1) == std::string_view::npos) {
    return std::string(authority.substr(0, colon));
  }
  return std::string(authority);
}

void CallReactor::OnReadDone(bool ok) {
  if (!ok) {
    FinishWithError(absl::StatusCode::kInvalidArgument, "bad_request",
                    "no request message");
    return;
  }
  if (service_->pipeline().ExecutesInline()) {
    RunAsync();
  } else {
    service_->pool().Submit([this] { Run(); });
  }
}

bool CallReactor::Prepare() {
  Request& r = request_obj_;
  r.operation = ctx_->method();
  r.path = ctx_->method();
  {
    grpc::string_ref authority = ctx_->ExperimentalGetAuthority();
    r.local_address =
        AuthorityHost(std::string_view(authority.data(), authority.size()));
  }
  std::vector<grpc::Slice> slices;
  if (!request_.Dump(&slices).ok()) {
    FinishWithError(absl::StatusCode::kInvalidArgument, "bad_request",
                    "unreadable request message");
    return false;
  }
  for (const grpc::Slice& s : slices) {
    r.body.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  for (const auto& [k, v] : ctx_->client_metadata()) {
    AddMetadata(std::string_view(k.data(), k.size()),
                std::string_view(v.data(), v.size()), &r.metadata);
  }
  absl::StatusOr<RequestId> id = RequestIdFromMetadata(r.metadata);
  if (!id.ok()) {
    FinishWithError(absl::StatusCode::kInvalidArgument, "bad_request_id",
                    std::string(id.status().message()));
    return false;
  }
  id_ = *std::move(id);
  if (std::shared_ptr<const grpc::AuthContext> auth = ctx_->auth_context();
      auth && auth->IsPeerAuthenticated()) {
    std::vector<grpc::string_ref> subject =
        auth->FindPropertyValues(GRPC_X509_SUBJECT_PROPERTY_NAME);
    if (!subject.empty()) {
      r.principal.assign(subject.front().data(), subject.front().size());
    }
  }
  if (service_->authenticate()) {
    absl::StatusOr<std::string> who = service_->authenticate()(r);
    if (!who.ok()) {
      const absl::StatusCode code =
          who.status().code() == absl::StatusCode::kPermissionDenied
              ? absl::StatusCode::kPermissionDenied
              : absl::StatusCode::kUnauthenticated;
      FinishWithError(code,
                      absl::AsciiStrToLower(absl::StatusCodeToString(code)),
                      std::string(who.status().message()));
      return false;
    }
    r.principal = *std::move(who);
  }
  return true;
}

void CallReactor::Run() {
  if (!Prepare()) return;
  absl::StatusOr<PipelineResult> result;
  // The pipeline catches what a handler throws (INTERNAL, nothing committed).
  result = service_->pipeline().Execute(id_, request_obj_, *handler_);
  Respond(std::move(result));
}

void CallReactor::RunAsync() {
  if (!Prepare()) return;
  service_->pipeline().ExecuteAsync(
      id_, request_obj_, *handler_,
      [this](absl::StatusOr<PipelineResult> result) {
        Respond(std::move(result));
      });
}

void CallReactor::Respond(absl::StatusOr<PipelineResult> result) {
  if (!result.ok()) {
    FinishWithError(result.status().code(), GrpcErrorName(result.status()),
                    std::string(result.status().message()));
    return;
  }
  if (result->replayed) ctx_->AddTrailingMetadata("idempotent-replayed", "true");
  const Reply& reply = result->reply;
  Observe(reply.code,
          reply.code == absl::StatusCode::kOk
              ? std::string("ok")
              : absl::AsciiStrToLower(absl::StatusCodeToString(reply.code)),
          result->replayed);
  if (reply.code != absl::StatusCode::kOk) {
    if (std::optional<GrpcError> e = ParseGrpcErrorReply(reply)) {
      ctx_->AddTrailingMetadata("baton-error", e->name);
      Finish(grpc::Status(static_cast<grpc::StatusCode>(reply.code),
                          std::move(e->message), std::move(e->status_details)));
      return;
    }
    Finish(ToGrpc(reply.code, reply.body));
    return;
  }
  grpc::Slice slice(reply.body);
  response_ = grpc::ByteBuffer(&slice, 1);
  StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
}

class GrpcServerImpl : public GrpcServer {
 public:
  GrpcServerImpl(std::unique_ptr<Service> service,
                 std::unique_ptr<grpc::Server> server, uint16_t port)
      : service_(std::move(service)), server_(std::move(server)), port_(port) {}
  ~GrpcServerImpl() override { Stop(); }
  uint16_t port() const override { return port_; }
  void Stop() override {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    // Workers keep running during Shutdown: calls in progress finish.
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server_->Wait();
    service_->pool().Stop();
  }

 private:
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  const uint16_t port_;
  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};


}  // namespace

absl::Status GrpcRouter::Add(std::string_view full_method,
                             std::shared_ptr<Handler> handler) {
  const size_t slash = full_method.rfind('/');
  if (full_method.size() < 4 || full_method[0] != '/' || slash == 0 ||
      slash + 1 == full_method.size() || handler == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "gRPC method must be \"/package.Service/Method\", got \"",
        std::string(full_method), "\""));
  }
  if (!methods_.emplace(std::string(full_method), std::move(handler)).second) {
    return absl::AlreadyExistsError(
        absl::StrCat("method ", std::string(full_method), " added twice"));
  }
  return absl::OkStatus();
}

Handler* GrpcRouter::Find(std::string_view full_method) const {
  auto it = methods_.find(full_method);
  return it == methods_.end() ? nullptr : it->second.get();
}

absl::StatusOr<RequestId> RequestIdFromMetadata(
    const std::map<std::string, std::string, std::less<>>& md) {
  return RequestIdFromGrpcMetadata(md);  // One parser for both front ends.
}

namespace {

std::string CodeName(absl::StatusCode code) {
  return absl::AsciiStrToLower(absl::StatusCodeToString(code));
}

bool IsErrorName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '_' &&
        c != '.' && c != '-') {
      return false;
    }
  }
  return true;
}

// GrpcErrorReply's body: the three fields as netstrings ("<len>:<bytes>,").
void AppendNetstring(std::string* out, std::string_view field) {
  absl::StrAppend(out, field.size(), ":");
  out->append(field);
  out->push_back(',');
}

bool ReadNetstring(std::string_view* in, std::string* field) {
  const size_t colon = in->find(':');
  if (colon == std::string_view::npos || colon == 0 || colon > 10) return false;
  uint64_t n = 0;
  for (char c : in->substr(0, colon)) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  if (n > in->size() - colon - 1 || in->size() - colon - 1 - n < 1 ||
      (*in)[colon + 1 + n] != ',') {
    return false;
  }
  field->assign(in->substr(colon + 1, n));
  in->remove_prefix(colon + 2 + n);
  return true;
}

}  // namespace

Reply GrpcErrorReply(GrpcError error) {
  if (error.code == absl::StatusCode::kOk) error.code = absl::StatusCode::kUnknown;
  if (!IsErrorName(error.name)) error.name = CodeName(error.code);
  Reply reply;
  reply.code = error.code;
  reply.content_type = kGrpcErrorContentType;
  AppendNetstring(&reply.body, error.name);
  AppendNetstring(&reply.body, error.message);
  AppendNetstring(&reply.body, error.status_details);
  return reply;
}

std::optional<GrpcError> ParseGrpcErrorReply(const Reply& reply) {
  if (reply.code == absl::StatusCode::kOk ||
      reply.content_type != kGrpcErrorContentType) {
    return std::nullopt;
  }
  GrpcError e;
  e.code = reply.code;
  std::string_view in = reply.body;
  if (!ReadNetstring(&in, &e.name) || !ReadNetstring(&in, &e.message) ||
      !ReadNetstring(&in, &e.status_details) || !in.empty() ||
      !IsErrorName(e.name)) {
    return std::nullopt;
  }
  return e;
}

std::string GrpcErrorName(const absl::Status& status) {
  return ErrorName(status);  // One table of error names (request_builder.h).
}

namespace {

// protobuf logs an ERROR line for every message it refuses to parse (e.g. a
// proto3 string with invalid UTF-8): a client could fill the log with them.
// Routed through spdlog, at most one line per 10 s with a count.
void ProtobufLog(google::protobuf::LogLevel level, const char* file, int line,
                 const std::string& message) {
  if (level == google::protobuf::LOGLEVEL_FATAL) {
    spdlog::critical("protobuf {}:{}: {}", file, line, message);
    return;
  }
  static std::atomic<int64_t> last_ns{0};
  static std::atomic<uint64_t> suppressed{0};
  const int64_t now = absl::GetCurrentTimeNanos();
  int64_t last = last_ns.load();
  if (now - last < 10'000'000'000 || !last_ns.compare_exchange_strong(last, now)) {
    suppressed.fetch_add(1);
    return;
  }
  spdlog::warn("protobuf: {} ({} more protobuf messages not logged)", message,
               suppressed.exchange(0));
}

}  // namespace

absl::StatusOr<std::unique_ptr<GrpcServer>> StartGrpcServer(
    const GrpcServerOptions& options, GrpcRouter router,
    RequestPipeline& pipeline) {
  static std::once_flag log_handler;
  std::call_once(log_handler,
                 [] { google::protobuf::SetLogHandler(&ProtobufLog); });
  if (options.worker_threads < 1 || options.max_message_bytes < 1 ||
      options.max_metadata_bytes < 1 || options.address.empty()) {
    return absl::InvalidArgumentError("bad gRPC server options");
  }
  std::shared_ptr<grpc::ServerCredentials> credentials =
      grpc::InsecureServerCredentials();
  if (options.tls.enabled()) {
    if (absl::Status s = CheckTlsServerOptions(options.tls); !s.ok()) return s;
    auto provider =
        std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
            options.tls.key_file, options.tls.cert_file,
            options.tls.client_ca_file,
            static_cast<unsigned int>(std::max<int64_t>(
                1, absl::ToInt64Seconds(options.tls.grpc_refresh_interval))));
    grpc::experimental::TlsServerCredentialsOptions tls(provider);
    tls.watch_identity_key_cert_pairs();
    if (!options.tls.client_ca_file.empty()) {
      tls.watch_root_certs();
      tls.set_cert_request_type(
          options.tls.require_client_cert
              ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
              : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
    } else {
      tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    }
    credentials = grpc::experimental::TlsServerCredentials(tls);
  }
  auto service =
      std::make_unique<Service>(std::move(router), pipeline, options);
  grpc::ServerBuilder builder;
  int port = 0;
  const std::string host = options.address.find(':') != std::string::npos
                               ? absl::StrCat("[", options.address, "]")
                               : options.address;
  builder.AddListeningPort(absl::StrCat(host, ":", options.port), credentials,
                           &port);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE,
                             options.max_metadata_bytes);
  // Without this, a restarted server on the same port fails to bind while
  // the old socket lingers; gRPC sets SO_REUSEADDR, but make it explicit.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterCallbackGenericService(service.get());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", host, ":", options.port, " for gRPC"));
  }
  return std::unique_ptr<GrpcServer>(new GrpcServerImpl(
      std::move(service), std::move(server), static_cast<uint16_t>(port)));
}

}  // namespace baton::framework

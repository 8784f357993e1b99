#include "framework/grpc/grpc_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
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
#include "grpcpp/impl/server_builder_option.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/channel_arguments.h"
#include "google/protobuf/stubs/logging.h"
#include "grpc/support/sync.h"
#include "spdlog/spdlog.h"

// gRPC C-core's socket mutator: grpc_types.h declares the type, C-core's
// internal src/core/lib/iomgr/socket_mutator.h defines it (see
// FreebindMutator below).
struct grpc_socket_mutator_vtable {
  bool (*mutate_fd)(int fd, grpc_socket_mutator* mutator);
  int (*compare)(grpc_socket_mutator* a, grpc_socket_mutator* b);
  void (*destroy)(grpc_socket_mutator* mutator);
  // (const grpc_mutate_socket_info*, mutator); unset: mutate_fd is used.
  bool (*mutate_fd_2)(const void* info, grpc_socket_mutator* mutator);
};
struct grpc_socket_mutator {
  const grpc_socket_mutator_vtable* vtable;
  gpr_refcount refcount;
};

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

// What every listener's service shares: routes, pipeline, workers, hooks.
struct Shared {
  Shared(GrpcRouter r, RequestPipeline& p, const GrpcServerOptions& options)
      : router(std::move(r)),
        pipeline(p),
        pool(options.worker_threads),
        node_name(options.node_name),
        authenticate(options.authenticate),
        observer(options.observer) {}
  GrpcRouter router;
  RequestPipeline& pipeline;
  WorkerPool pool;
  const std::string node_name;
  const std::function<absl::StatusOr<std::string>(const Request&)> authenticate;
  RequestObserver* const observer;
};

// The generic service of one grpc::Server (one per listener: a service is
// registered with one server).
class Service : public grpc::CallbackGenericService {
 public:
  // `local_address`: the address its listener is bound to when that is one
  // address (a service address), else empty (a wildcard).
  Service(Shared& shared, std::string local_address)
      : shared_(shared), local_address_(std::move(local_address)) {}

  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* ctx) override {
    framework::Handler* h = shared_.router.Find(ctx->method());
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
      return new Unknown(ctx, shared_.node_name, shared_.observer);
    }
    return new CallReactor(this, ctx, h);
  }

  RequestPipeline& pipeline() { return shared_.pipeline; }
  WorkerPool& pool() { return shared_.pool; }
  const std::string& node_name() const { return shared_.node_name; }
  const std::function<absl::StatusOr<std::string>(const Request&)>&
  authenticate() const {
    return shared_.authenticate;
  }
  RequestObserver* observer() const { return shared_.observer; }
  const std::string& local_address() const { return local_address_; }

 private:
  Shared& shared_;
  const std::string local_address_;
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
  if (!service_->local_address().empty()) {
    r.local_address = service_->local_address();
  } else {
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

// How long a listener's running calls may take to finish when it shuts down
// (Stop, or a planned release of its address); then they are cancelled.
constexpr std::chrono::seconds kShutdownTimeout{5};

// The numeric form of an address ("[::1]" and "::0001" -> "::1"); the input
// itself when it is not a numeric address.
std::string NumericAddress(std::string_view address) {
  std::string a(address);
  if (a.size() > 2 && a.front() == '[' && a.back() == ']') {
    a = a.substr(1, a.size() - 2);
  }
  char buf[INET6_ADDRSTRLEN] = {};
  in_addr v4;
  in6_addr v6;
  if (::inet_pton(AF_INET, a.c_str(), &v4) == 1) {
    return ::inet_ntop(AF_INET, &v4, buf, sizeof buf) ? buf : a;
  }
  if (::inet_pton(AF_INET6, a.c_str(), &v6) == 1) {
    return ::inet_ntop(AF_INET6, &v6, buf, sizeof buf) ? buf : a;
  }
  return a;
}

bool IsWildcard(std::string_view address) {
  const std::string a = NumericAddress(address);
  return a == "0.0.0.0" || a == "::";
}

// A socket mutator (gRPC C-core) that sets IP_FREEBIND on listening sockets
// before they are bound, so that a listener for a service address can exist
// while another host holds that address. Its only definition is in C-core's
// src/core/lib/iomgr/socket_mutator.h, which Debian does not install; the
// layout (vtable, refcount) is the same from gRPC 1.23 to 1.6x, and the
// build is for 1.51 (CMake's find_package(gRPC)).
struct FreebindMutator {
  grpc_socket_mutator base;
};

bool FreebindMutateFd(int fd, grpc_socket_mutator*) {
  // Called for listening sockets (and for a client's connections, which a
  // server makes none of); IP_FREEBIND applies to IPv6 sockets too.
  const int one = 1;
  if (::setsockopt(fd, SOL_IP, IP_FREEBIND, &one, sizeof one) != 0) {
    spdlog::error("gRPC listener: cannot set IP_FREEBIND: {}",
                  std::strerror(errno));
    return false;
  }
  return true;
}

int FreebindCompare(grpc_socket_mutator* a, grpc_socket_mutator* b) {
  const auto x = reinterpret_cast<uintptr_t>(a);
  const auto y = reinterpret_cast<uintptr_t>(b);
  return x < y ? -1 : (x > y ? 1 : 0);
}

void FreebindDestroy(grpc_socket_mutator* m) {
  delete reinterpret_cast<FreebindMutator*>(m);
}

constexpr grpc_socket_mutator_vtable kFreebindVtable = {
    FreebindMutateFd, FreebindCompare, FreebindDestroy, nullptr};

// Gives a ServerBuilder's channel arguments the FREEBIND mutator.
class FreebindOption : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments* args) override {
    auto* m = new FreebindMutator;
    m->base.vtable = &kFreebindVtable;
    gpr_ref_init(&m->base.refcount, 1);
    args->SetSocketMutator(&m->base);  // The arguments own it from here.
  }
  void UpdatePlugins(
      std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>*) override {}
};

// One grpc::Server: a listening socket and the connections accepted there.
struct Listener {
  std::string address;  // NumericAddress of what it is bound to
  std::unique_ptr<Service> service;
  std::unique_ptr<grpc::Server> server;
};

// A listener shutting down (GOAWAY sent, running calls finishing) on its
// own thread, after a planned release of its address.
struct Draining {
  Listener listener;
  std::thread thread;
  std::atomic<bool> done{false};
};

class GrpcServerImpl : public GrpcServer {
 public:
  GrpcServerImpl(std::unique_ptr<Shared> shared, GrpcServerOptions options,
                 std::shared_ptr<grpc::ServerCredentials> credentials)
      : shared_(std::move(shared)),
        options_(std::move(options)),
        credentials_(std::move(credentials)) {}
  ~GrpcServerImpl() override { Stop(); }

  // Opens the main listener (options.address:options.port) and one per
  // service address beside a wildcard one.
  absl::Status Open() {
    absl::MutexLock lock(&mu_);
    const bool own = IsWildcard(options_.address) &&
                     !options_.service_addresses.empty();
    // Bound to a service address itself, the main listener is that
    // address's: it is replaced on a release as the others are.
    reuse_port_ = own;
    for (const std::string& a : options_.service_addresses) {
      if (NumericAddress(a) == NumericAddress(options_.address)) {
        reuse_port_ = true;
      }
    }
    absl::StatusOr<Listener> main =
        StartListener(options_.address, options_.port, /*freebind=*/false);
    if (!main.ok()) return main.status();
    listeners_.push_back(*std::move(main));
    if (!own) return absl::OkStatus();
    for (const std::string& a : options_.service_addresses) {
      absl::StatusOr<Listener> l = StartListener(a, port_, /*freebind=*/true);
      if (!l.ok()) return l.status();
      listeners_.push_back(*std::move(l));
    }
    return absl::OkStatus();
  }

  uint16_t port() const override { return port_; }

  size_t CloseConnections(std::string_view local_address) override {
    const std::string address = NumericAddress(local_address);
    absl::MutexLock lock(&mu_);
    if (stopped_) return 0;
    // A drain of this address under way (its count), or just ended (0:
    // the caller polls until 0); otherwise start one.
    size_t running = 0;
    bool ended = false;
    for (auto it = draining_.begin(); it != draining_.end();) {
      if ((*it)->listener.address != address) {
        ++it;
      } else if ((*it)->done.load()) {
        (*it)->thread.join();
        it = draining_.erase(it);
        ended = true;
      } else {
        ++running;
        ++it;
      }
    }
    if (running > 0 || ended) return running;
    auto it = std::find_if(listeners_.begin(), listeners_.end(),
                           [&](const Listener& l) { return l.address == address; });
    if (it == listeners_.end()) return 0;
    // A fresh listener takes the old one's place for the next holding (it
    // accepts nothing meanwhile: the address is refused, then gone).
    absl::StatusOr<Listener> fresh = StartListener(address, port_, true);
    auto d = std::make_unique<Draining>();
    d->listener = std::move(*it);
    if (fresh.ok()) {
      *it = *std::move(fresh);
    } else {
      spdlog::error("gRPC: no new listener for {} after its release: {}; its "
                    "connections will not get GOAWAY at the next release",
                    address, fresh.status().ToString());
      listeners_.erase(it);
    }
    // Shutdown sends every connection of the listener GOAWAY, lets the calls
    // running there finish (they commit under this host's fence, or are
    // refused as deposed) and ends the connections; clients open their next
    // connection to the address, which by then refuses them or has moved.
    Draining* raw = d.get();
    d->thread = std::thread([raw] {
      raw->listener.server->Shutdown(std::chrono::system_clock::now() +
                                     kShutdownTimeout);
      raw->listener.server->Wait();
      raw->done.store(true);
    });
    draining_.push_back(std::move(d));
    return 1;
  }

  void Stop() override {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    // Workers keep running during Shutdown: calls in progress finish.
    const auto deadline = std::chrono::system_clock::now() + kShutdownTimeout;
    for (Listener& l : listeners_) l.server->Shutdown(deadline);
    for (Listener& l : listeners_) l.server->Wait();
    for (std::unique_ptr<Draining>& d : draining_) d->thread.join();
    shared_->pool.Stop();
  }

 private:
  absl::StatusOr<Listener> StartListener(const std::string& address,
                                         uint16_t port, bool freebind)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Listener l;
    l.address = NumericAddress(address);
    l.service = std::make_unique<Service>(
        *shared_, IsWildcard(address) ? std::string() : l.address);
    grpc::ServerBuilder builder;
    int bound = 0;
    const std::string host = address.find(':') != std::string::npos &&
                                     address.front() != '['
                                 ? absl::StrCat("[", address, "]")
                                 : address;
    builder.AddListeningPort(absl::StrCat(host, ":", port), credentials_,
                             &bound);
    builder.SetMaxReceiveMessageSize(options_.max_message_bytes);
    builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE,
                               options_.max_metadata_bytes);
    // SO_REUSEPORT only beside listeners of the service addresses (a more
    // specific bind wins a connection); otherwise a second server on the
    // port fails to bind instead of sharing it.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, reuse_port_ ? 1 : 0);
    if (freebind) builder.SetOption(std::make_unique<FreebindOption>());
    builder.RegisterCallbackGenericService(l.service.get());
    l.server = builder.BuildAndStart();
    if (!l.server || bound == 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot listen on ", host, ":", port, " for gRPC"));
    }
    if (port_ == 0) port_ = static_cast<uint16_t>(bound);
    return l;
  }

  const std::unique_ptr<Shared> shared_;
  const GrpcServerOptions options_;
  const std::shared_ptr<grpc::ServerCredentials> credentials_;
  absl::Mutex mu_;
  // Set once by Open (the main listener's port).
  uint16_t port_ = 0;
  bool reuse_port_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<Listener> listeners_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Draining>> draining_ ABSL_GUARDED_BY(mu_);
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
      options.max_metadata_bytes < 1 || options.address.empty() ||
      options.service_addresses.size() > 1024) {
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
  auto impl = std::make_unique<GrpcServerImpl>(
      std::make_unique<Shared>(std::move(router), pipeline, options), options,
      std::move(credentials));
  if (absl::Status s = impl->Open(); !s.ok()) return s;
  return std::unique_ptr<GrpcServer>(std::move(impl));
}

}  // namespace baton::framework

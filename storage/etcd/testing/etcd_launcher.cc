#include "storage/etcd/testing/etcd_launcher.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "spdlog/spdlog.h"
#include "storage/etcd/etcd_client.h"
#include "storage/etcd/etcd_store.h"

namespace baton::storage::testing {
namespace {

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// Ports the kernel hands out for 127.0.0.1:0; the sockets stay open until
// all are picked so the ports differ.
absl::StatusOr<std::vector<int>> FreePorts(int n) {
  std::vector<int> fds;
  std::vector<int> ports;
  absl::Status status;
  for (int i = 0; i < n; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      status = Errno("socket");
      break;
    }
    fds.push_back(fd);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      status = Errno("bind 127.0.0.1:0");
      break;
    }
    ports.push_back(ntohs(addr.sin_port));
  }
  for (int fd : fds) ::close(fd);
  if (!status.ok()) return status;
  return ports;
}

std::string Tail(const std::string& path, size_t bytes) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buf;
  buf << in.rdbuf();
  std::string s = buf.str();
  if (s.size() > bytes) s = s.substr(s.size() - bytes);
  return s;
}

bool Executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

}  // namespace

absl::StatusOr<std::string> EtcdCluster::FindBinary(const std::string& preferred) {
  if (!preferred.empty()) {
    if (Executable(preferred)) return preferred;
    return absl::NotFoundError(absl::StrCat("etcd binary \"", preferred, "\" not executable"));
  }
  if (const char* env = std::getenv("BATON_ETCD_BINARY"); env != nullptr && *env) {
    if (Executable(env)) return std::string(env);
    return absl::NotFoundError(absl::StrCat("BATON_ETCD_BINARY=", env, " not executable"));
  }
  if (const char* path = std::getenv("PATH")) {
    for (absl::string_view dir : absl::StrSplit(path, ':')) {
      std::string candidate = absl::StrCat(dir, "/etcd");
      if (!dir.empty() && Executable(candidate)) return candidate;
    }
  }
  if (Executable("/usr/bin/etcd")) return std::string("/usr/bin/etcd");
  return absl::NotFoundError(
      "no etcd binary (install etcd-server, or set BATON_ETCD_BINARY)");
}

absl::StatusOr<std::unique_ptr<EtcdCluster>> EtcdCluster::Start(EtcdLaunchOptions options) {
  if (options.members < 1) return absl::InvalidArgumentError("members must be >= 1");
  absl::StatusOr<std::string> binary = FindBinary(options.binary);
  if (!binary.ok()) return binary.status();

  std::unique_ptr<EtcdCluster> c(new EtcdCluster());
  c->options_ = options;
  c->binary_ = *binary;
  std::string root = options.temp_root;
  if (root.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    root = (tmp != nullptr && *tmp) ? tmp : "/tmp";
  }
  std::string tmpl = absl::StrCat(root, "/baton-etcd-XXXXXX");
  if (::mkdtemp(tmpl.data()) == nullptr) return Errno("mkdtemp " + tmpl);
  c->dir_ = tmpl;
  c->token_ = std::filesystem::path(tmpl).filename().string();

  absl::StatusOr<std::vector<int>> ports = FreePorts(2 * options.members);
  if (!ports.ok()) return ports.status();
  std::vector<std::string> peers;
  for (int i = 0; i < options.members; ++i) {
    Member m;
    m.name = absl::StrCat("m", i);
    m.client_port = (*ports)[2 * i];
    m.peer_port = (*ports)[2 * i + 1];
    m.data_dir = absl::StrCat(c->dir_, "/", m.name);
    peers.push_back(absl::StrCat(m.name, "=http://127.0.0.1:", m.peer_port));
    c->members_.push_back(m);
  }
  c->initial_cluster_ = absl::StrJoin(peers, ",");
  for (int i = 0; i < options.members; ++i) {
    absl::Status s = c->Spawn(i, /*initial=*/true);
    if (!s.ok()) return s;
  }
  for (int i = 0; i < options.members; ++i) {
    absl::Status s = c->WaitReady(i, options.start_timeout);
    if (!s.ok()) return s;
  }
  return c;
}

absl::Status EtcdCluster::Spawn(int i, bool initial) {
  Member& m = members_[static_cast<size_t>(i)];
  const std::string scheme = options_.tls_cert_file.empty() ? "http" : "https";
  std::vector<std::string> args = {
      binary_,
      "--name", m.name,
      "--data-dir", m.data_dir,
      "--listen-client-urls", absl::StrCat(scheme, "://127.0.0.1:", m.client_port),
      "--advertise-client-urls", absl::StrCat(scheme, "://127.0.0.1:", m.client_port),
      "--listen-peer-urls", absl::StrCat("http://127.0.0.1:", m.peer_port),
      "--initial-advertise-peer-urls", absl::StrCat("http://127.0.0.1:", m.peer_port),
      "--initial-cluster", initial_cluster_,
      "--initial-cluster-token", token_,
      "--initial-cluster-state", "new",
      "--heartbeat-interval", std::to_string(options_.heartbeat_ms),
      "--election-timeout", std::to_string(options_.election_ms),
      "--logger", "zap",
      "--log-level", "warn",
  };
  if (!options_.tls_cert_file.empty()) {
    args.insert(args.end(), {"--cert-file", options_.tls_cert_file, "--key-file",
                             options_.tls_key_file});
    if (!options_.tls_client_ca_file.empty()) {
      args.insert(args.end(),
                  {"--client-cert-auth", "--trusted-ca-file", options_.tls_client_ca_file});
    }
  }
  for (const std::string& a : options_.extra_args) args.push_back(a);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  const std::string log = LogPath(i);
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("open " + log);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fd);
    return Errno("fork");
  }
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(fd);
  m.pid = pid;
  spdlog::debug("etcd launcher: {} pid {} client port {} ({})", m.name, pid, m.client_port,
                initial ? "new" : "restart");
  return absl::OkStatus();
}

EtcdCluster::~EtcdCluster() {
  for (Member& m : members_) {
    if (m.pid > 0) {
      ::kill(m.pid, SIGKILL);
      ::waitpid(m.pid, nullptr, 0);
      m.pid = -1;
    }
  }
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

std::vector<std::string> EtcdCluster::ClientEndpoints() const {
  std::vector<std::string> out;
  for (int i = 0; i < size(); ++i) out.push_back(ClientEndpoint(i));
  return out;
}

std::string EtcdCluster::ClientEndpoint(int member) const {
  return absl::StrCat("127.0.0.1:", members_[static_cast<size_t>(member)].client_port);
}

pid_t EtcdCluster::Pid(int member) const { return members_[static_cast<size_t>(member)].pid; }

std::string EtcdCluster::LogPath(int member) const {
  return absl::StrCat(dir_, "/", members_[static_cast<size_t>(member)].name, ".log");
}

absl::Status EtcdCluster::Kill(int member) {
  Member& m = members_[static_cast<size_t>(member)];
  if (m.pid <= 0) return absl::FailedPreconditionError("member not running");
  if (::kill(m.pid, SIGKILL) != 0) return Errno("kill");
  ::waitpid(m.pid, nullptr, 0);
  m.pid = -1;
  return absl::OkStatus();
}

absl::Status EtcdCluster::Pause(int member) {
  Member& m = members_[static_cast<size_t>(member)];
  if (m.pid <= 0 || ::kill(m.pid, SIGSTOP) != 0) return Errno("SIGSTOP");
  // The signal only asks: on a loaded machine the member went on answering
  // a call sent right after kill() returned. Wait until it has stopped.
  int wstatus = 0;
  pid_t r;
  do {
    r = ::waitpid(m.pid, &wstatus, WUNTRACED);
  } while (r < 0 && errno == EINTR);
  if (r != m.pid) return Errno("waitpid after SIGSTOP");
  if (!WIFSTOPPED(wstatus)) {
    m.pid = -1;  // reaped
    return absl::InternalError(absl::StrCat("etcd member ", member, " exited instead of stopping"));
  }
  return absl::OkStatus();
}

absl::Status EtcdCluster::Resume(int member) {
  Member& m = members_[static_cast<size_t>(member)];
  if (m.pid <= 0 || ::kill(m.pid, SIGCONT) != 0) return Errno("SIGCONT");
  return absl::OkStatus();
}

absl::Status EtcdCluster::Restart(int member) {
  if (members_[static_cast<size_t>(member)].pid > 0) {
    return absl::FailedPreconditionError("member still running");
  }
  return Spawn(member, /*initial=*/false);
}

EtcdOptions EtcdCluster::ClientOptions(int member) const {
  EtcdOptions options;
  options.endpoints = {ClientEndpoint(member)};
  options.key_prefix = "baton-launcher/";
  options.dial_timeout = std::chrono::milliseconds(200);
  options.request_timeout = std::chrono::milliseconds(1000);
  // The launcher only asks for status: no probe, compaction or counting.
  options.health_probe_interval = std::chrono::milliseconds(0);
  options.compaction_interval = std::chrono::seconds(0);
  options.statistics_interval = std::chrono::seconds(0);
  if (!options_.tls_cert_file.empty()) {
    options.tls_ca_file = options_.tls_ca_file;
    options.tls_cert_file = options_.tls_client_cert_file;
    options.tls_key_file = options_.tls_client_key_file;
    if (options.tls_ca_file.empty()) options.endpoints[0] = "https://" + options.endpoints[0];
  }
  return options;
}

absl::Status EtcdCluster::WaitReady(int member, std::chrono::milliseconds timeout) {
  EtcdOptions options = ClientOptions(member);
  absl::StatusOr<std::unique_ptr<StableStore>> store = OpenEtcdStore(options);
  if (!store.ok()) return store.status();
  // Test support, not a library path: reading the clock here directly is
  // fine.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  absl::Status last;
  for (;;) {
    last = (*store)->Ping();
    if (last.ok()) return last;
    const Member& m = members_[static_cast<size_t>(member)];
    int wstatus = 0;
    if (m.pid > 0 && ::waitpid(m.pid, &wstatus, WNOHANG) == m.pid) {
      members_[static_cast<size_t>(member)].pid = -1;
      return absl::InternalError(absl::StrCat("etcd ", m.name, " exited (status ", wstatus,
                                              "); log tail:\n", Tail(LogPath(member), 2000)));
    }
    if (std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "etcd ", members_[static_cast<size_t>(member)].name, " not ready within ",
      timeout.count(), " ms: ", last.message(), "; log tail:\n",
      Tail(LogPath(member), 2000)));
}

absl::StatusOr<int> EtcdCluster::Leader(int member) {
  // Ask each running member its own id (header.member_id) and `member` the
  // leader's id.
  std::vector<uint64_t> ids(members_.size(), 0);
  uint64_t leader = 0;
  for (int i = 0; i < size(); ++i) {
    if (members_[static_cast<size_t>(i)].pid <= 0) continue;
    EtcdOptions options = ClientOptions(i);
    options.dial_timeout = std::chrono::milliseconds(500);
    options.request_timeout = std::chrono::milliseconds(2000);
    absl::StatusOr<std::unique_ptr<etcd_internal::Client>> client =
        etcd_internal::Client::Create(options);
    if (!client.ok()) return client.status();
    etcdserverpb::StatusResponse resp;
    absl::Status s = (*client)->Call(
        etcd_internal::CallKind::kRead, [&](etcd_internal::Endpoint& ep, grpc::ClientContext& ctx) {
          return ep.maintenance->Status(&ctx, etcdserverpb::StatusRequest(), &resp);
        });
    if (!s.ok()) return s;
    ids[static_cast<size_t>(i)] = resp.header().member_id();
    if (i == member) leader = resp.leader();
  }
  for (int i = 0; i < size(); ++i) {
    if (leader != 0 && ids[static_cast<size_t>(i)] == leader) return i;
  }
  return absl::NotFoundError("no leader among the running members");
}

absl::StatusOr<std::string> EtcdCluster::Etcdctl(int member,
                                                 const std::vector<std::string>& args) {
  std::string ctl = (std::filesystem::path(binary_).parent_path() / "etcdctl").string();
  if (!Executable(ctl)) ctl = "etcdctl";
  std::string cmd = absl::StrCat("ETCDCTL_API=3 '", ctl, "' --endpoints=",
                                 ClientEndpoint(member));
  for (const std::string& a : args) absl::StrAppend(&cmd, " '", a, "'");
  absl::StrAppend(&cmd, " 2>&1");
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return Errno("popen etcdctl");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = ::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int rc = ::pclose(p);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("etcdctl ", absl::StrJoin(args, " "),
                                            " failed (", rc, "): ", out));
  }
  return out;
}

}  // namespace baton::storage::testing

// Starts throw-away etcd processes on loopback for tests and benchmarks: one
// member or a cluster of several, on ephemeral ports, with a temporary data
// directory. Every process is killed by its PID when the EtcdCluster is
// destroyed, and also when the process that started it dies (the child gets
// PR_SET_PDEATHSIG = SIGKILL), so a crashed test leaves no etcd behind.
//
// Not for production: data lives in a temp dir that is removed at the end.
// Thread-compatible: one thread drives an EtcdCluster. PR_SET_PDEATHSIG
// fires when the *thread* that forked a member exits: start and restart
// members from a thread that outlives them (the test's main thread).
#ifndef BATON_STORAGE_ETCD_TESTING_ETCD_LAUNCHER_H_
#define BATON_STORAGE_ETCD_TESTING_ETCD_LAUNCHER_H_

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/etcd/etcd_store.h"

namespace baton::storage::testing {

struct EtcdLaunchOptions {
  // Members of the cluster. Default: 1.
  int members = 1;
  // The etcd binary; empty: $BATON_ETCD_BINARY, then `etcd` on $PATH, then
  // /usr/bin/etcd. Default: empty.
  std::string binary;
  // Parent of the temporary data directory; empty: $TMPDIR or /tmp.
  std::string temp_root;
  // Raft timing, short for quick elections on loopback (etcd's defaults are
  // 100 ms / 1000 ms). Default: 50 ms / 500 ms.
  int heartbeat_ms = 50;
  int election_ms = 500;
  // How long Start() waits for every member to see a leader. Default: 30 s.
  std::chrono::milliseconds start_timeout{30000};
  // More etcd flags, e.g. "--auth-token-ttl=1".
  std::vector<std::string> extra_args;

  // TLS on the client port (https://) when tls_cert_file is set: the
  // server's certificate and key (PEM, valid for IP 127.0.0.1) and the CA
  // that signed it, which the launcher's own readiness checks trust. With
  // tls_client_ca_file, etcd also requires a client certificate signed by it
  // (--client-cert-auth); the launcher then presents tls_client_cert_file /
  // tls_client_key_file. Peers talk plain HTTP on loopback. Default: empty.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_ca_file;
  std::string tls_client_ca_file;
  std::string tls_client_cert_file;
  std::string tls_client_key_file;
};

class EtcdCluster {
 public:
  // The etcd binary per EtcdLaunchOptions::binary, or kNotFound.
  static absl::StatusOr<std::string> FindBinary(const std::string& preferred = "");

  // Starts the members and waits until each one has a leader.
  static absl::StatusOr<std::unique_ptr<EtcdCluster>> Start(EtcdLaunchOptions options);

  ~EtcdCluster();
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  // "127.0.0.1:port" of every member, in member order.
  std::vector<std::string> ClientEndpoints() const;
  std::string ClientEndpoint(int member) const;
  pid_t Pid(int member) const;
  int size() const { return static_cast<int>(members_.size()); }

  // SIGKILLs a member and reaps it (its data stays).
  absl::Status Kill(int member);
  // Stops (SIGSTOP) / continues (SIGCONT) a member: a paused process keeps
  // its sockets open but answers nothing. Pause returns once it has stopped.
  absl::Status Pause(int member);
  absl::Status Resume(int member);
  // Starts a killed member again on the same ports and data.
  absl::Status Restart(int member);
  // The member that is the raft leader now, as `member` sees it; kNotFound
  // when it reports none.
  absl::StatusOr<int> Leader(int member);
  // Waits until `member` reports a leader.
  absl::Status WaitReady(int member, std::chrono::milliseconds timeout);

  // Runs etcdctl (next to the etcd binary) against `member`; returns its
  // output or an error with it.
  absl::StatusOr<std::string> Etcdctl(int member, const std::vector<std::string>& args);

  // Where the members' logs are (for failure messages).
  std::string LogPath(int member) const;

 private:
  struct Member {
    std::string name;
    int client_port = 0;
    int peer_port = 0;
    std::string data_dir;
    pid_t pid = -1;
  };
  EtcdCluster() = default;
  absl::Status Spawn(int member, bool initial);
  // Options for the launcher's own connections to `member`.
  EtcdOptions ClientOptions(int member) const;

  EtcdLaunchOptions options_;
  std::string binary_;
  std::string dir_;
  std::string initial_cluster_;
  std::string token_;
  std::vector<Member> members_;
};

}  // namespace baton::storage::testing

#endif  // BATON_STORAGE_ETCD_TESTING_ETCD_LAUNCHER_H_

// baton-udp-prober: the client of the take-over lab and the fail-over benchmark. Sends one UDP
// request "<seq>" every --period-ms to the service address; a request counts as answered when its
// reply arrives within --timeout-ms. Writes one line per request, in sequence order:
//   <seq> <send time, epoch s> OK|FAIL <host>|- <rtt ms>|-
// plus "<seq> <send time> LATE|DUP <host> <rtt ms>" for late or duplicated replies -- the same
// format as the reference keepalived measurement's client, so one analysis reads both.
// Writes --steady-file (content: the host) after --steady-seconds of uninterrupted answers from one
// host; stops when --stop-file appears or after --max-seconds.
//
// Usage: baton-udp-prober --target IP --port P --log FILE [--period-ms 2] [--timeout-ms 20]
//                         [--max-seconds 120] [--steady-seconds 2] [--steady-file F] [--stop-file F]
// Exit status: 0 when stopped, 2 on bad arguments, 1 on socket/file errors.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace {

// The only clock read of this tool. Wall clock, so that the log lines up with `ip -ts monitor`.
double Now() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

int Usage() {
  std::fprintf(stderr,
               "usage: baton-udp-prober --target IP --port P --log FILE [--period-ms 2] "
               "[--timeout-ms 20] [--max-seconds 120] [--steady-seconds 2] [--steady-file F] "
               "[--stop-file F]\n");
  return 2;
}

struct Done {
  bool ok;
  std::string host;
  double rtt;
};

}  // namespace

int main(int argc, char** argv) {
  std::string target, log_path, steady_file, stop_file;
  int port = 0;
  double period = 0.002, timeout = 0.020, max_seconds = 120, steady_seconds = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string f = argv[i];
    const char* v = argv[i + 1];
    if (f == "--target") target = v;
    else if (f == "--port") port = std::atoi(v);
    else if (f == "--log") log_path = v;
    else if (f == "--period-ms") period = std::atof(v) / 1e3;
    else if (f == "--timeout-ms") timeout = std::atof(v) / 1e3;
    else if (f == "--max-seconds") max_seconds = std::atof(v);
    else if (f == "--steady-seconds") steady_seconds = std::atof(v);
    else if (f == "--steady-file") steady_file = v;
    else if (f == "--stop-file") stop_file = v;
    else return Usage();
  }
  // The target: an IPv4 or an IPv6 address.
  sockaddr_storage dst_storage{};
  socklen_t dst_len = 0;
  auto* dst4 = reinterpret_cast<sockaddr_in*>(&dst_storage);
  auto* dst6 = reinterpret_cast<sockaddr_in6*>(&dst_storage);
  if (inet_pton(AF_INET, target.c_str(), &dst4->sin_addr) == 1) {
    dst4->sin_family = AF_INET;
    dst4->sin_port = htons(static_cast<uint16_t>(port));
    dst_len = sizeof(*dst4);
  } else if (inet_pton(AF_INET6, target.c_str(), &dst6->sin6_addr) == 1) {
    dst6->sin6_family = AF_INET6;
    dst6->sin6_port = htons(static_cast<uint16_t>(port));
    dst_len = sizeof(*dst6);
  }
  if (argc % 2 == 0 || log_path.empty() || port <= 0 || port > 65535 || period <= 0 ||
      timeout <= 0 || dst_len == 0) {
    return Usage();
  }
  sockaddr* dst = reinterpret_cast<sockaddr*>(&dst_storage);
  int fd = socket(dst->sa_family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    std::perror("socket");
    return 1;
  }
  FILE* log = std::fopen(log_path.c_str(), "w");
  if (log == nullptr) {
    std::perror("fopen log");
    return 1;
  }
  setvbuf(log, nullptr, _IOLBF, 0);

  std::vector<double> send_t;
  std::deque<std::pair<long, double>> pending;  // seq, send time; oldest first
  std::set<long> pending_set;
  std::map<long, Done> done;
  std::set<long> answered;
  long next_log = 0;
  double streak_start = -1;
  std::string streak_host;
  bool steady_written = false;
  const double start = Now();
  const double end = start + max_seconds;
  double next_send = start, next_stop_check = start;
  char buf[512];

  while (true) {
    double now = Now();
    if (now >= end) break;
    if (now >= next_stop_check) {
      struct stat st;
      if (!stop_file.empty() && stat(stop_file.c_str(), &st) == 0) break;
      next_stop_check = now + 0.05;
    }
    if (now >= next_send) {
      long seq = static_cast<long>(send_t.size());
      send_t.push_back(now);
      pending.emplace_back(seq, now);
      pending_set.insert(seq);
      int len = std::snprintf(buf, sizeof(buf), "%ld", seq);
      // A send error (no route, no neighbour) counts as FAIL through the timeout below.
      (void)sendto(fd, buf, static_cast<size_t>(len), 0, dst, dst_len);
      next_send += period;
      if (next_send < now) next_send = now + period;  // no burst after a stall
    }
    while (true) {  // drain replies
      ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        continue;  // e.g. ECONNREFUSED from an ICMP error: not a reply
      }
      double t = Now();
      buf[n] = '\0';
      char host[256];
      long s = -1;
      if (std::sscanf(buf, "%ld %255s", &s, host) != 2) continue;
      if (s < 0 || s >= static_cast<long>(send_t.size())) continue;
      double rtt = t - send_t[static_cast<size_t>(s)];
      if (pending_set.count(s) != 0) {
        pending_set.erase(s);
        for (auto it = pending.begin(); it != pending.end(); ++it) {
          if (it->first == s) {
            pending.erase(it);
            break;
          }
        }
        if (rtt <= timeout) {
          done[s] = Done{true, host, rtt};
          answered.insert(s);
        } else {
          done[s] = Done{false, "-", 0};
          std::fprintf(log, "%ld %.6f LATE %s %.3f\n", s, send_t[static_cast<size_t>(s)], host,
                       rtt * 1e3);
        }
      } else {
        std::fprintf(log, "%ld %.6f %s %s %.3f\n", s, send_t[static_cast<size_t>(s)],
                     answered.count(s) != 0 ? "DUP" : "LATE", host, rtt * 1e3);
      }
    }
    now = Now();
    while (!pending.empty() && now - pending.front().second > timeout) {  // expire
      done[pending.front().first] = Done{false, "-", 0};
      pending_set.erase(pending.front().first);
      pending.pop_front();
    }
    for (auto it = done.find(next_log); it != done.end(); it = done.find(next_log)) {
      const Done& d = it->second;
      double ts = send_t[static_cast<size_t>(next_log)];
      if (d.ok) {
        std::fprintf(log, "%ld %.6f OK %s %.3f\n", next_log, ts, d.host.c_str(), d.rtt * 1e3);
        if (streak_start < 0 || d.host != streak_host) {
          streak_start = ts;
          streak_host = d.host;
        } else if (!steady_written && !steady_file.empty() && ts - streak_start >= steady_seconds) {
          std::string tmp = steady_file + ".tmp";
          if (FILE* f = std::fopen(tmp.c_str(), "w")) {
            std::fprintf(f, "%s\n", d.host.c_str());
            std::fclose(f);
            std::rename(tmp.c_str(), steady_file.c_str());
          }
          steady_written = true;
        }
      } else {
        std::fprintf(log, "%ld %.6f FAIL - -\n", next_log, ts);
        streak_start = -1;
      }
      done.erase(it);
      ++next_log;
    }
    double wake = next_send;
    if (!pending.empty() && pending.front().second + timeout < wake) wake = pending.front().second + timeout;
    double delay = wake - Now();
    if (delay > 0) {
      pollfd pfd{fd, POLLIN, 0};
      timespec ts{static_cast<time_t>(delay), static_cast<long>((delay - static_cast<time_t>(delay)) * 1e9)};
      ppoll(&pfd, 1, &ts, nullptr);
    }
  }
  std::fclose(log);
  close(fd);
  return 0;
}

// baton-udp-responder: the stand-in service of the take-over lab and the fail-over benchmark.
// Answers every UDP request "<seq> ..." with "<seq> <name>" from the address the request was sent
// to (IP_PKTINFO), so that a reply to the service address comes from the service address and the
// client can tell which host answered. Exits by itself after --max-seconds (bounded life: a lab
// that is torn down badly never leaves it running for long).
//
// Usage: baton-udp-responder --name h1 --port 7777 [--max-seconds 600] [--ipv6]
// (--ipv6: also answer on IPv6, e.g. for an IPv6 service address in a pool.)
// Exit status: 0 after max-seconds, 2 on bad arguments, 1 on socket errors.
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

// The only clock read of this tool: CLOCK_MONOTONIC bounds its life.
double MonotonicSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

int Usage() {
  std::fprintf(stderr,
               "usage: baton-udp-responder --name NAME --port PORT [--max-seconds S] [--ipv6]\n");
  return 2;
}

// Answers one request waiting on `fd` (IPv4 or IPv6), from the address it was sent to.
void ServeOne(int fd, bool v6, const std::string& name) {
  char buf[512];
  char reply[600];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in6_pktinfo))];
  sockaddr_storage from{};
  iovec iov{buf, sizeof(buf) - 1};
  msghdr msg{};
  msg.msg_name = &from;
  msg.msg_namelen = sizeof(from);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
  if (n <= 0) return;
  buf[n] = '\0';
  in_pktinfo info4{};
  in6_pktinfo info6{};
  bool have_dst = false;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (!v6 && c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      std::memcpy(&info4, CMSG_DATA(c), sizeof(info4));
      info4.ipi_spec_dst = info4.ipi_addr;
      info4.ipi_ifindex = 0;
      have_dst = true;
    } else if (v6 && c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      std::memcpy(&info6, CMSG_DATA(c), sizeof(info6));
      have_dst = true;
    }
  }
  size_t tok = std::strcspn(buf, " \n");
  if (tok == 0) return;
  int len = std::snprintf(reply, sizeof(reply), "%.*s %s", static_cast<int>(tok), buf, name.c_str());
  if (len <= 0) return;
  iovec out_iov{reply, static_cast<size_t>(len)};
  msghdr out{};
  out.msg_name = &from;
  out.msg_namelen = msg.msg_namelen;
  out.msg_iov = &out_iov;
  out.msg_iovlen = 1;
  alignas(cmsghdr) char out_control[CMSG_SPACE(sizeof(in6_pktinfo))] = {};
  if (have_dst) {
    out.msg_control = out_control;
    cmsghdr* c = reinterpret_cast<cmsghdr*>(out_control);
    if (v6) {
      out.msg_controllen = CMSG_SPACE(sizeof(in6_pktinfo));
      c->cmsg_level = IPPROTO_IPV6;
      c->cmsg_type = IPV6_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
      std::memcpy(CMSG_DATA(c), &info6, sizeof(info6));
    } else {
      out.msg_controllen = CMSG_SPACE(sizeof(in_pktinfo));
      c->cmsg_level = IPPROTO_IP;
      c->cmsg_type = IP_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
      std::memcpy(CMSG_DATA(c), &info4, sizeof(info4));
    }
  }
  // A send error (e.g. the address just went away) is what the client measures; ignore it.
  (void)sendmsg(fd, &out, MSG_DONTWAIT);
}

// A UDP socket on `port` of every address of one family, with the destination of each request
// reported (IP_PKTINFO / IPV6_PKTINFO). -1 on error (printed).
int Listen(int port, bool v6) {
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) {
    std::perror("socket");
    return -1;
  }
  int one = 1;
  sockaddr_storage addr{};
  socklen_t len = 0;
  if (v6) {
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
    auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    a->sin6_addr = in6addr_any;
    len = sizeof(*a);
  } else {
    setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
    auto* a = reinterpret_cast<sockaddr_in*>(&addr);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    a->sin_addr.s_addr = htonl(INADDR_ANY);
    len = sizeof(*a);
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    std::perror(v6 ? "bind (IPv6)" : "bind");
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  std::string name;
  int port = 0;
  double max_seconds = 600;
  bool ipv6 = false;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--ipv6") {
      ipv6 = true;
      continue;
    }
    if (i + 1 >= argc) return Usage();
    if (flag == "--name") {
      name = argv[++i];
    } else if (flag == "--port") {
      port = std::atoi(argv[++i]);
    } else if (flag == "--max-seconds") {
      max_seconds = std::atof(argv[++i]);
    } else {
      return Usage();
    }
  }
  if (name.empty() || port <= 0 || port > 65535 || max_seconds <= 0) return Usage();

  pollfd fds[2] = {{Listen(port, false), POLLIN, 0}, {-1, POLLIN, 0}};
  if (fds[0].fd < 0) return 1;
  if (ipv6) {
    fds[1].fd = Listen(port, true);
    if (fds[1].fd < 0) return 1;
  }
  const nfds_t nfds = ipv6 ? 2 : 1;
  const double end = MonotonicSeconds() + max_seconds;
  while (MonotonicSeconds() < end) {
    if (poll(fds, nfds, 500) <= 0) continue;
    for (nfds_t i = 0; i < nfds; ++i) {
      if (fds[i].revents & POLLIN) ServeOne(fds[i].fd, i == 1, name);
    }
  }
  for (nfds_t i = 0; i < nfds; ++i) close(fds[i].fd);
  return 0;
}

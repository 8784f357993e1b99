// baton-udp-responder: the stand-in service of the take-over lab and the fail-over benchmark.
// Answers every UDP request "<seq> ..." with "<seq> <name>" from the address the request was sent
// to (IP_PKTINFO), so that a reply to the service address comes from the service address and the
// client can tell which host answered. Exits by itself after --max-seconds (bounded life: a lab
// that is torn down badly never leaves it running for long).
//
// Usage: baton-udp-responder --name h1 --port 7777 [--max-seconds 600]
// Exit status: 0 after max-seconds, 2 on bad arguments, 1 on socket errors.
#include <netinet/in.h>
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
  std::fprintf(stderr, "usage: baton-udp-responder --name NAME --port PORT [--max-seconds S]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string name;
  int port = 0;
  double max_seconds = 600;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--name") {
      name = argv[i + 1];
    } else if (flag == "--port") {
      port = std::atoi(argv[i + 1]);
    } else if (flag == "--max-seconds") {
      max_seconds = std::atof(argv[i + 1]);
    } else {
      return Usage();
    }
  }
  if (argc % 2 == 0 || name.empty() || port <= 0 || port > 65535 || max_seconds <= 0) return Usage();

  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) {
    std::perror("socket");
    return 1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::perror("bind");
    return 1;
  }
  const double end = MonotonicSeconds() + max_seconds;
  char buf[512];
  char reply[600];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in_pktinfo))];
  while (MonotonicSeconds() < end) {
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, 500) <= 0) continue;
    sockaddr_in from{};
    iovec iov{buf, sizeof(buf) - 1};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof(from);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n <= 0) continue;
    buf[n] = '\0';
    in_addr dst{};
    bool have_dst = false;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        in_pktinfo info;
        std::memcpy(&info, CMSG_DATA(c), sizeof(info));
        dst = info.ipi_addr;
        have_dst = true;
      }
    }
    size_t tok = std::strcspn(buf, " \n");
    if (tok == 0) continue;
    int len = std::snprintf(reply, sizeof(reply), "%.*s %s", static_cast<int>(tok), buf, name.c_str());
    if (len <= 0) continue;
    iovec out_iov{reply, static_cast<size_t>(len)};
    msghdr out{};
    out.msg_name = &from;
    out.msg_namelen = sizeof(from);
    out.msg_iov = &out_iov;
    out.msg_iovlen = 1;
    alignas(cmsghdr) char out_control[CMSG_SPACE(sizeof(in_pktinfo))] = {};
    if (have_dst) {
      out.msg_control = out_control;
      out.msg_controllen = sizeof(out_control);
      cmsghdr* c = CMSG_FIRSTHDR(&out);
      c->cmsg_level = IPPROTO_IP;
      c->cmsg_type = IP_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
      in_pktinfo info{};
      info.ipi_spec_dst = dst;
      std::memcpy(CMSG_DATA(c), &info, sizeof(info));
    }
    // A send error (e.g. the address just went away) is what the client measures; ignore it.
    (void)sendmsg(fd, &out, MSG_DONTWAIT);
  }
  close(fd);
  return 0;
}

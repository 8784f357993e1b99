#include "takeover/drivers/address_driver.h"

#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <map>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/errno_status.h"
#include "base/strings.h"
#include "spdlog/spdlog.h"

namespace baton::takeover {
namespace {

namespace asio = boost::asio;

constexpr size_t kMaxLabelChars = IFNAMSIZ - 1;  // 15

// A libnl return code (negative NLE_*) that did not come with a kernel errno
// (socket-level failures, out of memory, malformed replies).
absl::Status LibnlStatus(int nle, std::string_view what) {
  int code = nle < 0 ? -nle : nle;
  std::string msg = absl::StrCat(std::string(what), ": ", nl_geterror(code));
  switch (code) {
    case NLE_NODEV:
    case NLE_OBJ_NOTFOUND:
      return absl::NotFoundError(msg);
    case NLE_EXIST:
      return absl::AlreadyExistsError(msg);
    case NLE_NOADDR:
      return absl::NotFoundError(msg);
    case NLE_PERM:
      return absl::PermissionDeniedError(msg);
    case NLE_INVAL:
    case NLE_RANGE:
      return absl::InvalidArgumentError(msg);
    case NLE_AGAIN:
    case NLE_BUSY:
    case NLE_NOMEM:
    case NLE_INTR:
    case NLE_BAD_SOCK:
    case NLE_DUMP_INTR:
      return absl::UnavailableError(msg);
    default:
      return absl::InternalError(msg);
  }
}

struct NlSockDeleter {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
struct NlMsgDeleter {
  void operator()(nl_msg* m) const { nlmsg_free(m); }
};
struct RtnlAddrDeleter {
  void operator()(rtnl_addr* a) const { rtnl_addr_put(a); }
};
struct NlAddrDeleter {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
struct NlCbDeleter {
  void operator()(nl_cb* c) const { nl_cb_put(c); }
};

// One address as the kernel dumps it.
struct KernelAddress {
  int ifindex = 0;
  IpPrefix prefix;
  std::string label;
  uint8_t proto = 0;
  uint32_t flags = 0;
  uint32_t valid = 0;      // seconds; 0xFFFFFFFF = forever
  uint32_t preferred = 0;
};

std::chrono::seconds Lifetime(uint32_t v) {
  return v == 0xFFFFFFFFu ? std::chrono::seconds::max() : std::chrono::seconds(v);
}

class AddressDriverImpl final : public AddressDriver {
 public:
  explicit AddressDriverImpl(AddressDriverOptions options) : options_(std::move(options)) {}

  absl::Status Init() {
    sock_.reset(nl_socket_alloc());
    if (!sock_) return absl::UnavailableError("address driver: nl_socket_alloc failed");
    if (int err = nl_connect(sock_.get(), NETLINK_ROUTE); err < 0) {
      return LibnlStatus(err, "address driver: connecting the rtnetlink socket");
    }
    return absl::OkStatus();
  }

  absl::Status Add(const IpPrefix& prefix, std::string_view ifname, std::string_view label,
                   std::chrono::seconds valid_lft, std::chrono::seconds preferred_lft) override {
    if (absl::Status s = CheckLifetimes(valid_lft, preferred_lft); !s.ok()) return s;
    std::string full_label;
    if (prefix.is_v4()) {
      full_label = label.empty() ? DefaultLabel(ifname) : std::string(label);
      if (full_label.size() > kMaxLabelChars || full_label.rfind(std::string(ifname), 0) != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "address driver: label '", full_label, "' must start with the interface name '",
            std::string(ifname), "' and have at most 15 characters"));
      }
    }
    absl::StatusOr<int> ifindex = IfIndex(ifname);
    if (!ifindex.ok()) return ifindex.status();
    absl::Status s = SendAddr(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, prefix, *ifindex,
                              full_label, valid_lft, preferred_lft);
    if (!s.ok()) {
      return Annotate(s, absl::StrCat("adding ", prefix.ToString(), " to ", std::string(ifname)));
    }
    spdlog::info("address driver: added {} on {} (label {}, valid_lft {} s, preferred_lft {} s)",
                 prefix.ToString(), ifname, full_label.empty() ? "-" : full_label,
                 valid_lft.count(), preferred_lft.count());
    return absl::OkStatus();
  }

  absl::Status Remove(const IpPrefix& prefix, std::string_view ifname) override {
    absl::StatusOr<int> ifindex = IfIndex(ifname);
    if (!ifindex.ok()) return ifindex.status();
    absl::Status s = SendAddr(RTM_DELADDR, 0, prefix, *ifindex, "", std::chrono::seconds(0),
                              std::chrono::seconds(0));
    if (!s.ok()) {
      return Annotate(s, absl::StrCat("removing ", prefix.ToString(), " from ",
                                      std::string(ifname)));
    }
    spdlog::info("address driver: removed {} from {}", prefix.ToString(), ifname);
    return absl::OkStatus();
  }

  absl::Status Refresh(const IpPrefix& prefix, std::string_view ifname,
                       std::chrono::seconds valid_lft,
                       std::chrono::seconds preferred_lft) override {
    if (absl::Status s = CheckLifetimes(valid_lft, preferred_lft); !s.ok()) return s;
    absl::StatusOr<int> ifindex = IfIndex(ifname);
    if (!ifindex.ok()) return ifindex.status();
    // NLM_F_REPLACE on a missing address would create it (IPv4 ignores
    // NLM_F_CREATE); a refresh must never bring back an address that expired.
    absl::StatusOr<std::optional<KernelAddress>> found = Find(prefix, *ifindex);
    if (!found.ok()) return found.status();
    if (!found->has_value()) {
      return absl::NotFoundError(absl::StrCat("address driver: refreshing ", prefix.ToString(),
                                              " on ", std::string(ifname),
                                              ": the address is not there (expired or removed)"));
    }
    absl::Status s = SendAddr(RTM_NEWADDR, NLM_F_REPLACE, prefix, *ifindex, (*found)->label,
                              valid_lft, preferred_lft);
    if (!s.ok()) {
      return Annotate(s, absl::StrCat("refreshing ", prefix.ToString(), " on ",
                                      std::string(ifname)));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<bool> Has(const IpPrefix& prefix, std::string_view ifname) override {
    absl::StatusOr<int> ifindex = IfIndex(ifname);
    if (!ifindex.ok()) return ifindex.status();
    absl::StatusOr<std::optional<KernelAddress>> found = Find(prefix, *ifindex);
    if (!found.ok()) return found.status();
    return found->has_value();
  }

  absl::StatusOr<std::vector<ManagedAddress>> List(std::string_view ifname) override {
    int only = 0;
    if (!ifname.empty()) {
      absl::StatusOr<int> ifindex = IfIndex(ifname);
      if (!ifindex.ok()) return ifindex.status();
      only = *ifindex;
    }
    absl::StatusOr<std::vector<KernelAddress>> all = DumpAll();
    if (!all.ok()) return all.status();
    std::map<int, std::string> names;
    std::vector<ManagedAddress> out;
    for (const KernelAddress& k : *all) {
      if (only != 0 && k.ifindex != only) continue;
      auto name = names.find(k.ifindex);
      if (name == names.end()) {
        name = names.emplace(k.ifindex, IfName(k.ifindex)).first;
      }
      bool ours = k.proto == options_.proto ||
                  (k.prefix.is_v4() && k.label == DefaultLabel(name->second));
      if (!ours) continue;
      ManagedAddress m;
      m.prefix = k.prefix;
      m.ifname = name->second;
      m.label = k.label;
      m.valid_lft = Lifetime(k.valid);
      m.preferred_lft = Lifetime(k.preferred);
      out.push_back(std::move(m));
    }
    return out;
  }

  absl::StatusOr<std::vector<ManagedAddress>> RemoveStale(std::string_view ifname) override {
    absl::StatusOr<std::vector<ManagedAddress>> stale = List(ifname);
    if (!stale.ok()) return stale.status();
    std::vector<ManagedAddress> removed;
    for (const ManagedAddress& m : *stale) {
      absl::Status s = Remove(m.prefix, m.ifname);
      // Gone already (expired meanwhile) is what we wanted.
      if (!s.ok() && !absl::IsNotFound(s)) return s;
      spdlog::warn("address driver: removed stale address {} from {} left by an earlier run",
                   m.prefix.ToString(), m.ifname);
      removed.push_back(m);
    }
    return removed;
  }

 private:
  static absl::Status CheckLifetimes(std::chrono::seconds valid, std::chrono::seconds preferred) {
    if (valid.count() < 1 || preferred.count() < 1 || preferred > valid ||
        valid.count() >= 0xFFFFFFFFLL) {
      return absl::InvalidArgumentError(absl::StrCat(
          "address driver: lifetimes must satisfy 1 <= preferred_lft (", preferred.count(),
          " s) <= valid_lft (", valid.count(), " s) < 2^32-1 s"));
    }
    return absl::OkStatus();
  }

  std::string DefaultLabel(std::string_view ifname) const {
    return absl::StrCat(std::string(ifname), ":", options_.label_suffix);
  }

  static absl::Status Annotate(const absl::Status& s, const std::string& what) {
    return absl::Status(s.code(), absl::StrCat("address driver: ", what, ": ", s.message()));
  }

  absl::StatusOr<int> IfIndex(std::string_view ifname) {
    if (ifname.empty() || ifname.size() > kMaxLabelChars) {
      return absl::InvalidArgumentError(
          absl::StrCat("address driver: bad interface name '", std::string(ifname), "'"));
    }
    rtnl_link* link = nullptr;
    int err = rtnl_link_get_kernel(sock_.get(), 0, std::string(ifname).c_str(), &link);
    if (err < 0) {
      if (err == -NLE_NODEV || err == -NLE_OBJ_NOTFOUND) {
        return absl::NotFoundError(
            absl::StrCat("address driver: no interface named '", std::string(ifname), "'"));
      }
      return LibnlStatus(err, absl::StrCat("address driver: looking up interface ",
                                           std::string(ifname)));
    }
    int index = rtnl_link_get_ifindex(link);
    rtnl_link_put(link);
    return index;
  }

  std::string IfName(int ifindex) {
    rtnl_link* link = nullptr;
    if (rtnl_link_get_kernel(sock_.get(), ifindex, nullptr, &link) < 0) {
      return absl::StrCat("if", ifindex);
    }
    std::string name = rtnl_link_get_name(link) ? rtnl_link_get_name(link) : "";
    rtnl_link_put(link);
    return name;
  }

  // Builds an RTM_NEWADDR / RTM_DELADDR request with rtnl_addr, adds the
  // IFA_PROTO tag (libnl 3.7 does not know it) and waits for the kernel's ack.
  absl::Status SendAddr(int type, int flags, const IpPrefix& prefix, int ifindex,
                        const std::string& label, std::chrono::seconds valid,
                        std::chrono::seconds preferred) {
    std::unique_ptr<rtnl_addr, RtnlAddrDeleter> addr(rtnl_addr_alloc());
    if (!addr) return absl::UnavailableError("address driver: out of memory");
    int family = prefix.is_v4() ? AF_INET : AF_INET6;
    std::unique_ptr<nl_addr, NlAddrDeleter> local;
    if (prefix.is_v4()) {
      auto bytes = prefix.address.to_v4().to_bytes();
      local.reset(nl_addr_build(AF_INET, bytes.data(), bytes.size()));
    } else {
      auto bytes = prefix.address.to_v6().to_bytes();
      local.reset(nl_addr_build(AF_INET6, bytes.data(), bytes.size()));
    }
    if (!local) return absl::UnavailableError("address driver: out of memory");
    nl_addr_set_prefixlen(local.get(), prefix.length);
    rtnl_addr_set_family(addr.get(), family);
    rtnl_addr_set_ifindex(addr.get(), ifindex);
    if (int err = rtnl_addr_set_local(addr.get(), local.get()); err < 0) {
      return LibnlStatus(err, "address driver: rtnl_addr_set_local");
    }
    rtnl_addr_set_prefixlen(addr.get(), prefix.length);
    nl_msg* raw = nullptr;
    int err;
    if (type == RTM_NEWADDR) {
      if (!label.empty()) rtnl_addr_set_label(addr.get(), label.c_str());
      if (!prefix.is_v4() && options_.ipv6_nodad) rtnl_addr_set_flags(addr.get(), IFA_F_NODAD);
      rtnl_addr_set_valid_lifetime(addr.get(), static_cast<uint32_t>(valid.count()));
      rtnl_addr_set_preferred_lifetime(addr.get(), static_cast<uint32_t>(preferred.count()));
      err = rtnl_addr_build_add_request(addr.get(), flags, &raw);
    } else {
      err = rtnl_addr_build_delete_request(addr.get(), flags, &raw);
    }
    if (err < 0) return LibnlStatus(err, "address driver: building the netlink request");
    std::unique_ptr<nl_msg, NlMsgDeleter> msg(raw);
    if (type == RTM_NEWADDR) {
      if (int e = nla_put_u8(msg.get(), IFA_PROTO, options_.proto); e < 0) {
        return LibnlStatus(e, "address driver: adding IFA_PROTO");
      }
    }
    return Transact(msg.get());
  }

  // Sends `msg` and waits for its ack; the kernel's errno, if any, becomes
  // the status (through NetlinkErrnoToStatus).
  absl::Status Transact(nl_msg* msg) {
    if (int err = nl_send_auto(sock_.get(), msg); err < 0) {
      return LibnlStatus(err, "sending the netlink request");
    }
    struct Result {
      bool done = false;
      int errnum = 0;
    } result;
    std::unique_ptr<nl_cb, NlCbDeleter> cb(CloneSocketCb());
    if (!cb) return absl::UnavailableError("address driver: out of memory");
    nl_cb_err(
        cb.get(), NL_CB_CUSTOM,
        [](sockaddr_nl*, nlmsgerr* e, void* arg) -> int {
          auto* r = static_cast<Result*>(arg);
          r->done = true;
          r->errnum = -e->error;
          return NL_STOP;
        },
        &result);
    nl_cb_set(
        cb.get(), NL_CB_ACK, NL_CB_CUSTOM,
        [](nl_msg*, void* arg) -> int {
          static_cast<Result*>(arg)->done = true;
          return NL_STOP;
        },
        &result);
    // Bounded: one ack (or error) per request.
    for (int i = 0; i < 16 && !result.done; ++i) {
      int err = nl_recvmsgs(sock_.get(), cb.get());
      if (err < 0 && !result.done) return LibnlStatus(err, "waiting for the netlink ack");
    }
    if (!result.done) return absl::UnavailableError("no netlink ack");
    if (result.errnum != 0) return NetlinkErrnoToStatus(result.errnum, "kernel");
    return absl::OkStatus();
  }

  // A private copy of the socket's callbacks. nl_socket_get_cb() returns a
  // new reference, which must be dropped again.
  nl_cb* CloneSocketCb() {
    nl_cb* socket_cb = nl_socket_get_cb(sock_.get());
    nl_cb* copy = nl_cb_clone(socket_cb);
    nl_cb_put(socket_cb);
    return copy;
  }

  absl::StatusOr<std::vector<KernelAddress>> DumpAll() {
    ifaddrmsg req{};
    req.ifa_family = AF_UNSPEC;
    if (int err = nl_send_simple(sock_.get(), RTM_GETADDR, NLM_F_DUMP, &req, sizeof(req));
        err < 0) {
      return LibnlStatus(err, "address driver: requesting the address dump");
    }
    struct Ctx {
      std::vector<KernelAddress> out;
      int errnum = 0;
    } ctx;
    std::unique_ptr<nl_cb, NlCbDeleter> cb(CloneSocketCb());
    if (!cb) return absl::UnavailableError("address driver: out of memory");
    nl_cb_set(
        cb.get(), NL_CB_VALID, NL_CB_CUSTOM,
        [](nl_msg* m, void* arg) -> int {
          auto* c = static_cast<Ctx*>(arg);
          nlmsghdr* h = nlmsg_hdr(m);
          if (h->nlmsg_type != RTM_NEWADDR) return NL_OK;
          auto* ifa = static_cast<ifaddrmsg*>(nlmsg_data(h));
          nlattr* tb[IFA_MAX + 1];
          if (nlmsg_parse(h, sizeof(ifaddrmsg), tb, IFA_MAX, nullptr) < 0) return NL_OK;
          // IPv4: IFA_LOCAL is the interface address (IFA_ADDRESS the peer on
          // point-to-point links). IPv6: IFA_ADDRESS unless point-to-point.
          nlattr* a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
          if (a == nullptr) return NL_OK;
          KernelAddress k;
          k.ifindex = static_cast<int>(ifa->ifa_index);
          if (ifa->ifa_family == AF_INET && nla_len(a) == 4) {
            asio::ip::address_v4::bytes_type b;
            std::memcpy(b.data(), nla_data(a), 4);
            k.prefix.address = asio::ip::address_v4(b);
          } else if (ifa->ifa_family == AF_INET6 && nla_len(a) == 16) {
            asio::ip::address_v6::bytes_type b;
            std::memcpy(b.data(), nla_data(a), 16);
            k.prefix.address = asio::ip::address_v6(b);
          } else {
            return NL_OK;
          }
          k.prefix.length = ifa->ifa_prefixlen;
          if (tb[IFA_LABEL]) k.label = nla_get_string(tb[IFA_LABEL]);
          if (tb[IFA_PROTO]) k.proto = nla_get_u8(tb[IFA_PROTO]);
          k.flags = tb[IFA_FLAGS] ? nla_get_u32(tb[IFA_FLAGS]) : ifa->ifa_flags;
          if (tb[IFA_CACHEINFO] && nla_len(tb[IFA_CACHEINFO]) >= static_cast<int>(sizeof(ifa_cacheinfo))) {
            ifa_cacheinfo ci;
            std::memcpy(&ci, nla_data(tb[IFA_CACHEINFO]), sizeof(ci));
            k.valid = ci.ifa_valid;
            k.preferred = ci.ifa_prefered;
          } else {
            k.valid = k.preferred = 0xFFFFFFFFu;
          }
          c->out.push_back(std::move(k));
          return NL_OK;
        },
        &ctx);
    int err = nl_recvmsgs(sock_.get(), cb.get());
    if (err < 0) return LibnlStatus(err, "address driver: reading the address dump");
    return std::move(ctx.out);
  }

  absl::StatusOr<std::optional<KernelAddress>> Find(const IpPrefix& prefix, int ifindex) {
    absl::StatusOr<std::vector<KernelAddress>> all = DumpAll();
    if (!all.ok()) return all.status();
    for (KernelAddress& k : *all) {
      if (k.ifindex == ifindex && k.prefix == prefix) return std::optional<KernelAddress>(k);
    }
    return std::optional<KernelAddress>();
  }

  const AddressDriverOptions options_;
  std::unique_ptr<nl_sock, NlSockDeleter> sock_;
};

}  // namespace

absl::StatusOr<IpPrefix> IpPrefix::Parse(std::string_view text) {
  std::string s(text);
  std::string addr_part = s;
  int length = -1;
  if (size_t slash = s.find('/'); slash != std::string::npos) {
    addr_part = s.substr(0, slash);
    if (!absl::SimpleAtoi(s.substr(slash + 1), &length)) {
      return absl::InvalidArgumentError(absl::StrCat("bad prefix length in '", s, "'"));
    }
  }
  boost::system::error_code ec;
  asio::ip::address a = asio::ip::make_address(addr_part, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("'", s, "' is not an IP address"));
  int max = a.is_v4() ? 32 : 128;
  if (length == -1) length = max;
  if (length < 0 || length > max) {
    return absl::InvalidArgumentError(absl::StrCat("prefix length out of range in '", s, "'"));
  }
  if (a.is_unspecified() || a.is_multicast()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", s, "' is not a usable unicast interface address"));
  }
  IpPrefix p;
  p.address = a;
  p.length = static_cast<uint8_t>(length);
  return p;
}

std::string IpPrefix::ToString() const {
  return absl::StrCat(address.to_string(), "/", length);
}

absl::Status NetlinkErrnoToStatus(int errnum, std::string_view what) {
  // base/errno_status.h converts; netlink's own meanings and hints are added here.
  const absl::Status s = baton::ErrnoToStatus(errnum, AV(what));
  switch (errnum) {
    case EEXIST:
      return absl::AlreadyExistsError(absl::StrCat(s.message(), " (the address is already there)"));
    case EADDRNOTAVAIL:  // RTM_DELADDR of an address that is not there (Abseil: kAlreadyExists)
    case ESRCH:
    case ENOENT:
      return absl::NotFoundError(absl::StrCat(s.message(), " (no such address)"));
    case ENODEV:
      return absl::NotFoundError(absl::StrCat(s.message(), " (no such interface)"));
    default:
      if (absl::IsPermissionDenied(s)) {
        return absl::PermissionDeniedError(absl::StrCat(s.message(), " (needs CAP_NET_ADMIN)"));
      }
      return s;
  }
}

absl::StatusOr<std::unique_ptr<AddressDriver>> AddressDriver::Create(
    AddressDriverOptions options) {
  if (options.proto <= 3) {
    return absl::InvalidArgumentError("address driver: proto 0-3 belong to the kernel");
  }
  if (options.label_suffix.empty()) {
    return absl::InvalidArgumentError("address driver: label_suffix must not be empty");
  }
  auto d = std::make_unique<AddressDriverImpl>(std::move(options));
  if (absl::Status s = d->Init(); !s.ok()) return s;
  return std::unique_ptr<AddressDriver>(std::move(d));
}

}  // namespace baton::takeover

#include "takeover/drivers/nft_fence.h"

#include <arpa/inet.h>
#include <nftables/libnftables.h>

#include <algorithm>
#include <cctype>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace baton::takeover {
namespace {

struct CtxDeleter {
  void operator()(nft_ctx* c) const { nft_ctx_free(c); }
};
using CtxPtr = std::unique_ptr<nft_ctx, CtxDeleter>;

absl::StatusOr<CtxPtr> NewContext() {
  CtxPtr ctx(nft_ctx_new(NFT_CTX_DEFAULT));
  if (!ctx) return absl::UnavailableError("nft_ctx_new failed");
  // Capture nft's output and errors instead of letting it print, so statuses carry them.
  if (nft_ctx_buffer_output(ctx.get()) != 0 || nft_ctx_buffer_error(ctx.get()) != 0) {
    return absl::UnavailableError("cannot buffer libnftables output");
  }
  return ctx;
}

absl::Status RunOn(nft_ctx* ctx, const std::string& commands) {
  const int rc = nft_run_cmd_from_buffer(ctx, commands.c_str());
  if (rc == 0) return absl::OkStatus();
  const char* err = nft_ctx_get_error_buffer(ctx);
  std::string text = err != nullptr ? std::string(absl::StripTrailingAsciiWhitespace(err)) : "";
  const std::string msg = absl::StrCat("nftables refused [", commands, "]: ", text);
  if (text.find("Operation not permitted") != std::string::npos) {
    return absl::PermissionDeniedError(msg);
  }
  return absl::UnavailableError(msg);
}

bool ValidTable(const std::string& t) {
  if (t.empty() || t.size() > 32) return false;
  return std::all_of(t.begin(), t.end(),
                     [](unsigned char c) { return std::isalnum(c) != 0 || c == '_'; });
}

// An IPv6 address as the 128-bit integer nft compares ND targets with ("0x" + 32 hex digits):
// the neighbour-discovery sets are keyed on the raw target field (@th,64,128), not on a typed
// address. "" if `address` is not IPv6.
std::string NdTarget(const std::string& address) {
  unsigned char b[16];
  if (inet_pton(AF_INET6, address.c_str(), b) != 1) return "";
  std::string hex = "0x";
  static const char kDigits[] = "0123456789abcdef";
  for (unsigned char c : b) {
    hex.push_back(kDigits[c >> 4]);
    hex.push_back(kDigits[c & 15]);
  }
  return hex;
}

// The element timeout for `remaining` (already reduced by the margin): whole milliseconds,
// rounded down, so the kernel never lets the address answer past the lease (it rounds further
// down to jiffies).
int64_t TimeoutMs(std::chrono::nanoseconds remaining) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(remaining).count();
}

}  // namespace

absl::Status NftFence::Run(const std::string& commands) {
  absl::StatusOr<CtxPtr> ctx = NewContext();
  if (!ctx.ok()) return ctx.status();
  return RunOn(ctx->get(), commands);
}

absl::StatusOr<std::unique_ptr<NftFence>> NftFence::Create(const Clock& clock,
                                                           NftFenceOptions options) {
  if (!ValidTable(options.table)) {
    return absl::InvalidArgumentError(
        absl::StrCat("fence table name '", options.table, "' must be 1..32 of [A-Za-z0-9_]"));
  }
  if (options.addresses.empty()) return absl::InvalidArgumentError("fence needs an address");
  std::vector<bool> is_v6;
  std::vector<std::string> v4, v6, v6nd;
  for (const std::string& a : options.addresses) {
    unsigned char buf[16];
    if (inet_pton(AF_INET, a.c_str(), buf) == 1) {
      is_v6.push_back(false);
      v4.push_back(a);
    } else if (inet_pton(AF_INET6, a.c_str(), buf) == 1) {
      is_v6.push_back(true);
      v6.push_back(a);
      v6nd.push_back(NdTarget(a));
    } else {
      return absl::InvalidArgumentError(absl::StrCat("fence address '", a, "' is not numeric"));
    }
  }
  if (options.margin < std::chrono::nanoseconds(0)) {
    return absl::InvalidArgumentError("fence margin must be >= 0");
  }
  absl::StatusOr<CtxPtr> ctx = NewContext();
  if (!ctx.ok()) return ctx.status();

  const std::string& t = options.table;
  auto elements = [](const std::vector<std::string>& v) {
    return v.empty() ? std::string() : absl::StrCat(" elements = { ", absl::StrJoin(v, ", "), " };");
  };
  // One transaction: create-if-missing + delete replaces a stale table of the same name; the
  // fresh tables start with nothing leased (an address an earlier run left is fenced at once).
  std::string cmd = absl::StrCat(
      "add table inet ", t, "\n", "delete table inet ", t, "\n",
      "add table arp ", t, "\n", "delete table arp ", t, "\n",
      "table inet ", t, " {\n",
      "  set service4 { type ipv4_addr;", elements(v4), " }\n",
      "  set leased4 { type ipv4_addr; flags timeout; }\n",
      "  set service6 { type ipv6_addr;", elements(v6), " }\n",
      "  set leased6 { type ipv6_addr; flags timeout; }\n",
      // Neighbour discovery, IPv6's ARP: keyed on the ND target field (after the ICMPv6 type,
      // code, checksum and 4 reserved bytes), which is the address whatever the packet's source
      // and destination (an NS goes to a solicited-node multicast group).
      "  set service6nd { typeof @th,64,128;", elements(v6nd), " }\n",
      "  set leased6nd { typeof @th,64,128; flags timeout; }\n",
      "  set closing4 { type ipv4_addr; }\n",
      "  set closing6 { type ipv6_addr; }\n",
      "  chain pre { type filter hook prerouting priority -300; policy accept;\n",
      // TCP is refused with a reset, not dropped: a client whose SYN or request reaches this
      // host while the address is elsewhere (or on its way there) retries at once instead of
      // waiting out a retransmission timeout. New connections on an address being released
      // (closing*) are refused the same way while its lease still runs.
      "    ip daddr @closing4 tcp flags & (syn | ack) == syn counter reject with tcp reset\n",
      "    ip6 daddr @closing6 tcp flags & (syn | ack) == syn counter reject with tcp reset\n",
      "    ip daddr @service4 ip daddr != @leased4 meta l4proto tcp counter reject with tcp reset\n",
      "    ip6 daddr @service6 ip6 daddr != @leased6 meta l4proto tcp counter reject with tcp reset\n",
      "    ip daddr @service4 ip daddr != @leased4 counter drop\n",
      "    ip6 daddr @service6 ip6 daddr != @leased6 counter drop\n",
      "    icmpv6 type nd-neighbor-solicit @th,64,128 @service6nd @th,64,128 != @leased6nd ",
      "counter drop\n  }\n",
      "  chain out { type filter hook output priority -300; policy accept;\n",
      // The resets above (the only TCP that reaches this host for an unleased address).
      "    ip saddr @service4 ip saddr != @leased4 tcp flags rst counter accept\n",
      "    ip6 saddr @service6 ip6 saddr != @leased6 tcp flags rst counter accept\n",
      "    ip saddr @service4 ip saddr != @leased4 counter drop\n",
      "    ip6 saddr @service6 ip6 saddr != @leased6 counter drop\n",
      "    icmpv6 type nd-neighbor-advert @th,64,128 @service6nd @th,64,128 != @leased6nd ",
      "counter drop\n  }\n}\n",
      "table arp ", t, " {\n",
      "  set service { type ipv4_addr;", elements(v4), " }\n",
      "  set leased { type ipv4_addr; flags timeout; }\n",
      // Requests for the address are not answered unless leased; a gratuitous request from the
      // new holder (sender = the address) still passes, so neighbour caches here stay right.
      "  chain in { type filter hook input priority 0; policy accept;\n",
      "    arp operation request arp daddr ip @service arp saddr ip != @service ",
      "arp daddr ip != @leased counter drop\n  }\n",
      "  chain out { type filter hook output priority 0; policy accept;\n",
      "    arp saddr ip @service arp saddr ip != @leased counter drop\n  }\n}\n");
  if (absl::Status s = RunOn(ctx->get(), cmd); !s.ok()) return s;
  return std::unique_ptr<NftFence>(
      new NftFence(clock, std::move(options), std::move(is_v6), ctx->release()));
}

NftFence::NftFence(const Clock& clock, NftFenceOptions options, std::vector<bool> is_v6,
                   nft_ctx* ctx)
    : clock_(clock), options_(std::move(options)), is_v6_(std::move(is_v6)), ctx_(ctx) {}

NftFence::~NftFence() {
  if (ctx_ != nullptr) nft_ctx_free(ctx_);
}

absl::Status NftFence::Exec(const std::string& commands) { return RunOn(ctx_, commands); }

absl::StatusOr<size_t> NftFence::Index(const std::string& address) const {
  for (size_t i = 0; i < options_.addresses.size(); ++i) {
    if (options_.addresses[i] == address) return i;
  }
  return absl::InvalidArgumentError(absl::StrCat("address ", address, " is not fenced"));
}

absl::Status NftFence::Lease(const std::string& address, std::chrono::nanoseconds lease_end) {
  absl::StatusOr<size_t> i = Index(address);
  if (!i.ok()) return i.status();
  const std::string& t = options_.table;
  const bool v6 = is_v6_[*i];
  // Read the clock as late as possible: the commit happens after it, so the margin only has to
  // cover the parse and the netlink round trip.
  const std::chrono::nanoseconds before = clock_.MonotonicNow();
  const int64_t ms = TimeoutMs(lease_end - before - options_.margin);
  if (ms <= 0) return Revoke(address);
  // add (no-op if present) + delete + add-with-timeout: the only way to replace a timeout that
  // nft 1.0.6 / kernels before "update element" support offer, atomically and without ENOENT
  // when the element has just expired.
  const std::string nd = v6 ? NdTarget(address) : std::string();
  auto refresh = [&](const std::string& family, const std::string& set, const std::string& key,
                     int64_t ms) {
    return absl::StrCat("add element ", family, " ", t, " ", set, " { ", key, " }\n",
                        "delete element ", family, " ", t, " ", set, " { ", key, " }\n",
                        "add element ", family, " ", t, " ", set, " { ", key, " timeout ", ms,
                        "ms }\n");
  };
  auto command = [&](int64_t ms) {
    return v6 ? absl::StrCat(refresh("inet", "leased6", address, ms),
                             refresh("inet", "leased6nd", nd, ms))
              : absl::StrCat(refresh("inet", "leased4", address, ms),
                             refresh("arp", "leased", address, ms));
  };
  if (absl::Status s = Exec(command(ms)); !s.ok()) return s;
  // The kernel counts the timeout from its commit, at the end of the call. If the call took
  // longer than the margin (the process was preempted in it), the element may outlive the lease
  // by the excess: set it again, this time also discounting what the first call took.
  const std::chrono::nanoseconds took = clock_.MonotonicNow() - before;
  if (took <= options_.margin) return absl::OkStatus();
  const int64_t again = TimeoutMs(lease_end - clock_.MonotonicNow() - options_.margin - took);
  if (again <= 0) return Revoke(address);
  return Exec(command(again));
}

absl::Status NftFence::Revoke(const std::string& address) {
  absl::StatusOr<size_t> i = Index(address);
  if (!i.ok()) return i.status();
  const std::string& t = options_.table;
  auto drop = [&](const std::string& family, const std::string& set, const std::string& key) {
    return absl::StrCat("add element ", family, " ", t, " ", set, " { ", key, " }\n",
                        "delete element ", family, " ", t, " ", set, " { ", key, " }\n");
  };
  std::string cmd = is_v6_[*i] ? absl::StrCat(drop("inet", "leased6", address),
                                               drop("inet", "leased6nd", NdTarget(address)),
                                               drop("inet", "closing6", address))
                               : absl::StrCat(drop("inet", "leased4", address),
                                              drop("arp", "leased", address),
                                              drop("inet", "closing4", address));
  return Exec(cmd);
}

absl::Status NftFence::RefuseConnections(const std::string& address, bool refuse) {
  absl::StatusOr<size_t> i = Index(address);
  if (!i.ok()) return i.status();
  const std::string element = absl::StrCat("element inet ", options_.table, " ",
                                           is_v6_[*i] ? "closing6" : "closing4", " { ", address,
                                           " }\n");
  return Exec(refuse ? absl::StrCat("add ", element)
                     : absl::StrCat("add ", element, "delete ", element));
}

absl::Status NftFence::RemoveTables() {
  const std::string& t = options_.table;
  return Exec(absl::StrCat("add table inet ", t, "\ndelete table inet ", t, "\nadd table arp ", t,
                           "\ndelete table arp ", t, "\n"));
}

}  // namespace baton::takeover

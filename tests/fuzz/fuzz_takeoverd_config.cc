// libFuzzer target: baton-takeoverd's YAML config (takeover::ParseDaemonConfig,
// the parser behind LoadDaemonConfig and the kv server's `takeover:` key).
// Properties checked besides crashes, sanitizer reports and escaping
// exceptions: an accepted config keeps the invariants takeover/daemon/config.h
// promises (peers sorted by unique id, this node among them, 1..1024 distinct
// service addresses, a label "<interface>:<suffix>" of at most 15 characters).
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "takeover/daemon/config.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using baton::fuzz::Check;
  std::string_view yaml(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<baton::takeover::DaemonConfig> c = baton::takeover::ParseDaemonConfig(yaml);
  if (!c.ok()) {
    Check(c.status().code() == absl::StatusCode::kInvalidArgument,
          "ParseDaemonConfig failed with a code other than kInvalidArgument");
    return 0;
  }
  for (size_t i = 1; i < c->peers.size(); ++i) {
    Check(c->peers[i - 1].id < c->peers[i].id, "peers not sorted by unique id");
  }
  Check(c->self() != nullptr, "node_id is not among the peers");
  Check(!c->service_addresses.empty() && c->service_addresses.size() <= 1024,
        "service address count outside 1..1024");
  std::set<std::string> seen;
  for (const auto& a : c->service_addresses) {
    Check(seen.insert(a.address).second, "duplicate service address accepted");
  }
  Check(c->label.size() <= 15 && c->label.rfind(c->interface + ":", 0) == 0,
        "label is not \"<interface>:<suffix>\" of at most 15 characters");
  return 0;
}

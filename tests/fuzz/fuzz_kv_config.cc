// libFuzzer target: baton-kvserver's YAML config, which the framework's server
// entry point parses (framework::ParseServerConfig, the parser behind
// LoadServerConfig), and the take-over daemon config it embeds under
// `takeover:`, which the server hands to takeover::ParseDaemonConfig.
// Findings: crashes, sanitizer reports (e.g. unbounded recursion in the YAML
// parser, out-of-range number conversions), exceptions escaping the parser,
// and a failure with another code than the documented kInvalidArgument.
#include <cstdint>
#include <string_view>

#include "framework/server.h"
#include "takeover/daemon/config.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using baton::fuzz::Check;
  std::string_view yaml(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<baton::framework::ServerConfig> c =
      baton::framework::ParseServerConfig(yaml, "kvservice");
  if (!c.ok()) {
    Check(c.status().code() == absl::StatusCode::kInvalidArgument,
          "ParseServerConfig failed with a code other than kInvalidArgument: " +
              c.status().ToString());
    return 0;
  }
  if (!c->takeover_yaml.empty()) {
    (void)baton::takeover::ParseDaemonConfig(c->takeover_yaml);
  }
  return 0;
}

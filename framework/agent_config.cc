// ParseEmbeddedAgentConfig: the `takeover:` section of a server's config.
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "framework/embedded_agent.h"

namespace baton::framework {

absl::StatusOr<EmbeddedAgentConfig> ParseEmbeddedAgentConfig(
    std::string_view yaml) {
  absl::StatusOr<takeover::DaemonConfig> daemon =
      takeover::ParseDaemonConfig(yaml);
  if (!daemon.ok()) {
    // The daemon names keys from the root of its own file ("config: peers:
    // missing"); here they live under `takeover.`.
    absl::string_view m = daemon.status().message();
    absl::ConsumePrefix(&m, "config: ");
    return absl::InvalidArgumentError(absl::StrCat("takeover.", m));
  }
  EmbeddedAgentConfig c;
  c.daemon = *std::move(daemon);
  c.yaml = std::string(yaml);
  if (c.daemon.health_check.kind == takeover::HealthCheckConfig::Kind::kNone) {
    c.daemon.health_check.kind = takeover::HealthCheckConfig::Kind::kExternal;
  }
  return c;
}

}  // namespace baton::framework

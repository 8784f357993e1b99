// libFuzzer target: baton-kvserver's YAML config (kvservice::LoadConfig), and
// the take-over daemon config it embeds under `takeover:`, which the server
// hands to takeover::ParseDaemonConfig. LoadConfig reads a path, so the input
// is written to a memfd and read back through /proc/self/fd (no disk I/O).
// Findings: crashes, sanitizer reports (e.g. unbounded recursion in the YAML
// parser), exceptions escaping the loader, and a failure with another code
// than the documented kInvalidArgument.
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "samples/kvservice/config.h"
#include "takeover/daemon/config.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

// The file LoadConfig reads: a memfd, rewritten for every input.
struct ConfigFile {
  ConfigFile() {
    memfd = ::memfd_create("baton-fuzz-kv-config", MFD_CLOEXEC);
    if (memfd < 0) baton::fuzz::Die("memfd_create: " + std::string(strerror(errno)));
    path = "/proc/self/fd/" + std::to_string(memfd);
  }
  int memfd = -1;
  std::string path;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using baton::fuzz::Check;
  static const ConfigFile file;
  const int memfd = file.memfd;
  const std::string& path = file.path;
  if (::ftruncate(memfd, 0) != 0 ||
      ::pwrite(memfd, data, size, 0) != static_cast<ssize_t>(size)) {
    baton::fuzz::Die("writing the memfd: " + std::string(strerror(errno)));
  }
  absl::StatusOr<baton::kvservice::KvServerConfig> c = baton::kvservice::LoadConfig(path);
  if (!c.ok()) {
    Check(c.status().code() == absl::StatusCode::kInvalidArgument,
          "LoadConfig failed with a code other than kInvalidArgument: " +
              c.status().ToString());
    return 0;
  }
  if (!c->takeover_yaml.empty()) {
    (void)baton::takeover::ParseDaemonConfig(c->takeover_yaml);
  }
  return 0;
}

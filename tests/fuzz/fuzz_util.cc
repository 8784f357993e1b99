#include "tests/fuzz/fuzz_util.h"

#include <cstdio>
#include <cstdlib>

#include "spdlog/spdlog.h"

namespace baton::fuzz {

void Die(const std::string& what) {
  std::fprintf(stderr, "\n==FINDING== %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

void Check(bool ok, std::string_view what) {
  if (!ok) Die(std::string(what));
}

void QuietLogs() {
  const char* level = std::getenv("BATON_FUZZ_LOG");
  spdlog::set_level(level != nullptr ? spdlog::level::from_str(level) : spdlog::level::off);
}

}  // namespace baton::fuzz

// libFuzzer calls this once before the first input, in every target.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  baton::fuzz::QuietLogs();
  return 0;
}

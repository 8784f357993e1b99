// Small helpers shared by baton's libFuzzer targets (tests/fuzz/).
#ifndef BATON_TESTS_FUZZ_FUZZ_UTIL_H_
#define BATON_TESTS_FUZZ_FUZZ_UTIL_H_

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "spdlog/spdlog.h"

namespace baton::fuzz {

// A finding: prints `what` and aborts, so libFuzzer saves the input as a crash
// artifact (crash-<sha1>) and exits non-zero.
[[noreturn]] inline void Die(const std::string& what) {
  std::fprintf(stderr, "\n==FINDING== %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

// Checks a property of the code under test; a violation is a finding.
inline void Check(bool ok, std::string_view what) {
  if (!ok) Die(std::string(what));
}

// The code under test logs every refused input; at fuzzing speed that is
// noise. BATON_FUZZ_LOG=debug (or any spdlog level) turns the logs back on.
inline void QuietLogs() {
  const char* level = std::getenv("BATON_FUZZ_LOG");
  spdlog::set_level(level != nullptr ? spdlog::level::from_str(level)
                                     : spdlog::level::off);
}

}  // namespace baton::fuzz

#endif  // BATON_TESTS_FUZZ_FUZZ_UTIL_H_

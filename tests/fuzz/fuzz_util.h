// Helpers shared by baton's libFuzzer targets (tests/fuzz/). Linked into every
// target with fuzz_util.cc, which also defines LLVMFuzzerInitialize (QuietLogs).
#ifndef BATON_TESTS_FUZZ_FUZZ_UTIL_H_
#define BATON_TESTS_FUZZ_FUZZ_UTIL_H_

#include <cstring>
#include <string>
#include <string_view>

namespace baton::fuzz {

// A finding: prints `what` after "==FINDING==" and aborts, so libFuzzer saves
// the input as a crash artifact (crash-<sha1>) and exits non-zero.
[[noreturn]] void Die(const std::string& what);

// Checks a property of the code under test; a violation is a finding.
void Check(bool ok, std::string_view what);

// The code under test logs every refused input; at fuzzing speed that is
// noise. BATON_FUZZ_LOG=debug (or any spdlog level) turns the logs back on.
void QuietLogs();

}  // namespace baton::fuzz

#endif  // BATON_TESTS_FUZZ_FUZZ_UTIL_H_

// Tests that need root (network namespaces, real addresses) call
// BATON_REQUIRE_ROOT() first. Outside root they skip with a clear message;
// under CI=true (CI runs as root) a skip would hide a broken CI set-up, so the
// test fails instead.
#ifndef BATON_TESTS_TESTING_REQUIRE_ROOT_H_
#define BATON_TESTS_TESTING_REQUIRE_ROOT_H_

#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "gtest/gtest.h"

namespace baton::testing {

inline bool InCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::strcmp(ci, "true") == 0;
}

}  // namespace baton::testing

#define BATON_REQUIRE_ROOT()                                                  \
  do {                                                                        \
    if (::geteuid() != 0) {                                                   \
      if (::baton::testing::InCi()) {                                         \
        FAIL() << "this test needs root and CI=true: CI must run as root";    \
      }                                                                       \
      GTEST_SKIP() << "needs root (network namespaces); run as root to test"; \
    }                                                                         \
  } while (0)

#endif  // BATON_TESTS_TESTING_REQUIRE_ROOT_H_

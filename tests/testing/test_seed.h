// The seed of a randomized test: BATON_TEST_SEED when set (to replay a
// failure), else a fresh one. Tests print it so that a failure can be rerun.
#ifndef BATON_TESTS_TESTING_TEST_SEED_H_
#define BATON_TESTS_TESTING_TEST_SEED_H_

#include <cstdint>
#include <cstdlib>
#include <random>

namespace baton::testing {

inline uint32_t TestSeed() {
  if (const char* env = std::getenv("BATON_TEST_SEED")) {
    return static_cast<uint32_t>(std::strtoul(env, nullptr, 10));
  }
  return std::random_device{}();
}

}  // namespace baton::testing

#endif  // BATON_TESTS_TESTING_TEST_SEED_H_

// The StableStore contract tests, shared by every backend.
//
// A backend instantiates the suite with a StoreContractParam:
//
//   INSTANTIATE_TEST_SUITE_P(RocksDb, StoreContractTest,
//                            ::testing::Values(StoreContractParam{
//                                "RocksDb", [] { return NewRocksDbOpener(); }}),
//                            StoreContractParamName);
//
// Every test calls new_store() once to get a fresh, empty store and an opener
// for it; each call of the opener opens that same store again (the test drops
// the previous handle first), which is how restarts are tested. Whatever the
// opener needs (a temp dir, an etcd key prefix) it owns and releases when the
// last copy of it is destroyed.
#ifndef BATON_TESTS_STORAGE_STORE_CONTRACT_TEST_H_
#define BATON_TESTS_STORAGE_STORE_CONTRACT_TEST_H_

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "storage/stable_store.h"

namespace baton::storage::testing {

// Opens (again) one particular store.
using StoreOpener =
    std::function<absl::StatusOr<std::unique_ptr<StableStore>>()>;

struct StoreContractParam {
  // Names the instantiation in test names; [A-Za-z0-9_] only.
  std::string name;
  // Makes a fresh, empty store and returns its opener.
  std::function<StoreOpener()> new_store;
};

// Test names and ctest names show the backend's name, not the param's bytes.
inline void PrintTo(const StoreContractParam& param, std::ostream* os) {
  *os << param.name;
}

inline std::string StoreContractParamName(
    const ::testing::TestParamInfo<StoreContractParam>& info) {
  return info.param.name;
}

class StoreContractTest : public ::testing::TestWithParam<StoreContractParam> {
 protected:
  void SetUp() override;

  // Drops the current handle and opens the same store again.
  void Reopen();

  StoreOpener opener_;
  std::unique_ptr<StableStore> store_;
};

}  // namespace baton::storage::testing

#endif  // BATON_TESTS_STORAGE_STORE_CONTRACT_TEST_H_

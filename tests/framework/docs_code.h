// Docs whose code is compiled: a test marks a block of its own source with
//   // [docs:<tag>]
//   ...code...
//   // [docs:<tag>-end]
// and checks that a docs page shows exactly that code in a ```cpp block, so
// the page cannot drift from code that builds and passes.
#ifndef BATON_TESTS_FRAMEWORK_DOCS_CODE_H_
#define BATON_TESTS_FRAMEWORK_DOCS_CODE_H_

#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace baton::testing {

// The contents of `path`; "" when it cannot be read.
inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Success when `docs_path` has a ```cpp block that is exactly the code marked
// `tag` in `source_path`.
inline ::testing::AssertionResult DocsShowMarkedCode(
    const std::string& docs_path, const std::string& source_path,
    const std::string& tag) {
  const std::string source = ReadFile(source_path);
  const std::string begin = "// [docs:" + tag + "]\n";
  const std::string end = "// [docs:" + tag + "-end]\n";
  const size_t b = source.find(begin), e = source.find(end);
  if (b == std::string::npos || e == std::string::npos || e < b) {
    return ::testing::AssertionFailure()
           << source_path << " has no block marked " << tag;
  }
  const std::string code = source.substr(b + begin.size(), e - b - begin.size());
  if (ReadFile(docs_path).find("```cpp\n" + code + "```\n") == std::string::npos) {
    return ::testing::AssertionFailure()
           << docs_path << " must show this code:\n" << code;
  }
  return ::testing::AssertionSuccess();
}

}  // namespace baton::testing

#endif  // BATON_TESTS_FRAMEWORK_DOCS_CODE_H_

// The one way a benchmark writes its figures for bench/run, bench/suite and
// the lab scripts: one JSON document, indented by one space, a newline at the
// end.
//
// Thread safety: not for concurrent writes to the same path.
#ifndef BATON_BENCH_LIB_JSON_OUTPUT_H_
#define BATON_BENCH_LIB_JSON_OUTPUT_H_

#include <string>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace baton::bench {

// Writes `document` to `path` (created or truncated). An empty path writes
// nothing and is OK (`--json` not given). kInternal "cannot write PATH" when
// the file cannot be opened or written.
[[nodiscard]] absl::Status WriteJsonFile(const std::string& path,
                                         const nlohmann::json& document);

// For a benchmark's main: WriteJsonFile, and on failure its message on
// stderr. True when written (or no path), false when not (exit status 1).
[[nodiscard]] bool WriteJsonFileOrReport(const std::string& path,
                                         const nlohmann::json& document);

}  // namespace baton::bench

#endif  // BATON_BENCH_LIB_JSON_OUTPUT_H_

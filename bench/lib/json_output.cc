#include "bench/lib/json_output.h"

#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace baton::bench {

absl::Status WriteJsonFile(const std::string& path,
                           const nlohmann::json& document) {
  if (path.empty()) return absl::OkStatus();
  std::ofstream f(path, std::ios::trunc);
  f << document.dump(1) << "\n";
  f.flush();
  if (!f) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

bool WriteJsonFileOrReport(const std::string& path,
                           const nlohmann::json& document) {
  const absl::Status written = WriteJsonFile(path, document);
  if (!written.ok()) {
    std::fprintf(stderr, "%s\n", std::string(written.message()).c_str());
  }
  return written.ok();
}

}  // namespace baton::bench

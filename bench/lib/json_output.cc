#include "bench/lib/json_output.h"

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

}  // namespace baton::bench

// Reading baton's YAML config files: every key known, every value typed and
// range-checked, every error naming the key ("http.max_body_bytes must be in
// [1, 1073741824], got 0"). One set of helpers for every config loader.
//
//   YamlSection http(root["http"], "http");
//   if (auto s = http.AllowKeys({"io_threads", "idle_timeout"}); !s.ok()) ...
//   s = http.Int("io_threads", 1, 256, &options.io_threads);
//   s = http.Duration("idle_timeout", absl::Milliseconds(1), absl::Hours(24),
//                     &options.idle_timeout);
//
// Errors are kInvalidArgument. Deprecated keys are read through
// DeprecatedInt / DeprecatedDuration, which note a warning (warnings()) for
// the caller to log.
//
// Thread safety: not thread-safe; one loader uses a section at a time.
#ifndef BATON_BASE_YAML_H_
#define BATON_BASE_YAML_H_

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "yaml-cpp/yaml.h"

namespace baton {

// Parses a YAML document; kInvalidArgument with the parser's message.
[[nodiscard]] absl::StatusOr<YAML::Node> ParseYaml(std::string_view text,
                                                   std::string_view what);
// Reads and parses a file; kNotFound when it cannot be read.
[[nodiscard]] absl::StatusOr<YAML::Node> LoadYamlFile(const std::string& path);

class YamlSection {
 public:
  // `node` may be undefined or null (an absent section: every read keeps
  // the default). `path` names it in errors ("" for the root).
  YamlSection(YAML::Node node, std::string path,
              std::vector<std::string>* warnings = nullptr);

  bool present() const { return node_.IsDefined() && !node_.IsNull(); }
  bool Has(std::string_view key) const;
  const YAML::Node& node() const { return node_; }
  // A nested section ("http" -> "http.tls").
  YamlSection Section(std::string_view key) const;
  // The full name of `key` in errors: "http.io_threads".
  std::string Name(std::string_view key) const;

  // The section must be a mapping whose keys are all in `allowed`.
  [[nodiscard]] absl::Status AllowKeys(
      std::initializer_list<std::string_view> allowed) const;

  [[nodiscard]] absl::Status String(std::string_view key, std::string* out,
                                    bool allow_empty = false) const;
  [[nodiscard]] absl::Status Bool(std::string_view key, bool* out) const;
  [[nodiscard]] absl::Status StringList(std::string_view key,
                                        std::vector<std::string>* out) const;
  // An integer in [min, max]; never wraps (4294967296 for a 32-bit field is
  // an error, not 0).
  template <typename T>
  [[nodiscard]] absl::Status Int(std::string_view key, int64_t min,
                                 int64_t max, T* out) const {
    static_assert(std::is_integral_v<T>);
    int64_t v = 0;
    if (absl::Status s = ReadInt(key, min, max, &v); !s.ok() || !Has(key)) {
      return s;
    }
    *out = static_cast<T>(v);
    return absl::OkStatus();
  }
  // A duration in the one syntax (base/duration.h) within [min, max].
  [[nodiscard]] absl::Status Duration(std::string_view key, absl::Duration min,
                                      absl::Duration max,
                                      absl::Duration* out) const;
  // An old key holding a number of `unit`s (e.g. idle_timeout_ms), read
  // with a warning that names `replacement`.
  [[nodiscard]] absl::Status DeprecatedDuration(std::string_view key,
                                                absl::Duration unit,
                                                std::string_view replacement,
                                                absl::Duration min,
                                                absl::Duration max,
                                                absl::Duration* out) const;

  absl::Status Bad(std::string_view key, std::string_view why) const;

 private:
  absl::Status ReadInt(std::string_view key, int64_t min, int64_t max,
                       int64_t* out) const;

  YAML::Node node_;
  std::string path_;
  std::vector<std::string>* warnings_;
};

}  // namespace baton

#endif  // BATON_BASE_YAML_H_

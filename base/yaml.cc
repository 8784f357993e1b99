#include "base/yaml.h"

#include <exception>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "base/duration.h"

namespace baton {

absl::StatusOr<YAML::Node> ParseYaml(std::string_view text,
                                     std::string_view what) {
  try {
    return YAML::Load(std::string(text));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(what), " is not valid YAML: ", e.what()));
  }
}

absl::StatusOr<YAML::Node> LoadYamlFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("config file ", path, " not found"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseYaml(ss.str(), absl::StrCat("config file ", path));
}

YamlSection::YamlSection(YAML::Node node, std::string path,
                         std::vector<std::string>* warnings)
    : node_(std::move(node)), path_(std::move(path)), warnings_(warnings) {}

std::string YamlSection::Name(std::string_view key) const {
  return path_.empty() ? std::string(key)
                       : absl::StrCat(path_, ".", std::string(key));
}

absl::Status YamlSection::Bad(std::string_view key, std::string_view why) const {
  return absl::InvalidArgumentError(absl::StrCat(
      "config key \"", Name(key), "\" ", std::string(why)));
}

bool YamlSection::Has(std::string_view key) const {
  if (!present() || !node_.IsMap()) return false;
  const YAML::Node v = node_[std::string(key)];
  return v.IsDefined() && !v.IsNull();
}

YamlSection YamlSection::Section(std::string_view key) const {
  // Copy-constructed, never assigned: assigning yaml-cpp nodes assigns
  // their contents, and a missing key's node has none.
  if (present() && node_.IsMap()) {
    const YAML::Node& map = node_;
    return YamlSection(map[std::string(key)], Name(key), warnings_);
  }
  return YamlSection(YAML::Node(), Name(key), warnings_);
}

absl::Status YamlSection::AllowKeys(
    std::initializer_list<std::string_view> allowed) const {
  if (!present()) return absl::OkStatus();
  if (!node_.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path_.empty() ? std::string("config") : "config key \"" + path_ + "\"",
        " must be a mapping"));
  }
  for (const auto& kv : node_) {
    std::string key;
    try {
      key = kv.first.as<std::string>();
    } catch (const std::exception&) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config: a key in ", path_.empty() ? "the file" : path_,
          " is not a string"));
    }
    bool known = false;
    for (std::string_view a : allowed) known = known || a == key;
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown config key \"", Name(key), "\""));
    }
  }
  return absl::OkStatus();
}

absl::Status YamlSection::String(std::string_view key, std::string* out,
                                 bool allow_empty) const {
  if (!Has(key)) return absl::OkStatus();
  const YAML::Node v = node_[std::string(key)];
  if (!v.IsScalar()) return Bad(key, "must be a string");
  std::string s = v.Scalar();
  if (s.empty() && !allow_empty) return Bad(key, "must not be empty");
  *out = std::move(s);
  return absl::OkStatus();
}

absl::Status YamlSection::Bool(std::string_view key, bool* out) const {
  if (!Has(key)) return absl::OkStatus();
  try {
    *out = node_[std::string(key)].as<bool>();
  } catch (const std::exception&) {
    return Bad(key, "must be true or false");
  }
  return absl::OkStatus();
}

absl::Status YamlSection::StringList(std::string_view key,
                                     std::vector<std::string>* out) const {
  if (!Has(key)) return absl::OkStatus();
  const YAML::Node v = node_[std::string(key)];
  if (!v.IsSequence()) return Bad(key, "must be a list of strings");
  std::vector<std::string> items;
  for (const YAML::Node& item : v) {
    if (!item.IsScalar()) return Bad(key, "must be a list of strings");
    items.push_back(item.Scalar());
  }
  *out = std::move(items);
  return absl::OkStatus();
}

absl::Status YamlSection::ReadInt(std::string_view key, int64_t min,
                                  int64_t max, int64_t* out) const {
  if (!Has(key)) return absl::OkStatus();
  const YAML::Node v = node_[std::string(key)];
  int64_t n = 0;
  if (!v.IsScalar() || !absl::SimpleAtoi(v.Scalar(), &n) || n < min ||
      n > max) {
    return Bad(key, absl::StrCat("must be an integer in [", min, ", ", max,
                                 "], got \"",
                                 v.IsScalar() ? v.Scalar() : YAML::Dump(v),
                                 "\""));
  }
  *out = n;
  return absl::OkStatus();
}

absl::Status YamlSection::Duration(std::string_view key, absl::Duration min,
                                   absl::Duration max,
                                   absl::Duration* out) const {
  if (!Has(key)) return absl::OkStatus();
  const YAML::Node v = node_[std::string(key)];
  if (!v.IsScalar()) return Bad(key, "must be a duration (e.g. 100ms, 30s)");
  absl::StatusOr<absl::Duration> d = ParseDuration(v.Scalar());
  if (!d.ok()) return Bad(key, absl::StrCat(": ", d.status().message()));
  if (*d < min || *d > max) {
    return Bad(key, absl::StrCat("must be within [", baton::FormatDuration(min), ", ",
                                 baton::FormatDuration(max), "], got ", v.Scalar()));
  }
  *out = *d;
  return absl::OkStatus();
}

absl::Status YamlSection::DeprecatedDuration(std::string_view key,
                                             absl::Duration unit,
                                             std::string_view replacement,
                                             absl::Duration min,
                                             absl::Duration max,
                                             absl::Duration* out) const {
  if (!Has(key)) return absl::OkStatus();
  int64_t n = 0;
  const int64_t most = absl::ToInt64Nanoseconds(max) /
                       std::max<int64_t>(1, absl::ToInt64Nanoseconds(unit));
  if (absl::Status s = ReadInt(key, 0, most, &n); !s.ok()) return s;
  const absl::Duration d = n * unit;
  if (d < min || d > max) {
    return Bad(key, absl::StrCat("must be within [", baton::FormatDuration(min), ", ",
                                 baton::FormatDuration(max), "]"));
  }
  *out = d;
  if (warnings_ != nullptr) {
    warnings_->push_back(absl::StrCat(
        "config key \"", Name(key), "\" is deprecated: write \"",
        Name(replacement), ": ", baton::FormatDuration(d), "\" instead"));
  }
  return absl::OkStatus();
}

}  // namespace baton

// std::string_view <-> absl::string_view, and fmt/spdlog formatting of
// Abseil's string_view, Status and StatusCode.
//
// Debian's Abseil (20220623) is built with ABSL_OPTION_USE_STD_STRING_VIEW=0:
// absl::string_view is a type of its own there, so
//   spdlog::info("{}", status.message());     // absl::string_view
// does not compile without a formatter, and absl::StrCat(std::string_view)
// needs a conversion. Every baton header that a service includes
// (framework/handler.h and so on) includes this one, so service code gets
// the formatters without a shim of its own; AV()/SV() convert explicitly.
// Elsewhere (an Abseil that aliases std::string_view) the same code compiles
// and the formatters below are not declared twice.
#ifndef BATON_BASE_STRINGS_H_
#define BATON_BASE_STRINGS_H_

#include <string>
#include <string_view>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "fmt/format.h"

namespace baton {

inline absl::string_view AV(std::string_view s) { return {s.data(), s.size()}; }
inline std::string_view SV(absl::string_view s) { return {s.data(), s.size()}; }

}  // namespace baton

#if !ABSL_USES_STD_STRING_VIEW
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view s, FormatContext& ctx) const {
    return fmt::formatter<fmt::string_view>::format(
        fmt::string_view(s.data(), s.size()), ctx);
  }
};
#endif

template <>
struct fmt::formatter<absl::Status> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(const absl::Status& s, FormatContext& ctx) const {
    const std::string text = s.ToString();
    return fmt::formatter<fmt::string_view>::format(
        fmt::string_view(text.data(), text.size()), ctx);
  }
};

template <>
struct fmt::formatter<absl::StatusCode> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(absl::StatusCode c, FormatContext& ctx) const {
    const std::string text = absl::StatusCodeToString(c);
    return fmt::formatter<fmt::string_view>::format(
        fmt::string_view(text.data(), text.size()), ctx);
  }
};

#endif  // BATON_BASE_STRINGS_H_

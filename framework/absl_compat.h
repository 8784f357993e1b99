// Conversions between std::string_view and absl::string_view. Debian's
// abseil 20220623 is built with ABSL_OPTION_USE_STD_STRING_VIEW=0, so the two
// are different types there (elsewhere they are the same and these are
// no-ops). Internal to the framework.
#ifndef BATON_FRAMEWORK_ABSL_COMPAT_H_
#define BATON_FRAMEWORK_ABSL_COMPAT_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace baton::framework::internal {

inline absl::string_view AV(std::string_view s) { return {s.data(), s.size()}; }
inline std::string_view SV(absl::string_view s) { return {s.data(), s.size()}; }

}  // namespace baton::framework::internal

#endif  // BATON_FRAMEWORK_ABSL_COMPAT_H_

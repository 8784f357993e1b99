// The framework's short names for base/strings.h's conversions between
// std::string_view and absl::string_view (one shim for the whole tree).
#ifndef BATON_FRAMEWORK_ABSL_COMPAT_H_
#define BATON_FRAMEWORK_ABSL_COMPAT_H_

#include "base/strings.h"

namespace baton::framework::internal {

using ::baton::AV;
using ::baton::SV;

}  // namespace baton::framework::internal

#endif  // BATON_FRAMEWORK_ABSL_COMPAT_H_

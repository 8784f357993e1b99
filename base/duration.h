// One duration syntax for every baton config file and flag: a decimal number
// and a unit, e.g. "100ms", "1.5s", "30s", "2m", "24h", "250us", "0s".
// Units: ns, us, ms, s, m, h. A bare number is refused (is 30 seconds or
// milliseconds?), so is a negative or non-finite one.
#ifndef BATON_BASE_DURATION_H_
#define BATON_BASE_DURATION_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace baton {

// kInvalidArgument saying what is wrong with `text`.
[[nodiscard]] absl::StatusOr<absl::Duration> ParseDuration(std::string_view text);

// The shortest exact form ParseDuration reads back: "100ms", "30s", "1h".
std::string FormatDuration(absl::Duration d);

}  // namespace baton

#endif  // BATON_BASE_DURATION_H_

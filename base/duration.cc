#include "base/duration.h"

#include <cmath>
#include <cstdint>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace baton {

absl::StatusOr<absl::Duration> ParseDuration(std::string_view text) {
  size_t i = 0;
  while (i < text.size() &&
         ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) {
    ++i;
  }
  const std::string number(text.substr(0, i));
  const std::string_view unit = text.substr(i);
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", std::string(text), "\" is not a duration (", std::string(why),
        "; e.g. 100ms, 30s, 2m, 24h)"));
  };
  double v = 0;
  if (number.empty() || !absl::SimpleAtod(number, &v) || !std::isfinite(v) ||
      v < 0) {
    return bad("a non-negative number must come first");
  }
  double ns_per = 0;
  if (unit == "ns") {
    ns_per = 1;
  } else if (unit == "us") {
    ns_per = 1e3;
  } else if (unit == "ms") {
    ns_per = 1e6;
  } else if (unit == "s") {
    ns_per = 1e9;
  } else if (unit == "m") {
    ns_per = 60e9;
  } else if (unit == "h") {
    ns_per = 3600e9;
  } else if (unit.empty()) {
    return bad("a unit is needed: ns, us, ms, s, m or h");
  } else {
    return bad("unknown unit");
  }
  const double ns = v * ns_per;
  if (ns > 9.2e18) return bad("too long");
  return absl::Nanoseconds(static_cast<int64_t>(std::llround(ns)));
}

std::string FormatDuration(absl::Duration d) {
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  struct Unit {
    int64_t ns;
    const char* name;
  };
  static constexpr Unit kUnits[] = {{3600'000'000'000, "h"},
                                    {60'000'000'000, "m"},
                                    {1'000'000'000, "s"},
                                    {1'000'000, "ms"},
                                    {1'000, "us"}};
  if (ns == 0) return "0s";
  for (const Unit& u : kUnits) {
    if (ns % u.ns == 0) return absl::StrCat(ns / u.ns, u.name);
  }
  return absl::StrCat(ns, "ns");
}

}  // namespace baton

# Sourced by shell tests that need root. Skips (exit 77, which CTest reports as
# skipped) outside root; under CI=true a skip is a failure (exit 1).
if [ "$(id -u)" -ne 0 ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "FAIL: $0 needs root and CI=true: CI must run as root" >&2
    exit 1
  fi
  echo "SKIP: $0 needs root (network namespaces); run as root to test" >&2
  exit 77
fi

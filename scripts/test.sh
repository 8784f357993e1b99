#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite.
# Under CI=true warnings are errors and tests that need root must not skip.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
preset=default builddir=build
if [ "${CI:-}" = "true" ]; then preset=ci builddir=build-ci; fi
cmake --preset "$preset"
cmake --build --preset "$preset"
ctest --preset "$preset" "$@"
# The installed package as an outsider uses it (the whole suite only, not a
# -R selection): samples/reservations built against `cmake --install`.
if [ $# -eq 0 ]; then
  ./scripts/test-package.sh "$builddir"
fi
# The sanitizer stage (ASan/UBSan unit tests, the clang thread-safety check,
# time-bounded fuzzers; docs/fuzzing.md): always under CI=true, opt-in
# elsewhere with BATON_SANITIZE=1, so a first run stays fast.
if [ "${CI:-}" = "true" ] || [ "${BATON_SANITIZE:-0}" = "1" ]; then
  ./scripts/sanitize.sh
fi

#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite.
# Under CI=true warnings are errors and tests that need root must not skip.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
preset=default
if [ "${CI:-}" = "true" ]; then preset=ci; fi
cmake --preset "$preset"
cmake --build --preset "$preset"
ctest --preset "$preset" "$@"

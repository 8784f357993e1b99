#!/usr/bin/env bash
# The installed package as an outsider uses it: installs the build in BUILD_DIR
# into a fresh prefix, builds samples/reservations (its own CMake project, only
# find_package(baton)) against it, and runs its tests. Called by
# scripts/test.sh; usage: scripts/test-package.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: scripts/test-package.sh BUILD_DIR}
prefix=$(mktemp -d /tmp/baton-prefix.XXXXXX)
trap 'rm -rf "$prefix"' EXIT
echo "test-package: cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" > /dev/null
out="$build/reservations"
cmake -S samples/reservations -B "$out" -G Ninja -DCMAKE_PREFIX_PATH="$prefix"
cmake --build "$out"
ctest --test-dir "$out" --output-on-failure

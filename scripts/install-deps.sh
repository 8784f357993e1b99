#!/usr/bin/env bash
# Installs every Debian package baton needs to build, test and benchmark.
# Idempotent: packages already present are left alone; apt-get runs only when
# something is missing. Must run as root (or with sudo available).
set -euo pipefail

PKGS=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git
  # sanitizer stage (scripts/sanitize.sh): clang, its sanitizer runtimes, libFuzzer,
  # and llvm-symbolizer (package llvm) for readable sanitizer stack traces
  clang-16 libclang-rt-16-dev libfuzzer-16-dev llvm
  # libraries
  libboost-dev libboost-system-dev librocksdb-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libabsl-dev
  libspdlog-dev libfmt-dev libgtest-dev libgmock-dev libbenchmark-dev
  libnl-3-dev libnl-route-3-dev libssl-dev libyaml-cpp-dev libcli11-dev nlohmann-json3-dev
  prometheus-cpp-dev
  # services used by tests and benchmarks (started by the tests themselves)
  etcd-server etcd-client keepalived redis-server
  # lab, tests, benchmarks
  iproute2 iputils-ping procps psmisc curl gnuplot-nox python3 openssl
  # kernel-enforced lease fence (takeover/drivers/nft_fence)
  nftables libnftables-dev
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "install-deps: missing packages (${missing[*]}) and not root; rerun as root" >&2
    exit 1
  fi
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Package post-install scripts must not start etcd/redis/keepalived as system
# services: tests start their own instances on loopback or in namespaces.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  created_policy=1
fi
cleanup() { if [ "$created_policy" = 1 ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"

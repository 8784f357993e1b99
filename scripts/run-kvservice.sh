#!/usr/bin/env bash
# Installs what is missing, builds, and starts the sample key-value service on
# the embedded (RocksDB) store, listening on 127.0.0.1. Extra arguments go to
# the server (see `build/samples/kvservice/baton-kvserver --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake --preset default
# The server and the command-line client its start-up message tells you to
# try (build/samples/kvservice/baton-kv), so every printed command works.
cmake --build --preset default --target baton-kvserver baton-kv
exec build/samples/kvservice/baton-kvserver --config samples/kvservice/kvservice.yaml "$@"

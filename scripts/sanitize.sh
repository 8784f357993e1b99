#!/usr/bin/env bash
# The sanitizer stage (docs/fuzzing.md), run by scripts/test.sh under CI=true
# or with BATON_SANITIZE=1: the `sanitize` preset (clang-16, ASan + UBSan,
# -Werror=thread-safety) builds every library that carries lock annotations
# (the clang thread-safety check), the unit tests of the pipeline, the stores,
# the client and the take-over wire/transport, and the fuzzers; then runs
# those unit tests under the sanitizers and each fuzzer for a fixed time from
# its seed corpus. Any failure, sanitizer report or fuzzer finding fails it.
#
#   BATON_FUZZ_SECONDS   time per fuzzer. Default: 30 (0: seeds only).
#   BATON_FUZZ_JOBS      fuzzers run at once. Default: the number of cores
#                        (nproc); each fuzzer keeps its full time.
#   BATON_FUZZ_OUT       where new inputs, crash artifacts and logs go.
#                        Default: build-sanitize/fuzz-out
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${BATON_FUZZ_SECONDS:-30}
jobs=${BATON_FUZZ_JOBS:-$(nproc)}
out=${BATON_FUZZ_OUT:-build-sanitize/fuzz-out}

fuzzers=(http_server request_id kv_json takeover_datagram takeover_node kv_config takeoverd_config)
unit_tests=(
  framework_pipeline_test framework_pipeline_async_test   # pipeline (memory store, RocksDB)
  framework_http_test kvservice_http_test                 # HTTP front end, kv sample
  rocksdb_store_test rocksdb_async_test memory_store_test # store contract + RocksDB, memory
  rocksdb_overlap_test                                    # RocksDB overlapped group commit
  framework_client_retry_test framework_client_connect_test  # retrying client
  takeover_core_test takeover_udp_transport_test          # core + wire, HMAC transport
)
# Every library with ABSL_GUARDED_BY & co.: compiled here, so -Wthread-safety checks them.
annotated_libs=(baton_framework baton_client baton_client_grpc baton_grpc_server baton_server
                baton_testing baton_framework_agent
                baton_storage baton_store_memory baton_etcd_store)

stage_start=$(date +%s)
./scripts/install-deps.sh >/dev/null  # clang-16 & co. when run on its own
cmake --preset sanitize
cmake --build --preset sanitize --target "${annotated_libs[@]}" "${unit_tests[@]}" \
  "${fuzzers[@]/#/fuzz_}"
build_done=$(date +%s)

# Sanitizer reports with function names and lines (llvm-symbolizer from the llvm package; the
# runtime does not find it on PATH by itself).
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && command -v llvm-symbolizer >/dev/null; then
  ASAN_SYMBOLIZER_PATH=$(command -v llvm-symbolizer)
  export ASAN_SYMBOLIZER_PATH UBSAN_SYMBOLIZER_PATH=$ASAN_SYMBOLIZER_PATH
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Unit tests under ASan/UBSan (the root-only full-disk test stays in the main run).
for t in "${unit_tests[@]}"; do
  bin=$(find build-sanitize/tests -type f -name "$t" -perm -u+x | head -n 1)
  echo "sanitize: $t"
  "$bin" --gtest_brief=1 --gtest_filter='-*FullDisk*'
done
tests_done=$(date +%s)

# Fuzzers: new inputs go to $out/<name>/corpus (the repository's seeds are read,
# never written); a finding leaves $out/<name>/crash-* (or leak-, timeout-, oom-).
mkdir -p "$out"

# One fuzzer: the seeds, then the timed run. Leaves its exit status in $out/<name>/rc.
fuzz_one() {
  local f=$1 dir="$out/$1" bin=build-sanitize/tests/fuzz/fuzz_$1 timeout=10 rc
  mkdir -p "$dir/corpus"
  if [ "$f" = http_server ]; then timeout=20; fi  # its own hang check fires at 5 s idle
  echo "fuzz: $f: every seed once, then ${seconds}s of fuzzing (seeds: tests/fuzz/corpus/$f)"
  set +e
  # 1. The seeds at full length (some reproducers are large, e.g. 100,000 nested arrays).
  "$bin" -runs=0 -timeout="$timeout" -artifact_prefix="$dir/" "tests/fuzz/corpus/$f" \
    >"$dir/seeds.log" 2>&1
  rc=$?
  # 2. Fuzzing, with inputs up to 8 KiB: the large seeds would otherwise make every mutation
  #    that large and the run ten times slower.
  if [ "$rc" -eq 0 ] && [ "$seconds" -gt 0 ]; then
    "$bin" -max_total_time="$seconds" -max_len=8192 -timeout="$timeout" -print_final_stats=1 \
      -artifact_prefix="$dir/" "$dir/corpus" "tests/fuzz/corpus/$f" >"$dir/log" 2>&1
    rc=$?
  else
    cp "$dir/seeds.log" "$dir/log"
  fi
  echo "$rc" >"$dir/rc"
}

# BATON_FUZZ_JOBS at a time (each fuzzer is one process on one core).
running=0
for f in "${fuzzers[@]}"; do
  rm -f "$out/$f/rc"
  fuzz_one "$f" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true

failed=()
summary=()
for f in "${fuzzers[@]}"; do
  dir="$out/$f"
  rc=$(cat "$dir/rc" 2>/dev/null || echo 1)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" 2>/dev/null | tail -n 1)
  summary+=("$(printf '%-20s %10s executions  exit %d' "$f" "${execs:-?}" "$rc")")
  if [ "$rc" -ne 0 ]; then
    failed+=("$f")
    echo "fuzz: $f FAILED (exit $rc); the end of $dir/log:"
    tail -n 60 "$dir/log" 2>/dev/null || true
    ls "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-* 2>/dev/null || true
  fi
done
end=$(date +%s)

echo "sanitize: build $((build_done - stage_start)) s, unit tests $((tests_done - build_done)) s," \
     "fuzzers $((end - tests_done)) s"
printf 'fuzz: %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: findings in: ${failed[*]} (reproduce: docs/fuzzing.md)" >&2
  exit 1
fi

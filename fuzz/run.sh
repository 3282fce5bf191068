#!/usr/bin/env bash
# Fuzz every target for N seconds each (default 30): `fuzz/run.sh [seconds-per-target]`.
#
# Runs on the stable toolchain: cargo-fuzz with `--sanitizer none` passes only stable
# `-C` flags (SanitizerCoverage through LLVM arguments); the library has no unsafe code
# for AddressSanitizer to watch. Debug assertions (and with them overflow checks) are on.
# New corpus entries go to fuzz/corpus/<target>/ (ignored by git, kept between runs), a
# crashing input to fuzz/artifacts/<target>/. Exits non-zero if any target crashed.
set -euo pipefail
cd "$(dirname "$0")"

secs="${1:-30}"
targets=(xml_to_json csv_reader route_loader personnummer)
CARGO_FUZZ_VERSION=0.13.2
# The build goes to a folder outside the checkout (KNUT_FUZZ_TARGET_DIR, default
# ~/.cache/knutpunkt/fuzz-target), so a fresh clone on the same machine (CI) rebuilds only
# what changed; the first build on a machine takes about 13 minutes.
target_dir="${KNUT_FUZZ_TARGET_DIR:-${HOME:-/tmp}/.cache/knutpunkt/fuzz-target}"
mkdir -p "$target_dir"
# The same flags for build and run, so that `run` reuses what `build` made.
flags=(--sanitizer none --release --debug-assertions --codegen-units 16 --target-dir "$target_dir")

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

start=$(date +%s)
cargo fuzz build "${flags[@]}"
echo "fuzz: built the targets in $(( $(date +%s) - start ))s"

passed=0
failed=0
mkdir -p logs
for t in "${targets[@]}"; do
  log="logs/$t.log"
  # -timeout: an input taking longer than 10 s is a hang and counts as a crash.
  if cargo fuzz run "${flags[@]}" "$t" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$log" 2>&1; then
    passed=$((passed + 1))
    status=ok
  else
    failed=$((failed + 1))
    status=CRASHED
    tail -n 60 "$log" >&2
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  corpus=$(grep -a -o 'corp: [0-9]*/[0-9a-zA-Z]*' "$log" | tail -n 1 || true)
  echo "fuzz: $t: $status, ${execs:-?} executions in ${secs}s (${rate:-?}/s), ${corpus:-corp: ?} (log fuzz/$log)"
done

echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

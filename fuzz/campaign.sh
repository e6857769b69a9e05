#!/usr/bin/env bash
# A long fuzzing campaign: every given target (default: all) runs until it has executed RUNS inputs,
# seeded like fuzz/run.sh and from the committed minimized corpus; then its corpus is minimized back
# into fuzz/minimized/<target>/ (commit that). One line per target is appended to fuzz/campaign.log:
# date, target, executions, seconds, sanitizer, and the crash artifacts found (none: 0).
#   fuzz/campaign.sh 10000000 pkcs12 jwk
#   FUZZ_SANITIZER=none fuzz/campaign.sh 10000000 authority
# FUZZ_SANITIZER (default: address) picks cargo-fuzz's sanitizer; `none` ran 2 to 5 times faster
# here (figures in BENCHMARKS.md). It suits these targets: our crate forbids unsafe code, and so do
# the parsers they feed (serde-saphyr, granit-parser, pkcs12, cms, x509-cert, base64; loona-hpack
# has none); the only unsafe code they reach is der's reference casts and the hash/cipher crates'
# SIMD on fixed-size blocks. Panics, bad indexing, runaway allocations and timeouts are reported
# either way. Builds without a sanitizer live in target/nosan, so they never replace the
# AddressSanitizer builds.
set -euo pipefail
cd "$(dirname "$0")"
runs="${1:?usage: campaign.sh RUNS [TARGET...]}"
shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(pkcs12 jwk objects mount_request authority json_keys pem_pfx)
sanitizer="${FUZZ_SANITIZER:-address}"
build=(-O -s "$sanitizer")
[ "$sanitizer" = address ] || build+=(--target-dir target/nosan)
SEED_ONLY=1 bash run.sh
cargo +nightly fuzz build "${build[@]}"
for target in "${targets[@]}"; do
  started=$(date +%s)
  log=$(mktemp)
  cargo +nightly fuzz run "${build[@]}" "$target" "corpus/$target" -- -runs="$runs" -max_len=8192 -print_final_stats=1 >"$log" 2>&1 || true
  # A run that died before printing its stats must still be logged, not abort the campaign.
  done_runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1 || true)
  crashes=$(find "artifacts/$target" -name 'crash-*' 2>/dev/null | wc -l)
  echo "$(date -u +%Y-%m-%dT%H:%MZ) $target executions=${done_runs:-?} seconds=$(( $(date +%s) - started )) sanitizer=$sanitizer crashes=$crashes" | tee -a campaign.log
  rm -rf "minimized/$target.new" && mkdir -p "minimized/$target.new"
  cargo +nightly fuzz cmin "${build[@]}" "$target" "corpus/$target" -- -max_len=8192 >/dev/null 2>&1 || true
  cp "corpus/$target"/* "minimized/$target.new/" 2>/dev/null || true
  rm -rf "minimized/$target" && mv "minimized/$target.new" "minimized/$target"
  rm -f "$log"
done

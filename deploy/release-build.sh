#!/usr/bin/env bash
# The image's binary: `cargo build --release --locked --no-default-features`, linked statically against
# glibc (static-pie), with the code the daemon runs from start to idle laid out together.
#
# Why the layout: an idle daemon's memory is mostly pages of its own executable, and a page fault on code
# maps the whole 64 KiB around it (the kernel's fault-around; since Linux 6.18 the whole large folio the page
# cache holds it in). Start-up runs ~2,000 functions spread over the 10 MB of text, so about 6 MiB of code
# became resident; laid out together they take under 2 MiB (BENCHMARKS.md, "Idle memory").
#
# How: pass 1 builds the binary with its symbol table; valgrind (callgrind) records the functions it runs
# from start, through one liveness probe (a gRPC Version over its socket) and one /metrics scrape, to its
# stop; pass 2 relinks with that list as LLD's --symbol-ordering-file. The list is made from this very
# build, so it never goes stale (symbol names carry hashes that change with the dependencies and version).
# Pass 2 compiles only the binary's own crate again and relinks; the code is the same, only its order.
#
# Usage: deploy/release-build.sh OUT        (from the repository root)
#   OUT: where the binary is copied. CARGO_TARGET_DIR and GIT_COMMIT are honoured.
#   AKV_LAYOUT=off builds in one pass, without the layout (no valgrind needed).
# The layout needs valgrind and rustc's own LLD, the default linker of x86_64-unknown-linux-gnu since
# Rust 1.90; on other targets the binary is built in one pass (the script says so).
set -euo pipefail

out=${1:?usage: deploy/release-build.sh OUT}
triple=$(rustc -vV | sed -n 's/^host: //p')
target_dir=${CARGO_TARGET_DIR:-target}
bin="$target_dir/$triple/release/akv-csi-provider"
# --target: RUSTFLAGS then apply to the binary only, not to build scripts and proc-macros (which must
# stay dynamic). The host's own triple, so that an arm64 build (release workflow) builds for arm64.
export RUSTFLAGS="-C target-feature=+crt-static"
# `cargo rustc`: the flags after `--` reach this binary's crate only, so pass 2 does not rebuild the
# dependencies, and their symbol names (which hash the crate's metadata, not these flags) stay the same.
cargo=(cargo rustc --release --locked --no-default-features -p akv-csi-provider --bin akv-csi-provider
  --target "$triple")

layout=${AKV_LAYOUT:-on}
if [ "$layout" != off ] && [ "$triple" != x86_64-unknown-linux-gnu ]; then
  echo "release-build: no start-up layout on $triple (it needs rustc's own LLD as the linker); one pass" >&2
  layout=off
fi
if [ "$layout" != off ] && ! command -v valgrind >/dev/null; then
  echo "release-build: valgrind is needed to record the start-up code (Debian: apt-get install valgrind);" \
    "AKV_LAYOUT=off builds without the layout" >&2
  exit 1
fi
if [ "$layout" = off ]; then
  "${cargo[@]}"
  cp "$bin" "$out"
  exit 0
fi

work=$(mktemp -d)
daemon=
cleanup() {
  if [ -n "$daemon" ]; then kill -KILL "$daemon" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# GET PATH from 127.0.0.1:PORT; prints the status line ("HTTP/1.1 200 OK"), or nothing if the connection
# fails. bash's /dev/tcp: no curl in the build image needed.
probe() {
  local status=
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 0
  printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$2" >&3
  IFS= read -r status <&3 || true
  cat <&3 >/dev/null
  exec 3<&-
  printf '%s\n' "${status%$'\r'}"
}

# Start the pass-1 binary under callgrind, probe it, stop it with SIGTERM as the kubelet does. Fails
# (status 1) if it does not start or a probe is not answered 200, e.g. a port taken by something else.
record() {
  local healthz=$((20000 + RANDOM % 20000)) metrics=$((40000 + RANDOM % 20000)) probed scraped
  rm -f "$work/azure.sock" "$work/callgrind.out"
  valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/callgrind.out" \
    "$bin" --endpoint="unix://$work/azure.sock" --healthz-port="$healthz" --prometheus-port="$metrics" \
    >"$work/daemon.log" 2>&1 &
  daemon=$!
  for _ in $(seq 600); do
    [ -S "$work/azure.sock" ] && break
    kill -0 "$daemon" 2>/dev/null || break
    sleep 0.1
  done
  sleep 1
  probed=$(probe "$healthz" /healthz)
  scraped=$(probe "$metrics" /metrics)
  sleep 1
  kill -TERM "$daemon" 2>/dev/null || true
  wait "$daemon" || true
  daemon=
  echo "release-build: /healthz: ${probed:-no answer}; /metrics: ${scraped:-no answer}" >&2
  if [[ "$probed" != "HTTP/1.1 200"* || "$scraped" != "HTTP/1.1 200"* ]]; then
    tail -n 20 "$work/daemon.log" >&2
    return 1
  fi
  # Every function callgrind saw run or called ("fn=(id) name" / "cfn=(id) name" the first time an id
  # appears), in that order; unnamed addresses left out.
  sed -nE 's/^c?fn=\([0-9]+\) (.*)$/\1/p' "$work/callgrind.out" | grep -v '^0x' | awk '!seen[$0]++' \
    >"$work/order.txt"
}

# Pass 1: the same build with its symbol table kept (-C strip=none after the profile's strip).
"${cargo[@]}" -- -C strip=none
# Three tries: the ports are picked at random.
record || record || record || {
  echo "release-build: the daemon did not start and answer under valgrind (AKV_LAYOUT=off builds without" \
    "the layout)" >&2
  exit 1
}
functions=$(wc -l <"$work/order.txt")
if [ "$functions" -lt 500 ]; then
  echo "release-build: callgrind recorded only $functions functions; expected over 1,000" >&2
  exit 1
fi
echo "release-build: $functions functions run from start to idle; relinking with them first" >&2
# Pass 2: the profile's stripped binary, linked with those functions first in .text.
"${cargo[@]}" -- -C "link-arg=-Wl,--symbol-ordering-file=$work/order.txt"
cp "$bin" "$out"

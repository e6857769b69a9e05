#!/usr/bin/env bash
# The alerts and the dashboard, checked with Debian's Prometheus (installed here when missing):
#   1. promtool check rules and the rule unit tests (rules.test.yaml) on akv-csi-provider.rules.yaml
#      (deploy/check.sh checks that this file is the chart's PrometheusRule);
#   2. the dashboard's structure, and every panel query as a recording rule through promtool check rules;
#   3. live.py: a real Prometheus scraping two daemons driven against the emulator until every alert fires,
#      every panel query returns data and every metric read is exported (about a minute), in a network
#      namespace with loopback only where that is possible (root with unshare).
# Needs the debug binary (cargo build; CI builds it with `cargo test --no-run`) or AKV_BINARY, python3 >= 3.10,
# and PyPI and the Debian archive the first time. Usage: bash deploy/monitoring/check.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

bash "$here/install-prometheus.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== rules: promtool check rules, promtool test rules"
promtool check rules deploy/monitoring/akv-csi-provider.rules.yaml
(cd deploy/monitoring && promtool test rules rules.test.yaml)

echo "== dashboard: structure, and every panel query through promtool as a recording rule"
python3 deploy/monitoring/dashboard.py check
python3 deploy/monitoring/dashboard.py rules "$tmp/dashboard.rules.yaml"
promtool check rules "$tmp/dashboard.rules.yaml"

echo "== live: a real Prometheus, the daemon and the emulator"
# The rules as the chart renders them for the test's node-a (objectCacheMaxBytes 16Ki), with the deploy venv.
source "$root/deploy/venv.sh"
deploy_setup_venv
printf 'objectCacheMaxBytes: 16Ki\n' >"$tmp/live-values.yaml"
"$deploy_python" deploy/chart_check.py rules "$tmp/live-rules.yaml" "$tmp/live-values.yaml"

# The gRPC client's venv (grpcio, PyYAML), pinned in requirements.txt.
venv="$root/target/monitoring-venv"
want=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ] || ! "$venv/bin/python" -c 'import grpc, yaml' 2>/dev/null; then
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
  if ! "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$here/requirements.txt" \
      >"$root/target/monitoring-venv.log" 2>&1; then
    echo "FAIL live: could not install deploy/monitoring/requirements.txt (log: target/monitoring-venv.log)" >&2
    tail -n 15 "$root/target/monitoring-venv.log" >&2
    exit 1
  fi
  echo "$want" >"$venv/.requirements.sha256"
fi

# Cargo's own target directory (CARGO_TARGET_DIR when set), where the build below puts the binary.
binary=${AKV_BINARY:-${CARGO_TARGET_DIR:-$root/target}/debug/akv-csi-provider}
if [ -z "${AKV_BINARY:-}" ]; then
  cargo build --quiet --bin akv-csi-provider
fi
live=("$venv/bin/python" "$here/live.py" --binary "$binary" --rules "$tmp/live-rules.yaml")
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && command -v ip >/dev/null && unshare -n true 2>/dev/null; then
  # The daemons serve /metrics on all interfaces: here that is loopback alone.
  live_start=$SECONDS
  unshare -n -- sh -c 'ip link set lo up && exec "$@"' sh "${live[@]}"
  echo "live: $((SECONDS - live_start)) s with start-up and teardown (loopback-only network namespace)"
else
  echo "note: not root or no unshare/ip: live.py runs in the machine's network namespace (its servers bind 127.0.0.1, the daemons' /metrics all interfaces)"
  live_start=$SECONDS
  "${live[@]}"
  echo "live: $((SECONDS - live_start)) s with start-up and teardown"
fi

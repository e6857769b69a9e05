#!/usr/bin/env bash
# Installs Debian's prometheus package (the server and promtool) when they are missing, without starting its
# service: deploy/monitoring/check.sh runs its own instance on a loopback port. Recommends (node-exporter, which
# would also start a service) are not installed. Needs root and the Debian archive the first time.
set -euo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "FAIL install-prometheus: prometheus/promtool missing and not root: apt-get install prometheus" >&2
  exit 1
fi
# invoke-rc.d asks /usr/sbin/policy-rc.d whether it may start a service; 101 = no. Keep an existing one.
policy=/usr/sbin/policy-rc.d
own_policy=false
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=true
fi
trap '[ "$own_policy" = true ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus; } >"$log" 2>&1; then
  echo "FAIL install-prometheus: apt-get could not install prometheus:" >&2
  tail -n 15 "$log" >&2
  rm -f "$log"
  exit 1
fi
rm -f "$log"
# Where the package's service did start anyway (a machine with systemd and no policy), stop and disable it:
# nothing of it may listen while the check runs.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
command -v prometheus >/dev/null && command -v promtool >/dev/null
echo "installed: $(prometheus --version 2>&1 | head -n 1)"

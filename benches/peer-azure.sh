#!/usr/bin/env bash
# Runs Azure's Go provider (secrets-store-csi-driver-provider-azure) as the node bench's daemon, so that its
# figures sit beside this project's in one run (BENCHMARKS.md, "Beside Azure's provider"). Nothing else
# needs it, and no Azure binary is part of the repository.
#
#   AKV_BENCH_PEER=1 AKV_BENCH_DAEMON=benches/peer-azure.sh AZURE_PROVIDER=/path/to/provider \
#     cargo bench --bench node -- pfxburst
#
# As root (iptables, a mount namespace). The bench starts its "daemon" with this project's flags; Azure's
# provider takes the same ones but for those filtered below, and has no --resolve, so:
#   - /etc/hosts, in a mount namespace of its own, names the emulator's hosts 127.0.0.1 (Entra ID and the
#     bench's one vault, `kv-bench`: VAULT in benches/node.rs);
#   - an iptables REDIRECT (nat OUTPUT, chain AKVBENCH) sends 127.0.0.1:443 to the emulator's port, in the
#     kernel: no process of its own in the path;
#   - SSL_CERT_FILE, which the bench sets to the emulator's CA, is honoured by Go's crypto/x509.
# The script execs the provider, so the bench measures the provider's own process (CPU, RSS).
set -euo pipefail
provider=${AZURE_PROVIDER:?set AZURE_PROVIDER to the path of Azure\'s provider binary}
args=()
addr=
for a in "$@"; do
  case "$a" in
    --resolve=*) addr=${a#*=}; addr=${addr#*=} ;;
    # This project's own flags, which Azure's provider does not know.
    --max-concurrent-fetches=* | --object-cache-ttl=* | --max-concurrent-mounts=* | --mount-timeout=*) ;;
    *) args+=("$a") ;;
  esac
done
[ -n "$addr" ] || { echo "peer-azure: no --resolve=HOST=ADDR:PORT among the bench's flags" >&2; exit 2; }
iptables -t nat -N AKVBENCH 2>/dev/null || true
iptables -t nat -C OUTPUT -j AKVBENCH 2>/dev/null || iptables -t nat -A OUTPUT -j AKVBENCH
iptables -t nat -F AKVBENCH
iptables -t nat -A AKVBENCH -p tcp -d 127.0.0.1 --dport 443 -j REDIRECT --to-ports "${addr##*:}"
hosts=$(mktemp)
printf '127.0.0.1 localhost login.microsoftonline.com kv-bench.vault.azure.net\n' >"$hosts"
exec unshare -m bash -c 'mount --bind "$0" /etc/hosts && rm -f "$0" && exec "$@"' "$hosts" "$provider" "${args[@]}"

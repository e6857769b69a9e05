#!/usr/bin/env bash
# Offline check of the Docker build context (.dockerignore against the Dockerfile and the cargo build), of the
# Helm chart in deploy/chart/akv-csi-provider and of deploy/provider-azure-installer.yaml:
# lint, render (defaults, a Go-chart user's values file, our own flags, refusals), validate every rendered
# object against the Kubernetes schemas, and compare the static manifest with the chart's output.
# No helm binary, no cluster, no network (except PyPI the first time, to fill target/deploy-venv).
# Usage: bash deploy/check.sh    (exit status 0 = all steps passed)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
deploy_setup_venv
# The Docker build context that .dockerignore leaves (stdlib only; CI also builds it: --build).
status=0
"$deploy_python" "$deploy_root/deploy/docker_context_check.py" || status=1
"$deploy_python" "$deploy_root/deploy/chart_check.py" check || status=1
exit $status

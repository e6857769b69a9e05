#!/usr/bin/env bash
# Regenerates deploy/provider-azure-installer.yaml from the chart (default values, release
# csi-secrets-store-provider-azure, namespace kube-system, driver not installed), and
# deploy/monitoring/akv-csi-provider.rules.yaml from its PrometheusRule template. Run it after changing
# the chart and commit them; deploy/check.sh fails while they differ.
# Usage: bash deploy/generate-manifest.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
deploy_setup_venv
exec "$deploy_python" "$deploy_root/deploy/chart_check.py" generate

"""Offline lint, render and validation of the akv-csi-provider Helm chart, and the generator of the static
manifest deploy/provider-azure-installer.yaml and of the plain rules file deploy/monitoring/akv-csi-provider.rules.yaml
(the chart's PrometheusRule; `rules OUT [VALUES]` renders it with other values, for deploy/monitoring/live.py).

Run through deploy/check.sh (`check`) and deploy/generate-manifest.sh (`generate`): they provide the
virtualenv with helm-python-sdk (the Helm v4 engine as a library; no helm binary) and kubernetes-validate.
No network and no cluster are used here.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, Callable

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml

DEPLOY = Path(__file__).resolve().parent
ROOT = DEPLOY.parent
CHART = DEPLOY / "chart" / "akv-csi-provider"
STATIC_MANIFEST = DEPLOY / "provider-azure-installer.yaml"
GO_USER_VALUES = DEPLOY / "testdata" / "go-chart-user-values.yaml"
# The alerts for Prometheus without the operator: the chart's PrometheusRule with default values.
RULES_FILE = DEPLOY / "monitoring" / "akv-csi-provider.rules.yaml"
DASHBOARD = CHART / "dashboards" / "akv-csi-provider.json"
# prometheus-operator's CRDs (v0.93.0, see deploy/testdata/prometheus-operator-crds/README.md).
OPERATOR_VERSION = "0.93.0"
OPERATOR_CRDS = DEPLOY / "testdata" / "prometheus-operator-crds"
OPERATOR_GROUP = "monitoring.coreos.com"
ALERTS = [
    "AkvMountsFailing", "AkvKeyVaultThrottling", "AkvTokenFederationFailing", "AkvTokenImdsFailing",
    "AkvTokenAuthorityFailing", "AkvMountLatencyHigh", "AkvMountsQueueing", "AkvObjectCacheFull",
    "AkvProviderAbsent",
]
MONITORING_ON: dict[str, Any] = {"metrics": {"scrapeAnnotations": True, "podMonitor": {"enabled": True},
                                             "prometheusRule": {"enabled": True},
                                             "grafanaDashboard": {"enabled": True}}}

# Kubernetes minor the rendered objects are validated against (strict schemas): the newest one that the
# pinned kubernetes-validate ships. Raise both together.
KUBE_MINOR = "1.37"
LINT_KUBE_VERSION = f"v{KUBE_MINOR}.0"

# The static manifest is the chart rendered with its defaults for this release, without the driver.
STATIC_RELEASE = "csi-secrets-store-provider-azure"
STATIC_NAMESPACE = "kube-system"
STATIC_VALUES: dict[str, Any] = {"secrets-store-csi-driver": {"install": False}}

DRIVER = "secrets-store-csi-driver"
DRIVER_REPO = "https://kubernetes-sigs.github.io/secrets-store-csi-driver/charts"
MISSING_DEPENDENCY_WARNING = f"chart directory is missing these dependencies: {DRIVER}"
WINDOWS_MESSAGE = "Windows nodes are not supported by this provider"

# Keys of values.yaml that Azure's chart does not have.
OWN_KEYS = [
    "metricsBackend", "otlp", "cloudName", "tokenProxyURL", "sniName", "resolve", "mountTimeout",
    "maxConcurrentFetches", "maxConcurrentMounts", "shutdownGracePeriod", "objectCacheTTL",
    "objectCacheMaxBytes", "maxResponseBytes", "terminationGracePeriodSeconds", "extraArgs", "metrics",
]

DEFAULT_ARGS = [
    "--endpoint=unix:///provider/azure.sock",
    "--construct-pem-chain=true",
    "--healthz-port=8989",
    "--healthz-path=/healthz",
    "--healthz-timeout=5s",
]

# `helm install` applies kinds in this order; the static manifest lists them the same way.
KIND_ORDER = [
    "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodDisruptionBudget", "ServiceAccount",
    "Secret", "ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
    "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service",
    "DaemonSet", "Pod", "ReplicaSet", "Deployment", "StatefulSet", "Job", "CronJob",
]

STATIC_HEADER = f"""\
# akv-csi-provider for the Secrets Store CSI Driver, for clusters without Helm: a drop-in for the Go
# provider's deployment/provider-azure-installer.yaml (same namespace, names, socket directory,
# arguments and probe). Apply with: kubectl apply -f deploy/provider-azure-installer.yaml
#
# GENERATED from deploy/chart/akv-csi-provider with its default values (release
# {STATIC_RELEASE}, namespace {STATIC_NAMESPACE}, {DRIVER}.install=false).
# Do not edit by hand: change the chart, run `bash deploy/generate-manifest.sh` and commit both
# (deploy/check.sh fails while they differ).
#
# Requires the Secrets Store CSI Driver, installed separately with providersDir
# /var/run/secrets-store-csi-providers. For workload identity its CSIDriver object needs
#   tokenRequests: [{{audience: api://AzureADTokenExchange}}]
# (AKS identity binding: also api://AKSIdentityBinding); with the driver's chart:
#   --set tokenRequests[0].audience=api://AzureADTokenExchange
# For rotation it needs requiresRepublish: true (driver's chart: --set enableSecretRotation=true).
"""


class CheckFailed(Exception):
    pass


def require(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def require_eq(actual: Any, expected: Any, what: str) -> None:
    require(actual == expected, f"{what}: expected {expected!r}, got {actual!r}")


# ---------------------------------------------------------------------------------------------------------
# Rendering


def render(values: dict[str, Any] | None, release: str, namespace: str, chart: Path = CHART) -> dict[str, str]:
    """Template path -> rendered text (helm-python-sdk's offline engine; NOTES.txt included)."""
    with helm.Chart.load(str(chart)) as loaded:
        return loaded.render(values, name=release, namespace=namespace)


def documents(rendered: dict[str, str]) -> list[tuple[str, str, dict[str, Any]]]:
    """(template path, document text, object) of every non-empty manifest, in `helm install` order."""
    docs = []
    for path, text in rendered.items():
        if path.endswith("NOTES.txt"):
            continue
        for part in text.split("\n---"):
            part = part.strip("\n")
            obj = yaml.safe_load(part) if part.strip() else None
            if obj is None:
                continue
            require(isinstance(obj, dict) and "kind" in obj, f"{path}: not a Kubernetes object")
            docs.append((path, part, obj))

    def order(doc: tuple[str, str, dict[str, Any]]) -> tuple[int, str, str]:
        kind = doc[2]["kind"]
        rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
        return (rank, doc[0], doc[2]["metadata"]["name"])

    return sorted(docs, key=order)


def static_manifest_text() -> str:
    rendered = render(STATIC_VALUES, STATIC_RELEASE, STATIC_NAMESPACE)
    parts = [STATIC_HEADER.rstrip("\n")]
    for path, text, _ in documents(rendered):
        parts.append(f"---\n# Source: {path}\n{text}")
    return "\n".join(parts) + "\n"


RULES_HEADER = """\
# akv-csi-provider alerts for Prometheus without prometheus-operator: add this file to rule_files.
# Runbooks: the repository README, "Alerts and dashboard".
#
# GENERATED from deploy/chart/akv-csi-provider/templates/prometheusrule.yaml with the chart's default values
# (release csi-secrets-store-provider-azure, namespace kube-system). Do not edit by hand: change the template,
# run `bash deploy/generate-manifest.sh` and commit both (deploy/check.sh fails while they differ).
# Defaults baked in: AkvObjectCacheFull assumes --object-cache-max-bytes 16Mi (16777216) and AkvProviderAbsent
# the driver DaemonSet secrets-store-csi-driver; both need a `node` label on the provider's series.
"""


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as literal blocks."""


def _str_block(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_block)

RULE_KEY_ORDER = ["alert", "record", "expr", "for", "labels", "annotations"]


def rules_groups(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """spec.groups of the chart's PrometheusRule, rendered with `values` plus prometheusRule.enabled."""
    merged = yaml.safe_load(yaml.safe_dump(values or {}))
    merged.setdefault("metrics", {}).setdefault("prometheusRule", {})["enabled"] = True
    merged.setdefault(DRIVER, {}).setdefault("install", False)
    docs = own(documents(render(merged, STATIC_RELEASE, STATIC_NAMESPACE)))
    return only(docs, "PrometheusRule")["spec"]["groups"]


def rules_file_text(values: dict[str, Any] | None = None, header: str = RULES_HEADER) -> str:
    """A Prometheus rules file (rule_files) with the chart's alerts, keys in the usual order."""
    groups = []
    for group in rules_groups(values):
        rules = []
        for rule in group["rules"]:
            rule = {k: rule[k] for k in RULE_KEY_ORDER if k in rule}
            notes = rule.get("annotations", {})
            order = ["summary", "description", "runbook_url"]
            rule["annotations"] = {k: notes[k] for k in sorted(notes, key=lambda k: (order + [k]).index(k))}
            rules.append(rule)
        groups.append({**{k: v for k, v in group.items() if k != "rules"}, "rules": rules})
    body = yaml.dump({"groups": groups}, Dumper=_BlockDumper, sort_keys=False, width=4096, allow_unicode=True)
    return header + body


def render_error(values: dict[str, Any], chart: Path = CHART) -> str | None:
    try:
        render(values, "csi", "kube-system", chart)
    except helm.HelmError as err:
        return err.detail
    return None


# ---------------------------------------------------------------------------------------------------------
# Object helpers


def only(docs: list[tuple[str, str, dict[str, Any]]], kind: str) -> dict[str, Any]:
    found = [obj for _, _, obj in docs if obj["kind"] == kind]
    require_eq(len(found), 1, f"number of {kind} objects")
    return found[0]


def container(daemonset: dict[str, Any]) -> dict[str, Any]:
    containers = daemonset["spec"]["template"]["spec"]["containers"]
    require_eq(len(containers), 1, "containers in the DaemonSet")
    return containers[0]


def kinds(docs: list[tuple[str, str, dict[str, Any]]]) -> str:
    return ", ".join(obj["kind"] for _, _, obj in docs)


def own(docs: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[str, str, dict[str, Any]]]:
    """This chart's objects, without those of the driver chart (rendered only where it is present)."""
    return [doc for doc in docs if doc[0].startswith(f"{CHART.name}/templates/")]


def assert_go_shape(ds: dict[str, Any], namespace: str) -> None:
    """What every DaemonSet of this chart shares with the Go provider's."""
    pod = ds["spec"]["template"]["spec"]
    c = container(ds)
    require_eq(ds["metadata"]["namespace"], namespace, "DaemonSet namespace")
    require_eq(ds["spec"]["selector"], {"matchLabels": {"app": "csi-secrets-store-provider-azure"}}, "selector")
    require_eq(ds["spec"]["template"]["metadata"]["labels"]["app"], "csi-secrets-store-provider-azure", "pod label app")
    require_eq(pod["serviceAccountName"], "csi-secrets-store-provider-azure", "serviceAccountName")
    require_eq(pod["hostNetwork"], True, "hostNetwork")
    require_eq(c["name"], "provider-azure-installer", "container name")
    require_eq(c["args"][0], "--endpoint=unix:///provider/azure.sock", "first argument")
    require_eq(pod["nodeSelector"].get("kubernetes.io/os"), "linux", "nodeSelector kubernetes.io/os")
    sc = c["securityContext"]
    require_eq(sc.get("readOnlyRootFilesystem"), True, "readOnlyRootFilesystem")
    require_eq(sc.get("runAsUser"), 0, "runAsUser")
    require_eq(sc.get("capabilities"), {"drop": ["ALL"]}, "capabilities")
    require_eq(sc.get("seccompProfile"), {"type": "RuntimeDefault"}, "seccompProfile")
    require({"name": "provider-vol", "mountPath": "/provider"} in c["volumeMounts"], "/provider is not mounted")
    probe = c["livenessProbe"]
    require_eq(
        {k: probe[k] for k in ("failureThreshold", "initialDelaySeconds", "timeoutSeconds", "periodSeconds")},
        {"failureThreshold": 3, "initialDelaySeconds": 5, "timeoutSeconds": 10, "periodSeconds": 30},
        "liveness probe timing",
    )


def provider_volume(ds: dict[str, Any]) -> dict[str, Any]:
    vols = [v for v in ds["spec"]["template"]["spec"]["volumes"] if v["name"] == "provider-vol"]
    require_eq(len(vols), 1, "provider-vol volumes")
    return vols[0]


# ---------------------------------------------------------------------------------------------------------
# prometheus-operator custom resources


def _closed(schema: Any) -> Any:
    """The CRD schema made strict: objects with properties accept no other fields unless they say so."""
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _closed(v) for k, v in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    return out


def operator_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict JSON schema of each served version of the CRDs in the test data."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(OPERATOR_CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        require_eq(crd["metadata"]["annotations"].get("operator.prometheus.io/version"), OPERATOR_VERSION,
                   f"{path.name}: operator version")
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schema = _closed(version["schema"]["openAPIV3Schema"])
                # metadata is an ObjectMeta, which the CRD leaves open: check what this chart sets.
                schema["properties"]["metadata"] = {
                    "type": "object",
                    "required": ["name", "namespace"],
                    "properties": {
                        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
                        "namespace": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                        "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}},
                        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                    "additionalProperties": False,
                }
                schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata", "spec"})
                schemas[(f"{group}/{version['name']}", kind)] = schema
    require(len(schemas) >= 2, f"no CRD schemas in {OPERATOR_CRDS.relative_to(ROOT)}")
    return schemas


def validate_custom_resource(obj: dict[str, Any], schemas: dict[tuple[str, str], dict[str, Any]]) -> None:
    key = (obj.get("apiVersion"), obj.get("kind"))
    require(key in schemas, f"no CRD schema for {key} in {OPERATOR_CRDS.relative_to(ROOT)}")
    validator = jsonschema.Draft7Validator(schemas[key])
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path)
        raise CheckFailed(f"{err.message} (at {where}; {len(errors)} error(s))")


# ---------------------------------------------------------------------------------------------------------
# Steps. Each returns the one line it prints; rendered objects to validate are collected in `validated`.


class Checker:
    def __init__(self) -> None:
        self.to_validate: list[tuple[str, dict[str, Any]]] = []
        self.dependency_status = "?"

    def keep(self, label: str, docs: list[tuple[str, str, dict[str, Any]]]) -> None:
        self.to_validate.extend((f"{label}: {path}", obj) for path, _, obj in docs)

    def step_dependency(self) -> str:
        meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
        declared = meta.get("dependencies") or []
        require_eq([d.get("name") for d in declared], [DRIVER], "declared dependencies")
        dep = declared[0]
        require_eq(dep.get("repository"), DRIVER_REPO, "driver chart repository")
        require_eq(dep.get("condition"), f"{DRIVER}.install", "driver chart condition")
        listed = helm.dependency_list(str(CHART))
        require_eq(len(listed), 1, "helm dependency list entries")
        self.dependency_status = listed[0]["status"]
        require(self.dependency_status in ("missing", "ok"), f"driver chart status {self.dependency_status!r}")
        if self.dependency_status == "missing":
            how = ("not downloadable here, so absent: the SDK renders the parent chart alone (no copy needed), "
                   "lint tolerates only its missing-dependency warning")
        else:
            how = "present under charts/ (helm dependency update was run): rendered with the driver"
        return f"dependency: {DRIVER} {dep.get('version')} declared, {how}"

    def lint(self, values: dict[str, Any] | None, label: str) -> str:
        report = helm.lint(str(CHART), values, strict=True, namespace="kube-system",
                           kube_version=LINT_KUBE_VERSION)
        tolerated = []
        problems = []
        for message in report.get("messages", []):
            if message["severity"] < 2:
                continue
            if self.dependency_status == "missing" and message["error"] == MISSING_DEPENDENCY_WARNING:
                tolerated.append(message["error"])
                continue
            problems.append(f"{message['path']}: {message['error']}")
        for error in report.get("errors", []):
            if error not in tolerated and not any(error in p for p in problems):
                problems.append(error)
        require(not problems, "lint: " + "; ".join(problems))
        note = " (tolerated: missing dependency " + DRIVER + ")" if tolerated else ""
        return f"lint {label}: ok, strict, Kubernetes {LINT_KUBE_VERSION}{note}"

    def step_lint(self) -> str:
        self.lint(None, "defaults")
        self.lint(MONITORING_ON, "metrics.* on")
        go_values = yaml.safe_load(GO_USER_VALUES.read_text())
        line = self.lint(go_values, GO_USER_VALUES.name)
        return line.replace(f"lint {GO_USER_VALUES.name}", f"lint defaults, metrics.* on and {GO_USER_VALUES.name}")

    def step_defaults(self) -> str:
        docs = documents(render(None, STATIC_RELEASE, STATIC_NAMESPACE))
        self.keep("defaults", docs)
        docs = own(docs)
        require_eq(kinds(docs), "ServiceAccount, DaemonSet", "objects rendered with defaults")
        sa = only(docs, "ServiceAccount")
        require_eq((sa["metadata"]["name"], sa["metadata"]["namespace"]),
                   ("csi-secrets-store-provider-azure", "kube-system"), "ServiceAccount name, namespace")
        ds = only(docs, "DaemonSet")
        assert_go_shape(ds, "kube-system")
        pod = ds["spec"]["template"]["spec"]
        c = container(ds)
        require_eq(ds["metadata"]["name"], "csi-secrets-store-provider-azure", "DaemonSet name")
        require_eq(c["image"], "akv-csi-provider:0.1.0", "image")
        require_eq(c["imagePullPolicy"], "IfNotPresent", "imagePullPolicy")
        require_eq(c["args"], DEFAULT_ARGS, "args")
        require_eq(c["livenessProbe"]["httpGet"], {"path": "/healthz", "port": 8989}, "liveness probe")
        require_eq(c["ports"], [{"name": "metrics", "containerPort": 8898, "protocol": "TCP"}], "ports")
        require("env" not in c, "env set with defaults")
        require_eq(c["securityContext"].get("allowPrivilegeEscalation"), False, "allowPrivilegeEscalation")
        require("privileged" not in c["securityContext"], "privileged set with defaults")
        limits = {"cpu": "50m", "memory": "100Mi"}
        require_eq(c["resources"], {"requests": limits, "limits": limits}, "resources")
        require_eq(pod["dnsPolicy"], "ClusterFirstWithHostNet", "dnsPolicy")
        require_eq(pod["tolerations"], [{"operator": "Exists"}], "tolerations")
        require_eq(pod["nodeSelector"], {"kubernetes.io/os": "linux"}, "nodeSelector")
        require_eq(provider_volume(ds)["hostPath"], {"path": "/var/run/secrets-store-csi-providers"}, "hostPath")
        require_eq(ds["spec"]["updateStrategy"], {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                   "updateStrategy")
        affinity = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        require_eq(affinity["nodeSelectorTerms"][0]["matchExpressions"][0],
                   {"key": "type", "operator": "NotIn", "values": ["virtual-kubelet"]}, "affinity")
        for absent in ("imagePullSecrets", "priorityClassName", "terminationGracePeriodSeconds"):
            require(absent not in pod, f"{absent} set with defaults")
        with helm.Chart.load(str(CHART)) as loaded:
            values = loaded.merge_values(None)
        driver = values[DRIVER]
        require_eq(driver["tokenRequests"][0], {"audience": "api://AzureADTokenExchange"}, "driver tokenRequests[0]")
        require_eq(driver["linux"]["providersDir"], values["linux"]["providersDir"], "driver providersDir")
        require_eq(driver["linux"]["kubeletRootDir"], values["linux"]["kubeletRootDir"], "driver kubeletRootDir")
        return f"render defaults: {kinds(docs)}; Go provider's DaemonSet shape, args, probe, metrics port 8898"

    def step_go_user(self) -> str:
        v = yaml.safe_load(GO_USER_VALUES.read_text())
        lx = v["linux"]
        docs = documents(render(v, "csi", "kube-system"))
        self.keep(GO_USER_VALUES.name, docs)
        docs = own(docs)
        require_eq(kinds(docs), "DaemonSet", "objects (rbac.install false: no ServiceAccount)")
        ds = only(docs, "DaemonSet")
        assert_go_shape(ds, "kube-system")
        pod = ds["spec"]["template"]["spec"]
        meta = ds["spec"]["template"]["metadata"]
        c = container(ds)
        require_eq(ds["metadata"]["name"], "csi-csi-secrets-store-provider-azure", "DaemonSet name (as Azure's chart)")
        require_eq(c["image"], f"{lx['image']['repository']}:{lx['image']['tag']}", "image")
        require_eq(c["imagePullPolicy"], lx["image"]["pullPolicy"], "imagePullPolicy")
        require_eq(c["args"], [
            "--endpoint=unix:///provider/azure.sock",
            "--log-format-json=true",
            f"-v={v['logVerbosity']}",
            f"--construct-pem-chain={str(v['constructPEMChain']).lower()}",
            f"--custom-user-agent={lx['customUserAgent']}",
            f"--healthz-port={lx['healthzPort']}",
            f"--healthz-path={lx['healthzPath']}",
            f"--healthz-timeout={lx['healthzTimeout']}",
            "--write-cert-and-key-in-separate-files=true",
        ], "args")
        require_eq(c["livenessProbe"]["httpGet"], {"path": lx["healthzPath"], "port": lx["healthzPort"]},
                   "liveness probe")
        require_eq(c["resources"], lx["resources"], "resources")
        require_eq(pod["nodeSelector"], {"kubernetes.io/os": "linux", **lx["nodeSelector"]}, "nodeSelector")
        require_eq(pod["tolerations"], lx["tolerations"], "tolerations")
        for key, value in lx["podLabels"].items():
            require_eq(meta["labels"].get(key), value, f"pod label {key}")
        require_eq(meta["annotations"], lx["podAnnotations"], "pod annotations")
        require_eq(pod["priorityClassName"], lx["priorityClassName"], "priorityClassName")
        require_eq(pod["imagePullSecrets"], v["imagePullSecrets"], "imagePullSecrets")
        require_eq(pod["affinity"], lx["affinity"], "affinity")
        require_eq(ds["spec"]["updateStrategy"], lx["updateStrategy"], "updateStrategy")
        require_eq(provider_volume(ds)["hostPath"], {"path": lx["providersDir"]}, "providersDir hostPath")
        for volume in lx["volumes"]:
            require(volume in pod["volumes"], f"volume {volume['name']} missing")
        for mount in lx["volumeMounts"]:
            require(mount in c["volumeMounts"], f"volumeMount {mount['name']} missing")
        require_eq(c["ports"], [{"name": "metrics", "containerPort": 8898, "protocol": "TCP"}], "ports")
        with helm.Chart.load(str(CHART)) as loaded:
            merged = loaded.merge_values(v)[DRIVER]
        require_eq(merged["tokenRequests"], v[DRIVER]["tokenRequests"], "driver tokenRequests")
        require_eq(merged["enableSecretRotation"], True, "driver enableSecretRotation")
        require_eq(merged["fullnameOverride"], "secrets-store-csi-driver", "driver fullnameOverride (default kept)")
        return (f"render {GO_USER_VALUES.name}: image, {len(c['args'])} args, probe :{lx['healthzPort']}"
                f"{lx['healthzPath']}, labels, annotations, scheduling, volumes, rbac.install=false as written")

    def step_go_keys_only(self) -> str:
        """`helm upgrade --reuse-values` from Azure's chart renders with that chart's values, which lack our
        keys: the templates must not depend on them."""
        with tempfile.TemporaryDirectory(prefix="akv-chart-") as tmp:
            copy_dir = Path(tmp) / CHART.name
            shutil.copytree(CHART, copy_dir, ignore=shutil.ignore_patterns("charts"))
            values = yaml.safe_load((CHART / "values.yaml").read_text())
            for key in OWN_KEYS:
                values.pop(key, None)
            (copy_dir / "values.yaml").write_text(yaml.safe_dump(values))
            docs = documents(render(None, STATIC_RELEASE, STATIC_NAMESPACE, copy_dir))
        self.keep("Azure chart keys only", docs)
        ds = only(docs, "DaemonSet")
        assert_go_shape(ds, "kube-system")
        require_eq(container(ds)["args"], DEFAULT_ARGS, "args")
        require_eq(container(ds)["ports"][0]["containerPort"], 8898, "metrics port")
        return f"render with Azure's keys only (as helm upgrade --reuse-values): {kinds(docs)}, default args"

    def step_names(self) -> str:
        """Object names follow Azure's chart: base name csi-secrets-store-provider-azure, not this chart's."""
        cases = [
            ("csi", {}, "csi-csi-secrets-store-provider-azure", "csi-secrets-store-provider-azure"),
            ("csi-secrets-store-provider-azure-prod", {}, "csi-secrets-store-provider-azure-prod",
             "csi-secrets-store-provider-azure"),
            ("csi", {"nameOverride": "akv"}, "csi-akv", "akv"),
            ("csi", {"fullnameOverride": "akv-provider"}, "akv-provider", "csi-secrets-store-provider-azure"),
        ]
        for release, values, name, app in cases:
            docs = own(documents(render(values, release, "kube-system")))
            ds = only(docs, "DaemonSet")
            require_eq(ds["metadata"]["name"], name, f"DaemonSet name for release {release} with {values}")
            require_eq(ds["spec"]["selector"]["matchLabels"], {"app": app}, f"selector with {values}")
            require_eq(ds["spec"]["template"]["metadata"]["labels"]["app"], app, f"pod label app with {values}")
        return f"names: {len(cases)} release/nameOverride/fullnameOverride cases named as Azure's chart names them"

    def step_own_flags(self) -> str:
        values = {
            "metricsAddr": 9102,
            "metricsBackend": "OTLP",
            "otlp": {"metricsEndpointGrpc": "otel-collector.monitoring:4317", "insecureGrpc": True,
                     "extensionResourceId": "/subscriptions/0/resourceGroups/rg/providers/x/y"},
            "cloudName": "AzureUSGovernmentCloud",
            "tokenProxyURL": "https://10.0.0.1:443",
            "sniName": "kubernetes.default.svc",
            "resolve": ["myvault.vault.azure.net=127.0.0.1:8443", "login.microsoftonline.com=127.0.0.1:9443"],
            "mountTimeout": "2m",
            "maxConcurrentFetches": 4,
            "maxConcurrentMounts": 16,
            "shutdownGracePeriod": "40s",
            "objectCacheTTL": "5m",
            "objectCacheMaxBytes": "64Mi",
            "maxResponseBytes": "8Mi",
            "terminationGracePeriodSeconds": 60,
            "extraArgs": ["--enable-pprof=true"],
            # Maps merge with the defaults, as in every Helm chart; null removes a default (here the CPU limit).
            "linux": {"privileged": True, "dnsPolicy": "",
                      "resources": {"requests": {"cpu": "100m", "memory": "200Mi"},
                                    "limits": {"cpu": None, "memory": "200Mi"}}},
        }
        docs = documents(render(values, STATIC_RELEASE, STATIC_NAMESPACE))
        self.keep("own flags", docs)
        docs = own(docs)
        ds = only(docs, "DaemonSet")
        assert_go_shape(ds, "kube-system")
        pod = ds["spec"]["template"]["spec"]
        c = container(ds)
        require_eq(c["args"], DEFAULT_ARGS + [
            "--prometheus-port=9102",
            "--metrics-backend=otlp",
            "--cloud-name=AzureUSGovernmentCloud",
            "--token-proxy-url=https://10.0.0.1:443",
            "--sni-name=kubernetes.default.svc",
            "--resolve=myvault.vault.azure.net=127.0.0.1:8443",
            "--resolve=login.microsoftonline.com=127.0.0.1:9443",
            "--mount-timeout=2m",
            "--max-concurrent-fetches=4",
            "--max-concurrent-mounts=16",
            "--shutdown-grace-period=40s",
            "--object-cache-ttl=5m",
            "--object-cache-max-bytes=64Mi",
            "--max-response-bytes=8Mi",
            "--enable-pprof=true",
        ], "args")
        require_eq(c["env"], [
            {"name": "otlpMetricsEndpointGrpc", "value": "otel-collector.monitoring:4317"},
            {"name": "otlpInsecureGrpc", "value": "true"},
            {"name": "EXTENSION_RESOURCE_ID", "value": "/subscriptions/0/resourceGroups/rg/providers/x/y"},
        ], "env")
        require("ports" not in c, "metrics port declared with metricsBackend otlp")
        require_eq(c["securityContext"].get("privileged"), True, "privileged")
        require("allowPrivilegeEscalation" not in c["securityContext"], "allowPrivilegeEscalation with privileged")
        require("dnsPolicy" not in pod, "dnsPolicy rendered although empty")
        require_eq(pod["terminationGracePeriodSeconds"], 60, "terminationGracePeriodSeconds")
        require_eq(c["resources"], {"requests": {"cpu": "100m", "memory": "200Mi"}, "limits": {"memory": "200Mi"}},
                   "resources override")

        docs = documents(render({"metricsAddr": ":9102"}, STATIC_RELEASE, STATIC_NAMESPACE))
        self.keep("metricsAddr", docs)
        docs = own(docs)
        c = container(only(docs, "DaemonSet"))
        require_eq(c["args"], DEFAULT_ARGS + ["--prometheus-port=9102"], "args with metricsAddr :9102")
        require_eq(c["ports"], [{"name": "metrics", "containerPort": 9102, "protocol": "TCP"}], "ports")

        # Byte sizes: a plain number of bytes (YAML integer or string) and each suffix pass as the daemon reads
        # them; "" and 0 pass nothing (the daemon's default).
        sizes = [
            ({"objectCacheMaxBytes": 1048576, "maxResponseBytes": "65536"},
             ["--object-cache-max-bytes=1048576", "--max-response-bytes=65536"]),
            ({"objectCacheMaxBytes": "512Ki", "maxResponseBytes": "4Gi"},
             ["--object-cache-max-bytes=512Ki", "--max-response-bytes=4Gi"]),
            ({"objectCacheMaxBytes": "1Gi", "maxResponseBytes": "64Ki"},
             ["--object-cache-max-bytes=1Gi", "--max-response-bytes=64Ki"]),
            ({"objectCacheMaxBytes": 0, "maxResponseBytes": "0"}, []),
            ({"objectCacheMaxBytes": "", "maxResponseBytes": None}, []),
            # The driver's limit is followed when maxResponseBytes is not set (a raised driver limit
            # must not leave the provider refusing what the driver accepts); its default passes nothing.
            ({"secrets-store-csi-driver": {"maxCallRecvMsgSize": 8388608}}, ["--max-response-bytes=8388608"]),
            ({"secrets-store-csi-driver": {"maxCallRecvMsgSize": "16Mi"}}, ["--max-response-bytes=16Mi"]),
            ({"secrets-store-csi-driver": {"maxCallRecvMsgSize": 4194304}}, []),
            ({"maxResponseBytes": "2Mi", "secrets-store-csi-driver": {"maxCallRecvMsgSize": 8388608}},
             ["--max-response-bytes=2Mi"]),
        ]
        for values, expected in sizes:
            docs = own(documents(render(values, STATIC_RELEASE, STATIC_NAMESPACE)))
            self.keep(f"sizes {values}", docs)
            require_eq(container(only(docs, "DaemonSet"))["args"], DEFAULT_ARGS + expected, f"args with {values}")
        return ("render own flags: 14 flags and extraArgs appended, OTLP env, metricsAddr -> --prometheus-port, "
                f"privileged, terminationGracePeriodSeconds; {len(sizes)} byte-size cases")

    def step_refusals(self) -> str:
        cases: list[tuple[str, dict[str, Any], str]] = [
            ("windows.enabled=true", {"windows": {"enabled": True}}, WINDOWS_MESSAGE),
            ("enableArcExtension=true", {"enableArcExtension": True}, "Arc extension mode"),
            ("providersDir mismatch", {"linux": {"providersDir": "/x"}}, "the driver would not find"),
            ("metricsBackend=statsd", {"metricsBackend": "statsd"}, "metricsBackend must be"),
            ("metricsAddr=abc", {"metricsAddr": "abc"}, "metricsAddr must be a port number"),
            ("podMonitor with otlp", {"metricsBackend": "otlp", "metrics": {"podMonitor": {"enabled": True}}},
             "need metricsBackend Prometheus"),
            ("scrapeAnnotations with otlp", {"metricsBackend": "otlp", "metrics": {"scrapeAnnotations": True}},
             "need metricsBackend Prometheus"),
            # The daemon's own refusals (src/config/flags.rs parse_size), made at render time instead.
            ("objectCacheMaxBytes=16MB", {"objectCacheMaxBytes": "16MB"},
             'objectCacheMaxBytes must be a size such as 16Mi, 512Ki or 1048576 (at most 4Gi), got "16MB"'),
            ("objectCacheMaxBytes=1.5Mi", {"objectCacheMaxBytes": "1.5Mi"}, "objectCacheMaxBytes must be a size"),
            ("objectCacheMaxBytes=-1", {"objectCacheMaxBytes": -1}, "objectCacheMaxBytes must be a size"),
            ("objectCacheMaxBytes=1.5", {"objectCacheMaxBytes": 1.5}, "objectCacheMaxBytes must be a size"),
            ("objectCacheMaxBytes=5Gi", {"objectCacheMaxBytes": "5Gi"}, "objectCacheMaxBytes must be a size"),
            ("objectCacheMaxBytes=4294967297", {"objectCacheMaxBytes": "4294967297"},
             "objectCacheMaxBytes must be a size"),
            ("objectCacheMaxBytes=99999999999Gi", {"objectCacheMaxBytes": "99999999999Gi"},
             "objectCacheMaxBytes must be a size"),
            ("maxResponseBytes=4M", {"maxResponseBytes": "4M"}, "maxResponseBytes must be a size"),
            ("maxResponseBytes=\" 4Mi\"", {"maxResponseBytes": " 4Mi"}, "maxResponseBytes must be a size"),
            ("maxResponseBytes=8Gi", {"maxResponseBytes": "8Gi"}, "maxResponseBytes must be a size"),
            ("maxResponseBytes=63Ki", {"maxResponseBytes": "63Ki"},
             'maxResponseBytes must be at least 64Ki, got "63Ki"'),
            ("maxResponseBytes=65535", {"maxResponseBytes": 65535}, "maxResponseBytes must be at least 64Ki"),
            ("driver maxCallRecvMsgSize=1000", {"secrets-store-csi-driver": {"maxCallRecvMsgSize": 1000}},
             "secrets-store-csi-driver.maxCallRecvMsgSize must be at least 64Ki"),
        ]
        for label, values, expected in cases:
            error = render_error(values)
            require(error is not None, f"{label}: rendered without error")
            require(expected in error, f"{label}: error {error!r} lacks {expected!r}")
        # Also with the driver and the Linux provider disabled: the refusal does not depend on them.
        require(WINDOWS_MESSAGE in (render_error({"windows": {"enabled": True}, "linux": {"enabled": False},
                                                  DRIVER: {"install": False}}) or ""),
                "windows.enabled=true with linux disabled: not refused")
        return (f"refusals: {len(cases)} cases fail to render with their message; "
                f"windows.enabled=true -> \"{WINDOWS_MESSAGE} ...\"")

    def step_monitoring(self) -> str:
        """Everything of metrics.* on: the PodMonitor finds the DaemonSet's pods and port, the annotations name
        the port, the PrometheusRule has every alert, the ConfigMap carries the dashboard for the sidecar."""
        for values, port in ((MONITORING_ON, 8898), ({**MONITORING_ON, "metricsAddr": ":9102"}, 9102)):
            docs = documents(render(values, STATIC_RELEASE, STATIC_NAMESPACE))
            self.keep(f"monitoring on, port {port}", docs)
            docs = own(docs)
            require_eq(kinds(docs), "ServiceAccount, ConfigMap, DaemonSet, PodMonitor, PrometheusRule",
                       "objects with monitoring on")
            ds = only(docs, "DaemonSet")
            assert_go_shape(ds, "kube-system")
            pod_labels = ds["spec"]["template"]["metadata"]["labels"]
            require_eq(ds["spec"]["template"]["metadata"].get("annotations"),
                       {"prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": "/metrics"},
                       "scrape annotations")
            pm = only(docs, "PodMonitor")
            require_eq(pm["metadata"]["namespace"], "kube-system", "PodMonitor namespace")
            require_eq(pm["spec"]["namespaceSelector"], {"matchNames": ["kube-system"]}, "PodMonitor namespaceSelector")
            selector = pm["spec"]["selector"]["matchLabels"]
            require(all(pod_labels.get(k) == v for k, v in selector.items()),
                    f"PodMonitor selector {selector} does not select the pods ({pod_labels})")
            (endpoint,) = pm["spec"]["podMetricsEndpoints"]
            ports = {p["name"]: p["containerPort"] for p in container(ds)["ports"]}
            require_eq(ports.get(endpoint["port"]), port, "the PodMonitor's port in the container")
            require_eq((endpoint["path"], endpoint["interval"]), ("/metrics", "30s"), "PodMonitor path, interval")
            require_eq(endpoint["relabelings"], [{"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_node_name"],
                                                  "targetLabel": "node"}], "PodMonitor relabelings")
            rule = only(docs, "PrometheusRule")
            (group,) = rule["spec"]["groups"]
            require_eq([r["alert"] for r in group["rules"]], ALERTS, "alerts")
            for r in group["rules"]:
                require(r["labels"].get("severity") in ("warning", "critical"), f"{r['alert']}: severity")
                require(r["annotations"].get("summary") and r["annotations"].get("description"),
                        f"{r['alert']}: summary and description")
                require("runbook_url" not in r["annotations"], f"{r['alert']}: runbook_url without runbookBaseURL")
            cache = next(r for r in group["rules"] if r["alert"] == "AkvObjectCacheFull")
            require_eq(cache["expr"], "akv_object_cache_bytes >= 0.9 * 16777216", "AkvObjectCacheFull with the default bound")
            absent = next(r for r in group["rules"] if r["alert"] == "AkvProviderAbsent")
            require('created_by_name="secrets-store-csi-driver"' in absent["expr"], "AkvProviderAbsent driver name")
            cm = only(docs, "ConfigMap")
            require_eq(cm["metadata"]["labels"].get("grafana_dashboard"), "1", "dashboard ConfigMap sidecar label")
            require_eq(list(cm["data"]), ["akv-csi-provider.json"], "dashboard ConfigMap keys")
            require_eq(json.loads(cm["data"]["akv-csi-provider.json"]), json.loads(DASHBOARD.read_text()),
                       "dashboard in the ConfigMap")
        # Off by default, and off with everything but one switch.
        for key in ("podMonitor", "prometheusRule", "grafanaDashboard"):
            docs = own(documents(render({"metrics": {key: {"enabled": True}}}, STATIC_RELEASE, STATIC_NAMESPACE)))
            kind = {"podMonitor": "PodMonitor", "prometheusRule": "PrometheusRule", "grafanaDashboard": "ConfigMap"}[key]
            require_eq(kinds(docs), ", ".join(k for k in ("ServiceAccount", "ConfigMap", "DaemonSet", "PodMonitor",
                                                              "PrometheusRule") if k in ("ServiceAccount", "DaemonSet", kind)),
                       f"objects with only metrics.{key}.enabled")
            require("annotations" not in only(docs, "DaemonSet")["spec"]["template"]["metadata"],
                    f"scrape annotations with only metrics.{key}.enabled")
        return (f"render monitoring: PodMonitor selects the pods and their metrics port (8898, 9102) with a node "
                f"label, scrape annotations, PrometheusRule with {len(ALERTS)} alerts, dashboard ConfigMap "
                f"for the Grafana sidecar; each off unless enabled")

    def step_monitoring_options(self) -> str:
        values = {
            "linux": {"podAnnotations": {"prometheus.io/scrape": "false", "team": "a"}},
            "objectCacheMaxBytes": "64Mi",
            "secrets-store-csi-driver": {"fullnameOverride": "csi-driver"},
            "metrics": {
                "scrapeAnnotations": True,
                "podMonitor": {"enabled": True, "namespace": "monitoring",
                               "labels": {"release": "kube-prometheus-stack", "app": "not-replaced"},
                               "annotations": {"a": "b"}, "interval": "15s", "scrapeTimeout": "10s",
                               "honorLabels": True,
                               "relabelings": [{"action": "replace", "targetLabel": "cluster", "replacement": "c1"}],
                               "metricRelabelings": [{"action": "drop", "sourceLabels": ["__name__"],
                                                      "regex": "keyvault_request_bucket"}]},
                "prometheusRule": {"enabled": True, "namespace": "monitoring",
                                   "labels": {"release": "kube-prometheus-stack"},
                                   "additionalRuleLabels": {"team": "platform", "severity": "ignored"},
                                   "disabled": {"AkvObjectCacheFull": True, "AkvMountsQueueing": True},
                                   "severity": {"AkvMountsFailing": "warning"},
                                   "runbookBaseURL": "https://git.example.com/akv/blob/main/README.md"},
                "grafanaDashboard": {"enabled": True, "namespace": "grafana", "labels": {"grafana_dashboard": "yes"},
                                     "annotations": {"grafana_folder": "Secrets"}},
            },
        }
        docs = documents(render(values, "csi", "kube-system"))
        self.keep("monitoring options", docs)
        docs = own(docs)
        ds = only(docs, "DaemonSet")
        require_eq(ds["spec"]["template"]["metadata"]["annotations"],
                   {"prometheus.io/scrape": "false", "team": "a", "prometheus.io/port": "8898",
                    "prometheus.io/path": "/metrics"}, "podAnnotations win over the scrape annotations")
        pm = only(docs, "PodMonitor")
        require_eq(pm["metadata"]["namespace"], "monitoring", "PodMonitor namespace")
        require_eq(pm["metadata"]["labels"]["release"], "kube-prometheus-stack", "PodMonitor label")
        require_eq(pm["metadata"]["labels"]["app"], "csi-secrets-store-provider-azure", "chart label kept")
        require_eq(pm["metadata"]["annotations"], {"a": "b"}, "PodMonitor annotations")
        require_eq(pm["spec"]["namespaceSelector"], {"matchNames": ["kube-system"]}, "pods' namespace selected")
        (endpoint,) = pm["spec"]["podMetricsEndpoints"]
        require_eq((endpoint["interval"], endpoint["scrapeTimeout"], endpoint["honorLabels"]), ("15s", "10s", True),
                   "interval, scrapeTimeout, honorLabels")
        require_eq([r["targetLabel"] for r in endpoint["relabelings"]], ["node", "cluster"], "relabelings appended")
        require_eq(endpoint["metricRelabelings"], values["metrics"]["podMonitor"]["metricRelabelings"], "metricRelabelings")
        rule = only(docs, "PrometheusRule")
        require_eq(rule["metadata"]["namespace"], "monitoring", "PrometheusRule namespace")
        (group,) = rule["spec"]["groups"]
        names = [r["alert"] for r in group["rules"]]
        require_eq(names, [a for a in ALERTS if a not in ("AkvObjectCacheFull", "AkvMountsQueueing")], "disabled alerts")
        for r in group["rules"]:
            require_eq(r["labels"]["team"], "platform", f"{r['alert']}: additionalRuleLabels")
            require(r["labels"]["severity"] in ("warning", "critical"), f"{r['alert']}: severity replaced by additionalRuleLabels")
            require_eq(r["annotations"]["runbook_url"],
                       f"https://git.example.com/akv/blob/main/README.md#{r['alert'].lower()}", "runbook_url")
        failing = next(r for r in group["rules"] if r["alert"] == "AkvMountsFailing")
        require_eq(failing["labels"]["severity"], "warning", "severity override")
        absent = next(r for r in group["rules"] if r["alert"] == "AkvProviderAbsent")
        require('created_by_name="csi-driver"' in absent["expr"], "driver DaemonSet from the driver's fullnameOverride")
        values["metrics"]["prometheusRule"]["disabled"] = {}
        values["metrics"]["prometheusRule"]["driverDaemonSet"] = "my-driver"
        group = only(own(documents(render(values, "csi", "kube-system"))), "PrometheusRule")["spec"]["groups"][0]
        cache = next(r for r in group["rules"] if r["alert"] == "AkvObjectCacheFull")
        require_eq(cache["expr"], "akv_object_cache_bytes >= 0.9 * 67108864", "AkvObjectCacheFull with objectCacheMaxBytes 64Mi")
        absent = next(r for r in group["rules"] if r["alert"] == "AkvProviderAbsent")
        require('created_by_name="my-driver"' in absent["expr"], "driverDaemonSet")
        cm = only(docs, "ConfigMap")
        require_eq((cm["metadata"]["namespace"], cm["metadata"]["name"]), ("grafana", "csi-csi-secrets-store-provider-azure-dashboard"),
                   "dashboard ConfigMap namespace, name")
        require_eq(cm["metadata"]["labels"]["grafana_dashboard"], "yes", "dashboard label")
        require_eq(cm["metadata"]["annotations"], {"grafana_folder": "Secrets"}, "dashboard annotations")
        return ("render monitoring options: namespaces, labels (chart's kept), interval/timeout/honorLabels, "
                "relabelings appended, disabled alerts, severity, additionalRuleLabels, runbook_url, cache bound "
                "and driver name in the rules, sidecar label and folder")

    def step_rules_file(self) -> str:
        expected = rules_file_text()
        actual = RULES_FILE.read_text() if RULES_FILE.exists() else ""
        if actual != expected:
            import difflib

            diff = "".join(list(difflib.unified_diff(
                actual.splitlines(keepends=True), expected.splitlines(keepends=True),
                f"{RULES_FILE.relative_to(ROOT)} (committed)", "chart output"))[:40])
            raise CheckFailed(
                f"{RULES_FILE.relative_to(ROOT)} differs from the chart's PrometheusRule; regenerate it with "
                f"`bash deploy/generate-manifest.sh` and commit both.\n{diff}")
        alerts = [r["alert"] for g in yaml.safe_load(actual)["groups"] for r in g["rules"]]
        require_eq(alerts, ALERTS, "alerts in the rules file")
        return f"rules file: {RULES_FILE.relative_to(ROOT)} matches the chart's PrometheusRule ({len(alerts)} alerts)"

    def step_validate(self) -> str:
        count = 0
        custom = 0
        schemas = operator_schemas()
        for label, obj in self.to_validate:
            name = f"{label} {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
            if str(obj.get("apiVersion", "")).startswith(OPERATOR_GROUP + "/"):
                try:
                    validate_custom_resource(obj, schemas)
                except CheckFailed as err:
                    raise CheckFailed(f"{name}: prometheus-operator {OPERATOR_VERSION} CRD schema: {err}") from None
                custom += 1
                continue
            try:
                version = kubernetes_validate.validate(obj, KUBE_MINOR, strict=True)
            except kubernetes_validate.ValidationError as err:
                where = "/".join(str(p) for p in err.path)
                raise CheckFailed(f"{name}: {err.message} (at {where})") from None
            except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as err:
                raise CheckFailed(f"{name}: {err.message}") from None
            require_eq(version, KUBE_MINOR, f"{name}: schema version used")
            count += 1
        require(count > 0, "nothing was validated")
        latest = kubernetes_validate.latest_version()
        require(latest.startswith(KUBE_MINOR + "."), f"kubernetes-validate's newest schemas are {latest}, "
                f"KUBE_MINOR is {KUBE_MINOR}: raise KUBE_MINOR")
        require(custom > 0, "no PodMonitor or PrometheusRule was validated")
        # The schemas reject what the API server would prune or refuse: a misspelt field, a bad duration.
        docs = own(documents(render(MONITORING_ON, STATIC_RELEASE, STATIC_NAMESPACE)))
        pm, rule = only(docs, "PodMonitor"), only(docs, "PrometheusRule")
        bad = [
            ("misspelt podMetricsEndpoints field", pm, lambda o: o["spec"]["podMetricsEndpoints"][0].update(intervall="30s")),
            ("interval not a duration", pm, lambda o: o["spec"]["podMetricsEndpoints"][0].update(interval="30 seconds")),
            ("rule for: not a duration", rule, lambda o: o["spec"]["groups"][0]["rules"][0].update({"for": "5 min"})),
            ("rule without expr", rule, lambda o: o["spec"]["groups"][0]["rules"][0].pop("expr")),
        ]
        for what, obj, mutate in bad:
            broken = json.loads(json.dumps(obj))
            mutate(broken)
            try:
                validate_custom_resource(broken, schemas)
            except CheckFailed:
                continue
            raise CheckFailed(f"the CRD schema accepted a {obj['kind']} with a {what}")
        return (f"validate: {count} rendered objects valid for Kubernetes {KUBE_MINOR} (kubernetes-validate, strict), "
                f"{custom} against prometheus-operator {OPERATOR_VERSION}'s CRD schemas (jsonschema, closed objects)")

    def step_static(self) -> str:
        expected = static_manifest_text()
        actual = STATIC_MANIFEST.read_text() if STATIC_MANIFEST.exists() else ""
        if actual != expected:
            import difflib

            diff = "".join(list(difflib.unified_diff(
                actual.splitlines(keepends=True), expected.splitlines(keepends=True),
                f"{STATIC_MANIFEST.relative_to(ROOT)} (committed)", "chart output"))[:40])
            raise CheckFailed(
                f"{STATIC_MANIFEST.relative_to(ROOT)} differs from the chart's output; regenerate it with "
                f"`bash deploy/generate-manifest.sh` and commit both.\n{diff}")
        docs = documents(render(STATIC_VALUES, STATIC_RELEASE, STATIC_NAMESPACE))
        return f"static manifest: {STATIC_MANIFEST.relative_to(ROOT)} matches the chart ({kinds(docs)})"


def check() -> int:
    checker = Checker()
    steps: list[Callable[[], str]] = [
        checker.step_dependency,
        checker.step_lint,
        checker.step_defaults,
        checker.step_go_user,
        checker.step_go_keys_only,
        checker.step_names,
        checker.step_own_flags,
        checker.step_refusals,
        checker.step_monitoring,
        checker.step_monitoring_options,
        checker.step_validate,
        checker.step_static,
        checker.step_rules_file,
    ]
    failed = 0
    for step in steps:
        name = step.__name__.removeprefix("step_")
        try:
            print(step(), flush=True)
        except CheckFailed as err:
            failed += 1
            print(f"FAIL {name}: {err}", flush=True)
        except helm.HelmError as err:
            failed += 1
            print(f"FAIL {name}: helm: {err.detail}", flush=True)
        except Exception:  # a bug in the check or an SDK error: show it, count it
            failed += 1
            print(f"FAIL {name}: unexpected error\n{traceback.format_exc()}", flush=True)
    if failed:
        print(f"deploy check: FAILED ({failed} of {len(steps)} steps)")
        return 1
    print(f"deploy check: ok ({len(steps)} steps)")
    return 0


def generate() -> int:
    for path, text in ((STATIC_MANIFEST, static_manifest_text()), (RULES_FILE, rules_file_text())):
        old = path.read_text() if path.exists() else None
        path.write_text(text)
        state = "unchanged" if old == text else "written"
        print(f"{path.relative_to(ROOT)}: {state}")
    return 0


def rules(values_file: str | None, out: str) -> int:
    """The chart's alerts as a rules file, with a values file (deploy/monitoring/live.py renders the bound of
    its test daemon in)."""
    values = yaml.safe_load(Path(values_file).read_text()) if values_file else None
    Path(out).write_text(rules_file_text(values, header=f"# rendered from the chart with {values_file}\n"))
    return 0


if __name__ == "__main__":
    if len(sys.argv) in (3, 4) and sys.argv[1] == "rules":
        sys.exit(rules(sys.argv[3] if len(sys.argv) == 4 else None, sys.argv[2]))
    commands = {"check": check, "generate": generate}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        print(f"usage: {sys.argv[0]} check|generate|rules OUT [VALUES]", file=sys.stderr)
        sys.exit(2)
    sys.exit(commands[sys.argv[1]]())

"""Renders the chart as deploy/image-check.sh runs it: the DaemonSet's pod template as a Pod for
`podman kube play`.

Values: the chart's defaults plus only what the check needs (the image, `resolve` to the emulator, the
hostPath root of the providers directory, and the emulator's CA through the chart's own linux.volumes /
linux.volumeMounts, mounted where the image's CA bundle is, as an operator with a private CA would).
Then, and nothing else, what podman 4.3 cannot take, each said on standard error:
- the DaemonSet kind: the pod template becomes a Pod (podman has no DaemonSet);
- the container's `ports`: refused by podman together with hostNetwork (the port is the host's anyway);
- the livenessProbe: podman turns httpGet into `curl` run by a shell inside the container, and this
  image has neither (the check asks /healthz from the host instead, as the kubelet does);
- terminationGracePeriodSeconds is kept, but podman 4.3 ignores it (stop timeout 10 s): the check
  passes it to `podman pod stop --time` itself.
Prints a JSON summary (what the check asserts against) on standard output.

Usage: deploy/image/pod_spec.py --image IMG --providers-dir DIR --ca-dir DIR --resolve H=A:P... --out POD.yaml
       [--writable-rootfs]   (self-test only: the broken pod spec the check must refuse)
Run with the deploy virtualenv's python (deploy/venv.sh), which has helm-python-sdk.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import chart_check  # noqa: E402  (deploy/chart_check.py: the chart's offline renderer)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--image", required=True, help="REPOSITORY:TAG")
    parser.add_argument("--providers-dir", required=True)
    parser.add_argument("--ca-dir", required=True)
    parser.add_argument("--resolve", action="append", default=[])
    parser.add_argument("--out", required=True)
    parser.add_argument("--writable-rootfs", action="store_true")
    args = parser.parse_args()
    repository, tag = args.image.rsplit(":", 1)
    values = {
        "linux": {
            "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
            "providersDir": args.providers_dir,
            "volumes": [{"name": "check-ca", "hostPath": {"path": args.ca_dir, "type": "Directory"}}],
            "volumeMounts": [{"name": "check-ca", "mountPath": "/etc/ssl/certs", "readOnly": True}],
        },
        "resolve": args.resolve,
        "secrets-store-csi-driver": {"install": False},
    }
    rendered = chart_check.render(values, chart_check.STATIC_RELEASE, chart_check.STATIC_NAMESPACE)
    docs = chart_check.documents(rendered)
    ds = chart_check.only(docs, "DaemonSet")
    template = ds["spec"]["template"]
    spec = template["spec"]
    container = chart_check.container(ds)
    stripped = ["kind DaemonSet: its pod template runs as a Pod"]
    if container.pop("ports", None) is not None:
        stripped.append("container ports (podman refuses them with hostNetwork)")
    if container.pop("livenessProbe", None) is not None:
        stripped.append("livenessProbe (podman runs httpGet as `curl` in a shell inside the container; "
                        "the check asks /healthz from the host)")
    if args.writable_rootfs:
        container["securityContext"]["readOnlyRootFilesystem"] = False
        stripped.append("SELF-TEST: readOnlyRootFilesystem set to false")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": ds["metadata"]["name"], "labels": template["metadata"]["labels"]},
        "spec": spec,
    }
    Path(args.out).write_text(yaml.safe_dump(pod, sort_keys=False))
    for line in stripped:
        print(f"pod spec: not given to podman: {line}", file=sys.stderr)
    summary = {
        "pod": pod["metadata"]["name"],
        "container": container["name"],
        "args": container["args"],
        "runAsUser": container["securityContext"]["runAsUser"],
        # Kubernetes' default when the chart sets none.
        "terminationGracePeriodSeconds": spec.get("terminationGracePeriodSeconds", 30),
        "healthz": f"http://127.0.0.1:{_arg(container['args'], '--healthz-port', '8989')}"
                   f"{_arg(container['args'], '--healthz-path', '/healthz')}",
        "metricsPort": int(_arg(container["args"], "--prometheus-port", "8898")),
        "stripped": stripped,
    }
    print(json.dumps(summary))
    return 0


def _arg(args: list[str], flag: str, default: str) -> str:
    for a in args:
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return default


if __name__ == "__main__":
    sys.exit(main())

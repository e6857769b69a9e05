"""Checks of the Grafana dashboard (deploy/chart/akv-csi-provider/dashboards/akv-csi-provider.json), stdlib only.

  python3 deploy/monitoring/dashboard.py check          structure: ids, layout, data source, the $node filter,
                                                        and that the panels cover every metric the issue asks for
  python3 deploy/monitoring/dashboard.py rules OUT      every panel expression as a recording rule (JSON, which
                                                        is YAML), for `promtool check rules OUT`

deploy/monitoring/live.py imports it to run every panel query against a real Prometheus and to compare the
metric names the expressions use with what the daemon's /metrics exports.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "chart" / "akv-csi-provider" / "dashboards" / "akv-csi-provider.json"

# What the panels must show between them (the list), by the series they read.
REQUIRED_METRICS = {
    "akv_mount_duration_seconds_count": "Mounts per second by outcome",
    "akv_mount_duration_seconds_bucket": "Mount latency p50/p99",
    "keyvault_request_count": "Key Vault requests by status",
    "akv_keyvault_throttled_total": "Key Vault 429s by vault",
    "akv_keyvault_throttle_wait_seconds_total": "throttle wait",
    "akv_token_cache_total": "token cache hits",
    "akv_token_requests_total": "token exchanges",
    "akv_object_cache_entries": "object cache entries",
    "akv_object_cache_bytes": "object cache bytes",
    "akv_mounts_in_flight": "Mounts in flight",
    "akv_mounts_queued": "Mounts queued",
    "akv_build_info": "build info by version",
}

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
            "offset", "inf", "nan"}
NODE_FILTER = 'node=~"$node"'


def load(path: Path = DASHBOARD) -> dict:
    return json.loads(path.read_text())


def targets(dashboard: dict) -> list[tuple[dict, dict]]:
    """(panel, target) of every query panel, rows included (collapsed rows keep their panels inside)."""
    out = []
    for panel in dashboard["panels"]:
        for p in [panel] + panel.get("panels", []):
            for t in p.get("targets", []):
                out.append((p, t))
    return out


def concrete(expr: str, rate_interval: str = "5m") -> str:
    """The expression as Prometheus gets it from Grafana with every node selected."""
    return expr.replace("$__rate_interval", rate_interval).replace("$node", ".*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (strings, label matchers, ranges and label lists removed;
    identifiers followed by "(" are functions or aggregations)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b\d[\w.]*", " ", text)  # numbers and durations (offset 5m)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        rest = text[match.end():].lstrip()
        if rest.startswith("(") or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def check(dashboard: dict) -> list[str]:
    problems = []
    for key in ("uid", "title", "schemaVersion", "panels", "templating"):
        if key not in dashboard:
            problems.append(f"no {key}")
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    if variables.get("datasource", {}).get("type") != "datasource" or variables["datasource"].get("query") != "prometheus":
        problems.append("no Prometheus data source variable named datasource")
    node = variables.get("node", {})
    if not (node.get("includeAll") and node.get("allValue") == ".*" and "akv_build_info" in node.get("definition", "")):
        problems.append("the node variable must include All (.*) and come from akv_build_info")
    ids = [p["id"] for p in dashboard["panels"]]
    if len(ids) != len(set(ids)):
        problems.append(f"panel ids repeat: {ids}")
    cells: dict[tuple[int, int], int] = {}
    for p in dashboard["panels"]:
        g = p["gridPos"]
        if g["x"] < 0 or g["x"] + g["w"] > 24:
            problems.append(f"panel {p['id']} ({p['title']}) is outside the 24-column grid")
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    problems.append(f"panel {p['id']} overlaps panel {cells[(x, y)]}")
                    break
                cells[(x, y)] = p["id"]
            else:
                continue
            break
        if p["type"] == "row":
            continue
        if p.get("datasource") != {"type": "prometheus", "uid": "${datasource}"}:
            problems.append(f"panel {p['id']} ({p['title']}) does not use the datasource variable")
        if not p.get("targets") or not p.get("description"):
            problems.append(f"panel {p['id']} ({p['title']}) has no query or no description")
        refs = [t.get("refId") for t in p.get("targets", [])]
        if len(refs) != len(set(refs)):
            problems.append(f"panel {p['id']} repeats a refId")
    read = set()
    for p, t in targets(dashboard):
        expr = t.get("expr", "")
        names = metric_names(concrete(expr))
        read |= names
        if not names:
            problems.append(f"panel {p['id']} ({p['title']}): {expr!r} reads no metric")
        for name in names:
            for m in re.finditer(re.escape(name) + r"(\{[^}]*\})?", expr):
                if NODE_FILTER not in (m.group(1) or ""):
                    problems.append(f"panel {p['id']} ({p['title']}): {name} is not filtered by {NODE_FILTER}")
    for name, what in REQUIRED_METRICS.items():
        if name not in read:
            problems.append(f"no panel reads {name} ({what})")
    return problems


def recording_rules(dashboard: dict) -> dict:
    rules = [{"record": f"akv_dashboard:panel{p['id']}_{t['refId']}", "expr": concrete(t["expr"])}
             for p, t in targets(dashboard)]
    return {"groups": [{"name": "akv-csi-provider-dashboard", "rules": rules}]}


def main(argv: list[str]) -> int:
    dashboard = load()
    if argv[1:2] == ["check"]:
        problems = check(dashboard)
        for problem in problems:
            print(f"FAIL dashboard: {problem}")
        if problems:
            return 1
        panels = [p for p in dashboard["panels"] if p["type"] != "row"]
        print(f"dashboard: {len(panels)} panels, {len(targets(dashboard))} queries; every metric of the issue's "
              f"list shown, every selector filtered by $node, layout within the grid")
        return 0
    if len(argv) == 3 and argv[1] == "rules":
        Path(argv[2]).write_text(json.dumps(recording_rules(dashboard), indent=2) + "\n")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The shipped Prometheus rules, their unit tests, the scrape config and the Grafana dashboard.

promtool must be installed (CI installs it): a missing promtool fails these tests, it does not
skip them. Every metric an alert or a panel uses must be one `dialler.metrics` defines.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialler import metrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "ops" / "prometheus"
RULES = PROMETHEUS / "dialler-rules.yml"
RULE_TESTS = PROMETHEUS / "dialler-rules.test.yml"
CONFIG = PROMETHEUS / "prometheus.yml"
DASHBOARD = ROOT / "ops" / "grafana" / "dialler-dashboard.json"
METRIC_NAME = re.compile(r"\bdialler_[a-z_]+")
ALERTS = {
    "DiallerCampaignStalled",
    "DiallerSipErrorStorm",
    "DiallerFleetSaturated",
    "DiallerInFlightBuildUp",
    "DiallerAmiDown",
    "DiallerAsteriskServerUnused",
    "DiallerDatabaseUnreachable",
    "DiallerDown",
    "DiallerCarrierThrottled",
    "DiallerAbandonRateHigh",
}


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(tool).exists():
        pytest.fail("promtool is not installed (Debian: apt-get install prometheus)")
    return subprocess.run(
        [tool, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def exposed_names() -> set[str]:
    """Every sample name `metrics.REGISTRY` exposes, as PromQL sees it."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {
        family.name + suffix
        for family in metrics.REGISTRY.collect()
        for suffix in suffixes[family.type]
    }


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # panels inside a collapsed row


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [target["expr"] for panel in panels(dashboard) for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


@pytest.mark.parametrize(
    ("args", "path"),
    [
        (("check", "rules"), RULES),
        (("test", "rules"), RULE_TESTS),
        (("check", "config"), CONFIG),
    ],
    ids=["check-rules", "test-rules", "check-config"],
)
def test_promtool(args: tuple[str, str], path: Path) -> None:
    result = promtool(*args, path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_shipped_with_severity_guidance_and_a_test() -> None:
    shipped = {rule["alert"]: rule for rule in rules() if "alert" in rule}
    assert set(shipped) == ALERTS
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert tested == ALERTS, "every alert must be seen firing in dialler-rules.test.yml"
    for name, rule in shipped.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        description = rule["annotations"]["description"]
        assert "Check first" in description and "Escalate" in description, name


def test_alert_expressions_use_defined_metrics() -> None:
    defined = exposed_names()
    for rule in rules():
        used = set(METRIC_NAME.findall(rule["expr"]))
        assert used <= defined, f"{rule.get('alert')}: unknown metrics {used - defined}"


def test_dashboard_is_valid_json_with_variables() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert "label_values(" in json.dumps(variables["campaign"]["query"])
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]


def test_dashboard_expressions_use_defined_metrics() -> None:
    defined = exposed_names()
    used: set[str] = set()
    for expr in dashboard_exprs():
        used.update(METRIC_NAME.findall(expr))
    assert used, "no metric found in the dashboard"
    assert used <= defined, f"unknown metrics {used - defined}"
    # Every metric the daemon exports is on the dashboard.
    families = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in used}
    assert {family.name for family in metrics.REGISTRY.collect()} <= families


def test_dashboard_expressions_parse(tmp_path: Path) -> None:
    # promtool parses PromQL when checking rules: each panel expression becomes a recording
    # rule, with Grafana's variables replaced by what they expand to.
    exprs = [
        e.replace("$__rate_interval", "5m").replace("$campaign", ".*")
        for e in dashboard_exprs()
        if not e.startswith("label_values(")
    ]
    group = {
        "name": "dashboard",
        "rules": [{"record": f"dashboard:expr_{i}", "expr": e} for i, e in enumerate(exprs)],
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [group]}), encoding="utf-8")
    result = promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr

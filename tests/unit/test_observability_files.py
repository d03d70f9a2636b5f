"""Dashboards and alert rules name only metrics the code really exports."""

from __future__ import annotations

import json
import re

import yaml
from prometheus_client import REGISTRY

import runtime.consumer  # noqa: F401  (registers its metrics)
import runtime.gc_tuning  # noqa: F401
import runtime.housekeeping  # noqa: F401
import runtime.http_metrics  # noqa: F401
import runtime.outbox  # noqa: F401
import services.notify.worker  # noqa: F401
import services.routing.handlers  # noqa: F401
import services.sla.timers  # noqa: F401
from devtools.system import REPO

OBSERVABILITY = REPO / "deploy" / "observability"


def exported_names() -> set[str]:
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    return {
        metric.name + suffix for metric in REGISTRY.collect() for suffix in suffixes.get(metric.type, ("",))
    }


def referenced(text: str) -> set[str]:
    return set(re.findall(r"\bgridline_[a-z_]+\b", text)) - {"gridline_flow"}


def test_alert_rules_parse_and_reference_exported_metrics():
    rules = yaml.safe_load((OBSERVABILITY / "alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert len(exprs) >= 4
    missing = referenced("\n".join(exprs)) - exported_names()
    assert missing == set()


def test_the_grafana_dashboard_references_exported_metrics():
    dashboard = json.loads((OBSERVABILITY / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    missing = referenced("\n".join(exprs)) - exported_names()
    assert missing == set()

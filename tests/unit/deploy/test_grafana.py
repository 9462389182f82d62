"""deploy/grafana/stagegate.json, parsed (no Grafana here): well formed, and every PromQL
expression names only metrics the API or a node worker exports."""

import json
import re
from typing import Any

import pytest
from prometheus_client.core import Metric
from sqlalchemy.orm import sessionmaker

from stagegate.api.metrics import LedgerCollector
from stagegate.ledger import Ledger, create_ledger_engine
from stagegate.workers.metrics import WorkerMetrics
from unit.deploy.helpers import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "stagegate.json"

# What a PromQL expression may name besides metrics: functions and aggregations (followed by
# "("), and these keywords.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"} | {
    "and",
    "or",
    "unless",
}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}
# Panels the issue asks for, by a word of their title.
REQUIRED_PANELS = (
    "Stagings by state",
    "Queue depth per node",
    "NVMe per node",
    "Bytes moved by direction",
    "Batch duration p50 / p95",
    "Cache hits vs evictions",
    "Policy denials by reason",
)


def sample_names(families: list[Metric]) -> set[str]:
    """The series names a scrape shows for ``families``."""
    names = set()
    for family in families:
        suffixes = SUFFIXES.get(family.type, ("",))
        names |= {family.name + suffix for suffix in suffixes}
    return names


def exported() -> set[str]:
    engine = create_ledger_engine("sqlite://")  # never connected: describe() reads nothing
    try:
        api = list(LedgerCollector(Ledger(engine, sessionmaker(engine))).describe())
    finally:
        engine.dispose()
    worker = list(WorkerMetrics().registry.collect())
    return sample_names(api) | sample_names(worker)


def dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text())
    assert isinstance(loaded, dict)
    return loaded


def panels() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        found += [panel, *panel.get("panels", [])]  # rows may nest panels
    return found


def expressions() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in panels() for t in p.get("targets", []) if "expr" in t]


def names_in(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: what is left once strings, label
    matchers, ranges, grouping clauses, numbers and functions are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for word in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", text):
        if not text[word.end() :].lstrip().startswith("("):  # a function or an aggregation
            names.add(word.group())
    return names - KEYWORDS


def test_the_name_extraction_works() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, kind) (rate(a_bucket{node=~"$node", x="by(y)"}[5m]))) '
        "/ on (node) group_left max without (state) (b) > bool 0"
    )
    assert names_in(expr) == {"a_bucket", "b"}


def test_the_dashboard_is_grafana_json() -> None:
    board = dashboard()
    assert board["title"] and board["uid"] and isinstance(board["schemaVersion"], int)
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "node"} <= variables
    for panel in panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        for target in panel.get("targets", []):
            assert target["refId"] and target["expr"].strip(), panel["title"]


@pytest.mark.parametrize("title", REQUIRED_PANELS)
def test_the_issue_s_panels_are_there(title: str) -> None:
    assert any(p["title"].startswith(title) for p in panels()), f"no panel {title!r}"


def test_every_expression_names_only_metrics_we_export() -> None:
    ours = exported()
    used: set[str] = set()
    for title, expr in expressions():
        names = names_in(expr)
        assert names, f"{title}: {expr} selects no metric"
        unknown = names - ours
        assert not unknown, f"{title}: {expr} names {sorted(unknown)}, which nothing exports"
        used |= names
    assert "stagegate_worker_batch_duration_seconds_bucket" in used
    assert "stagegate_worker_cache_evictions_total" in used and "stagegate_cache_hits_total" in used


def test_quantiles_read_histogram_buckets_by_le() -> None:
    for title, expr in expressions():
        if "histogram_quantile" in expr:
            assert "_bucket" in expr and re.search(r"by \([^)]*\ble\b", expr), f"{title}: {expr}"


def test_the_node_variable_reads_an_exported_metric() -> None:
    (node,) = [v for v in dashboard()["templating"]["list"] if v["name"] == "node"]
    assert names_in(node["definition"].removeprefix("label_values(").split(",")[0]) <= exported()

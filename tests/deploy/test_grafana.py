"""deploy/grafana/tileclass.json reads only metrics that tileclass exports, and the README lists every metric name
(they are an interface: dashboards and alerts depend on them)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration  # the exporter reads a real Redis
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "tileclass.json"


@pytest.fixture
def exported(sqlite_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, set[str]]:
    """Family name -> sample names of every tileclass metric: the workers' (after one batch) and the exporter's
    (with one job, on Redis)."""
    from core import jobs
    from core.db import session_scope
    from core.metrics.fleet import fleet_registry
    from core.settings import get_settings
    from worker import metrics

    metrics.batch_recorded(job_id=1, model_hash="f" * 64, classified=1, failed=1, empty=1,
                           times=metrics.StageTimes(), started=time.perf_counter())
    metrics.batch_outcome("done")
    metrics.queue_wait(time.time())
    metrics.MODEL_LOAD_SECONDS.observe(1.0)
    metrics.model_loaded("f" * 64)
    metrics.device_in_use("cpu")
    monkeypatch.setenv("TILECLASS_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("TILECLASS_BROKER_URL", redis_url)
    get_settings.cache_clear()
    with session_scope() as session:
        jobs.create_job(session)
    families: dict[str, set[str]] = {}
    for registry in (REGISTRY, fleet_registry()):
        for family in text_string_to_metric_families(generate_latest(registry).decode()):
            # (the client's text format shows each counter's and histogram's creation time as a family of its own)
            if family.name.startswith("tileclass_") and not family.name.endswith("_created"):
                families.setdefault(family.name, set()).update(sample.name for sample in family.samples)
    return families


def panels() -> list[dict[str, Any]]:
    return [panel for panel in json.loads(DASHBOARD.read_text())["panels"] if panel["type"] != "row"]


def test_every_query_of_the_dashboard_reads_an_exported_metric(exported: dict[str, set[str]]) -> None:
    samples = set().union(*exported.values())
    used = set()
    for panel in panels():
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = set(re.findall(r"\btileclass_[a-z_]+", target["expr"]))
            assert names, f"{panel['title']}: {target['expr']}"
            assert names <= samples, f"{panel['title']} reads {names - samples}, which nothing exports"
            used |= names
    families_shown = {family for family, names in exported.items() if names & used}
    assert families_shown == set(exported), f"not on the dashboard: {set(exported) - families_shown}"


def test_the_dashboard_is_importable_with_any_prometheus_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])


def test_the_readme_lists_every_metric_name(exported: dict[str, set[str]]) -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    listed = set(re.findall(r"`(tileclass_[a-z_]+)", readme))
    names = {family + ("_total" if f"{family}_total" in samples else "") for family, samples in exported.items()}
    assert names <= listed, f"missing from the README: {sorted(names - listed)}"

"""worker.metrics and the launcher's side of multiprocess mode, without a broker: what one batch records, how the
stage times add up from several threads, and that a child's live gauges leave with it while its counters stay."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from core.metrics.serving import MultiprocessMetrics
from tests.conftest import REPO_ROOT
from worker import metrics
from worker.launch import ChildSpec, Supervisor
from worker.tasks import _outcome


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_stage_times_add_up_from_many_threads() -> None:
    times = metrics.StageTimes()

    def work() -> None:
        for _ in range(1000):
            times.add("read", 0.001)
            times.add("decode", 0.002)
            times.add("read", 0.001)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert abs(times.seconds["read"] - 8.0) < 1e-9  # 4 threads x 1000 x (0.001 + 0.001): no addition lost
    assert abs(times.seconds["decode"] - 8.0) < 1e-9 and times.seconds["inference"] == 0.0


def test_a_recorded_batch_counts_its_tiles_by_outcome_job_and_model_and_observes_each_stage() -> None:
    model = "ab" * 32
    before = {stage: value("tileclass_batch_stage_seconds_count", stage=stage) for stage in metrics.STAGES}
    classified = value("tileclass_tiles_total", outcome="classified", job="7", model=model[:12])
    failed = value("tileclass_tiles_total", outcome="failed", job="7", model=model[:12])
    times = metrics.StageTimes()
    times.add("inference", 0.5)

    metrics.batch_recorded(job_id=7, model_hash=model, classified=5, failed=2, empty=0, times=times)

    assert value("tileclass_tiles_total", outcome="classified", job="7", model=model[:12]) == classified + 5
    assert value("tileclass_tiles_total", outcome="failed", job="7", model=model[:12]) == failed + 2
    assert value("tileclass_tiles_total", outcome="empty", job="7", model=model[:12]) == 0  # never created
    for stage in metrics.STAGES:
        assert value("tileclass_batch_stage_seconds_count", stage=stage) == before[stage] + 1


def test_queue_wait_is_observed_only_from_a_numeric_send_time() -> None:
    import time

    count = value("tileclass_batch_queue_wait_seconds_count")
    for sent in (None, "soon", True, [1.0]):
        metrics.queue_wait(sent)
    assert value("tileclass_batch_queue_wait_seconds_count") == count
    metrics.queue_wait(time.time() - 3)
    assert value("tileclass_batch_queue_wait_seconds_count") == count + 1
    assert value("tileclass_batch_queue_wait_seconds_bucket", le="1.0") < count + 1  # it waited 3 s, not under 1


def test_each_task_summary_maps_to_one_batch_outcome() -> None:
    assert _outcome({"classified": 3, "failed": 0, "empty": 1}) == "done"
    assert _outcome({"dropped": "cancelled"}) == "dropped"
    assert _outcome({"put_back": "tile root missing"}) == "put_back"
    assert _outcome({"failed": 8, "gave_up": "batch failed 4 times"}) == "failed"


def test_the_supervisor_reports_each_child_exit_once(tmp_path: Path) -> None:
    exited: list[int] = []
    specs = [ChildSpec(f"c{i}", [sys.executable, "-c", "pass"]) for i in range(2)]
    supervisor = Supervisor(specs, on_exit=exited.append)

    assert supervisor.run() == 0
    assert sorted(exited) == sorted(child.pid for child in supervisor.children)


CHILD = """
from prometheus_client import Counter, Gauge
Counter("tileclass_test_things", "t").inc(3)
Gauge("tileclass_test_live", "t", multiprocess_mode="livesum").set(1)
"""


def test_a_dead_childs_live_gauges_leave_and_its_counters_stay(tmp_path: Path) -> None:
    with MultiprocessMetrics(host="127.0.0.1", port=0, folder=str(tmp_path / "prom")) as served:
        env = os.environ | served.child_env | {"PYTHONPATH": str(REPO_ROOT)}
        child = subprocess.run([sys.executable, "-c", CHILD], env=env, check=True, capture_output=True)
        assert child.returncode == 0
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(served.folder))
        assert registry.get_sample_value("tileclass_test_live") == 1
        pid = int(next(served.folder.glob("gauge_livesum_*.db")).stem.rsplit("_", 1)[1])

        served.process_exited(pid)

        assert registry.get_sample_value("tileclass_test_live") is None
        assert registry.get_sample_value("tileclass_test_things_total") == 3

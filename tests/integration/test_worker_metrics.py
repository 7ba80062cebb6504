"""Prometheus metrics of real worker processes: `tileclass worker --metrics-port` (two processes, one port, the
client's multiprocess mode) and a plain Celery worker with TILECLASS_WORKER_METRICS_PORT, classifying one job
that the real producer (`tileclass enqueue`) sent through Redis into PostgreSQL.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from core import jobs
from core.db import session_scope
from core.models.registry import register_checkpoint
from core.schema import JobState
from core.settings import get_settings
from producer.cli import app
from tests.integration.faults.harness import free_port
from tests.worker.support import running, start_celery, start_launcher, tile_tree, tiny_checkpoint, wait_for, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TILES, BATCH = 40, 8


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value from http://127.0.0.1:PORT/metrics, or {} while nothing answers."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (pid labels of live gauges summed away)."""
    return sum(value for (sample, keys), value in samples.items()
               if sample == name and labels.items() <= dict(keys).items())


def test_worker_processes_export_tiles_batches_stage_times_queue_wait_model_and_device(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str, postgres_url: str) -> None:
    settings = {"database_url": postgres_url, "broker_url": redis_url, "model_dir": tmp_path / "models",
                "data_dir": tmp_path / "state"}
    for key, value in settings.items():
        monkeypatch.setenv(f"TILECLASS_{key.upper()}", str(value))
    get_settings.cache_clear()
    with session_scope() as session:
        model = register_checkpoint(session, checkpoint=tiny_checkpoint(tmp_path / "trained"),
                                    settings=get_settings()).hash
    tile_tree(tmp_path / "tiles", TILES)
    folder = tmp_path / "prometheus"  # the launcher must empty it: a stale file of an earlier run would count
    folder.mkdir()
    (folder / "counter_999999.db").write_bytes(b"left over from an earlier run")
    launcher_port, plain_port = free_port(19100), free_port(19200)
    launcher = start_launcher(["--device", "cpu", "--processes", "2", "--threads-per-process", "1", "--no-compile",
                               "--batch-size", "4", "--metrics-port", str(launcher_port)],
                              worker_env(**settings) | {"PROMETHEUS_MULTIPROC_DIR": str(folder)}, cwd=tmp_path,
                              log=tmp_path / "launcher.log")
    plain = start_celery(worker_env(**settings, worker_metrics_port=plain_port), cwd=tmp_path, name="plain")
    logs = (tmp_path / "launcher.log", tmp_path / "plain.log")
    with running(launcher), running(plain):
        wait_for(lambda: total(scrape(launcher_port), "tileclass_worker_device", device="cpu") == 2, timeout=120,
                 what="both launched processes to report their device", logs=logs, processes=(launcher, plain))
        wait_for(lambda: total(scrape(plain_port), "tileclass_worker_device", device="cpu") == 1, timeout=120,
                 what="the plain worker to report its device", logs=logs, processes=(launcher, plain))
        result = CliRunner().invoke(app, ["enqueue", str(tmp_path / "tiles"), "--model", model, "--batch-size",
                                          str(BATCH), "--json"])
        assert result.exit_code == 0, result.output
        job = int(json.loads(result.stdout)["job_id"])
        wait_for(lambda: _state(job) == JobState.COMPLETED, timeout=150, what="the job to complete", logs=logs,
                 processes=(launcher, plain))
        hosts = [scrape(launcher_port), scrape(plain_port)]

        def both(name: str, **labels: str) -> float:
            return sum(total(samples, name, **labels) for samples in hosts)

        batches = TILES // BATCH
        assert both("tileclass_tiles_total", outcome="classified", job=str(job), model=model[:12]) == TILES
        assert both("tileclass_tiles_total", outcome="failed") == 0
        assert both("tileclass_batches_total", outcome="done") == batches
        for stage in ("read", "decode", "inference", "write"):
            assert both("tileclass_batch_stage_seconds_count", stage=stage) == batches, stage
            assert both("tileclass_batch_stage_seconds_sum", stage=stage) > 0, stage
        assert both("tileclass_batch_seconds_count") == batches
        assert both("tileclass_batch_queue_wait_seconds_count") == batches  # the producer's send time came along
        loaded = [total(samples, "tileclass_model_cache_models", model=model[:12]) for samples in hosts]
        assert total(hosts[0], "tileclass_model_load_seconds_count") == loaded[0]
        assert 1 <= sum(loaded) <= 3 and loaded[1] <= 1  # each process that took a batch holds the model
        assert "process_cpu_seconds_total" in {name for name, _ in hosts[1]}  # the plain worker's own registry
        assert not (folder / "counter_999999.db").exists()
        assert list(folder.glob("counter_*.db")), "the children wrote their samples to the multiprocess folder"

        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=60) == 0, (tmp_path / "launcher.log").read_text()[-3000:]
    assert scrape(launcher_port) == {}, "the launcher's metrics server stops with it"


def _state(job_id: int) -> str:
    with session_scope(read_only=True) as session:
        return str(jobs.get_job(session, job_id).state)


def test_a_prefork_celery_worker_serves_its_childrens_metrics_and_a_child_that_exits_leaves_its_gauges(
        tmp_path: Path, redis_url: str) -> None:
    import subprocess
    import sys

    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    folder = tmp_path / "prometheus"
    folder.mkdir()
    port = free_port(19250)
    env = worker_env(broker_url=redis_url, database_url=f"sqlite:///{tmp_path / 'r.db'}", data_dir=tmp_path / "s",
                     worker_metrics_port=port) | {"PROMETHEUS_MULTIPROC_DIR": str(folder)}
    log = tmp_path / "prefork.log"
    with log.open("ab") as handle:
        worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--pool", "prefork",
                                   "--concurrency", "1", "-Q", "classify", "--hostname", "prefork@%h",
                                   "--without-mingle", "--without-gossip"], env=env, cwd=tmp_path, stdout=handle,
                                  stderr=subprocess.STDOUT)
    with running(worker):
        wait_for(lambda: total(scrape(port), "tileclass_worker_device", device="cpu") == 1, timeout=120,
                 what="the pool child's device gauge on the parent's port", logs=(log,), processes=(worker,))
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, log.read_text()[-3000:]
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))
    assert registry.get_sample_value("tileclass_worker_device", {"device": "cpu"}) is None

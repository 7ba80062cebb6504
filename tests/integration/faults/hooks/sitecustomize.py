"""Fault-injection hooks for the worker processes of the fault suite, loaded as ``sitecustomize`` via PYTHONPATH.

Nothing happens unless ``TILECLASS_TEST_FAULTS`` names a folder (only the fault suite's workers get it). Then, in
a Celery worker process:

- ``<folder>/ready/<pid>`` appears when the worker consumes (Celery's ``worker_ready``);
- ``<folder>/busy/<pid>`` exists while the process runs a classify task and holds ``"<task id> <job> <seq>"``,
  so a test can hit a worker *mid-batch*; ``<folder>/runs.log`` gets one line per task start and end.
- every tile read first sleeps ``TILECLASS_TEST_TILE_DELAY`` seconds (slow storage), so a batch lasts long enough
  to be hit;
- a tile file containing ``POISON`` kills its worker process with SIGKILL when it is read, as the OOM killer or a
  crashing native decoder would. The tile itself is a valid JPEG that the decoder reads normally;
- a tile file containing ``CRASH`` raises ``RuntimeError("CUDA out of memory")`` when it is read: an unexpected
  error of the whole batch, not of that tile, which the task retries and then gives up on;
- with ``TILECLASS_TEST_LOG_READS=1``, every tile file read is logged as ``read <pid> <path>`` in ``runs.log``
  (the multi-host test checks which path each simulated host read its tiles through).

``TILECLASS_TEST_NO_MARKERS=1`` switches off the run markers of ``worker.deliveries`` (to watch the poison scenario
fail without them: the tile is then redelivered forever). The production code has no hook of its own: the folder
reader's ``core.sources.folder.FolderReader.read``, through which workers read every folder tile, is wrapped here
when the worker starts.
"""

from __future__ import annotations

import os

POISON = b"TILECLASS-TEST-POISON"
CRASH = b"TILECLASS-TEST-CRASH"
_FOLDER = os.environ.get("TILECLASS_TEST_FAULTS")


def _install(folder: str) -> None:
    import signal
    import time
    from pathlib import Path
    from typing import Any

    from celery.signals import task_postrun, task_prerun, worker_init, worker_ready

    state = Path(folder)
    for kind in ("busy", "ready"):
        (state / kind).mkdir(parents=True, exist_ok=True)
    delay = float(os.environ.get("TILECLASS_TEST_TILE_DELAY", "0"))
    log_reads = os.environ.get("TILECLASS_TEST_LOG_READS") == "1"

    def note(line: str) -> None:
        with (state / "runs.log").open("a") as log:
            log.write(line + "\n")

    @task_prerun.connect(weak=False)
    def _busy(task_id: str = "", kwargs: dict[str, Any] | None = None, **_: Any) -> None:
        batch = (kwargs or {}).get("batch") or {}
        what = f"{task_id} {batch.get('job_id')} {batch.get('seq')}"
        (state / "busy" / str(os.getpid())).write_text(what)
        note(f"start {os.getpid()} {what}")

    @task_postrun.connect(weak=False)
    def _idle(task_id: str = "", kwargs: dict[str, Any] | None = None, **_: Any) -> None:
        batch = (kwargs or {}).get("batch") or {}
        note(f"end {os.getpid()} {task_id} {batch.get('job_id')} {batch.get('seq')}")
        (state / "busy" / str(os.getpid())).unlink(missing_ok=True)

    @worker_ready.connect(weak=False)
    def _ready(**_: Any) -> None:
        (state / "ready" / str(os.getpid())).touch()

    @worker_init.connect(weak=False)
    def _wrap_tile_reads(**_: Any) -> None:
        from core.sources.folder import FolderReader

        original = FolderReader.read

        def read(reader: FolderReader, tile: Any) -> bytes:
            path = reader.root / str(tile.path)
            if delay:
                time.sleep(delay)
            if log_reads:
                note(f"read {os.getpid()} {path}")
            content = path.read_bytes() if path.is_file() else b""
            if POISON in content:
                note(f"poison {os.getpid()} {path.name}")
                os.kill(os.getpid(), signal.SIGKILL)
            if CRASH in content:
                note(f"crash {os.getpid()} {path.name}")
                raise RuntimeError("CUDA out of memory")
            return original(reader, tile)

        FolderReader.read = read  # type: ignore[method-assign]
        if os.environ.get("TILECLASS_TEST_NO_MARKERS") == "1":
            from worker import deliveries

            deliveries._client = lambda settings: None  # type: ignore[assignment]


if _FOLDER:
    _install(_FOLDER)

"""Bad input, end to end: every file, message, checkpoint and credential a deployment may be handed by mistake (or by
an attacker) gets one clear outcome, and nothing else is lost.

A real `tileclass worker` on a private Redis and a PostgreSQL database classifies a tile tree that mixes real
EuroSAT tiles with broken files (each fails alone, with its reason), images in every Pillow mode, odd sizes and
multi-frame files (all classified), and things the walker must leave out (a FIFO, symlink loops, a symlink out of
the root). Messages naming paths outside the root and a pickle-typed message are sent straight to the broker.
Checkpoints that are whole pickled models, malicious pickles or inconsistent are refused by every command, and
a wrong Redis password stops the CLI and the worker with one line.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image
from sqlalchemy import select
from typer.testing import CliRunner

from core import jobs
from core.celery_app import connected_app
from core.db import session_scope
from core.messages import CLASSIFY_TASK, ClassifyBatch
from core.models.registry import register_checkpoint
from core.schema import FailedTile, JobState, TileResult
from core.settings import get_settings
from core.sidecar import file_sha256, sidecar_path
from producer.cli import app
from tests.conftest import EUROSAT
from tests.factories import folder_source
from tests.integration.faults.harness import (
    PrivateRedis,
    WorkerPool,
    job_state,
    private_database,
    wait_for,
    worker_env,
)
from tests.worker.support import bomb_png

pytestmark = [pytest.mark.integration, pytest.mark.slow]
Z, X = 16, 34000  # every tile of the tree lies in column X of zoom Z (rows numbered below)
SOURCE = EUROSAT / "Forest" / "Forest_579.jpg"
JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass
class Site:
    folder: Path
    redis: PrivateRedis
    settings: dict[str, str]
    pool: WorkerPool
    model: str  # registered checkpoint path
    root: Path
    outside: Path  # a real image outside the root


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, trained_checkpoint: Path) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("bad-inputs")
    server = PrivateRedis(folder / "redis")
    server.start()
    root, outside = folder / "tiles", folder / "outside"
    outside.mkdir()
    shutil.copyfile(SOURCE, outside / "real.jpg")
    with private_database("tileclass_bad_inputs") as url:
        settings = {"TILECLASS_DATABASE_URL": url, "TILECLASS_BROKER_URL": server.url,
                    "TILECLASS_MODEL_DIR": str(folder / "models"), "TILECLASS_DATA_DIR": str(folder / "state"),
                    "TILECLASS_WORKER_BATCH_SIZE": "8"}
        pool = WorkerPool(worker_env(settings, state=folder / "hooks-state"), folder=folder, count=1)
        try:
            pool.start()
            yield Site(folder, server, settings, pool, str(trained_checkpoint), root, outside)
        finally:
            pool.stop()
            server.stop()


@pytest.fixture
def env(site: Site, monkeypatch: pytest.MonkeyPatch) -> Site:
    for key, value in site.settings.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return site


def tileclass(*args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``tileclass ARGS`` run in this process."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


# -- the tile tree -------------------------------------------------------------------------------------------------

def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def mode_images() -> dict[str, bytes]:
    """A real tile in every Pillow mode, in a format that keeps the mode (TIFF where PNG cannot: named .png all the
    same, since tiles are decoded by content, not by name)."""
    rgb = Image.open(SOURCE).convert("RGB")
    made = {}
    for mode in ("P", "PA", "RGBA", "LA", "L", "1", "CMYK", "I;16", "I", "F"):
        if mode == "PA":
            image = rgb.convert("P").convert("PA")
        elif mode == "I;16":
            image = rgb.convert("L").convert("I;16")
        else:
            image = rgb.convert(mode)
        fmt = "JPEG" if mode == "CMYK" else "TIFF" if mode in ("PA", "I", "F") else "PNG"
        data = encoded(image, fmt)
        assert Image.open(io.BytesIO(data)).mode == mode  # the file really holds this mode
        made[mode] = data
    return made


def multi_frame() -> dict[str, bytes]:
    frames = [Image.open(SOURCE).convert("RGB"), Image.new("RGB", (64, 64), (0, 0, 255))]
    return {
        "apng": encoded(frames[0], "PNG", save_all=True, append_images=frames[1:]),
        "gif": encoded(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "tiff-pages": encoded(frames[0], "TIFF", save_all=True, append_images=frames[1:]),
    }


def broken() -> dict[str, tuple[bytes, str]]:
    """File contents that cannot be classified, with a word their recorded reason must contain."""
    jpeg = SOURCE.read_bytes()
    png = encoded(Image.open(SOURCE), "PNG")
    return {
        "zero-byte": (b"", "zero-byte"),
        "random-bytes": (random.Random(8).randbytes(4096), "not an image"),
        "html": (b"<!doctype html><html><body><h1>404 Not Found</h1></body></html>\n" * 8, "not an image"),
        "truncated-jpeg": (jpeg[: len(jpeg) // 2], "truncated"),
        "truncated-png": (png[: len(png) // 2], "truncated"),
        "bomb": (bomb_png(), "decompression bomb"),
    }


@dataclass
class Tree:
    classified: dict[str, str]  # relative path -> what it is (all must be classified)
    failed: dict[str, str]  # relative path -> word its failure reason must contain
    left_out: dict[str, str]  # relative path -> the walker's reason for leaving it out


def build_tree(root: Path, outside: Path) -> Tree:
    tree = Tree({}, {}, {})
    files: list[tuple[str, bytes, dict[str, str]]] = []
    for i in range(6):
        files.append(("real", Path(EUROSAT / "Forest" / f"Forest_{580 + i}.jpg").read_bytes(), tree.classified))
    files += [(f"mode {mode}", data, tree.classified) for mode, data in mode_images().items()]
    files += [("1x1", encoded(Image.new("RGB", (1, 1), (10, 120, 30)), "PNG"), tree.classified),
              ("7x300", encoded(Image.open(SOURCE).resize((7, 300)), "JPEG"), tree.classified)]
    files += [(f"multi-frame {kind}", data, tree.classified) for kind, data in multi_frame().items()]
    failures = broken()
    files += [(name, data, tree.failed) for name, (data, _) in failures.items()]
    column = root / str(Z) / str(X)
    column.mkdir(parents=True)
    for y, (what, data, where) in enumerate(files):
        relative = f"{Z}/{X}/{y}.{'jpg' if data.startswith(JPEG_MAGIC) else 'png'}"
        (root / relative).write_bytes(data)
        where[relative] = failures[what][1] if where is tree.failed else what
    fifo = f"{Z}/{X}/100.png"
    os.mkfifo(root / fifo)
    tree.left_out[fifo] = "not a regular file"
    (column / "101.jpg").symlink_to("102.jpg")  # a symlink loop
    (column / "102.jpg").symlink_to("101.jpg")
    tree.left_out[f"{Z}/{X}/101.jpg"] = tree.left_out[f"{Z}/{X}/102.jpg"] = "broken symlink"
    (root / str(Z) / str(X + 1)).symlink_to(root / str(Z))  # a directory loop, named like a column
    tree.left_out[f"{Z}/{X + 1}"] = "directory symlink (not followed)"
    (column / "103.jpg").symlink_to(outside / "real.jpg")  # out of the root
    tree.left_out[f"{Z}/{X}/103.jpg"] = "symlink leading outside the root"
    return tree


@pytest.fixture(scope="module")
def tree(site: Site) -> Tree:
    return build_tree(site.root, site.outside)


def failures_of(model_hash: str) -> dict[str, str]:
    with session_scope(read_only=True) as session:
        failed = session.scalars(select(FailedTile).where(FailedTile.model_hash == model_hash))
        return {f.path: f.reason for f in failed}


def results_of(model_hash: str) -> set[str]:
    with session_scope(read_only=True) as session:
        return set(session.scalars(select(TileResult.path).where(TileResult.model_hash == model_hash)))


def wait_job(site: Site, job_id: int) -> None:
    wait_for(lambda: job_state(job_id) == JobState.COMPLETED, timeout=150, what=f"job {job_id} to complete",
             pool=site.pool)
    wait_for(lambda: site.redis.queued() == (0, 0), timeout=60, what="the broker to be empty", pool=site.pool)


def registered(site: Site) -> str:
    with session_scope() as session:
        return register_checkpoint(session, checkpoint=Path(site.model), settings=get_settings()).hash


# -- tiles -----------------------------------------------------------------------------------------------------------

def test_broken_files_fail_alone_and_every_image_mode_size_and_frame_count_classifies(env: Site, tree: Tree) -> None:
    code, out, err = tileclass("enqueue", str(env.root), "--model", env.model, "--batch-size", "64", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["enqueued"] == len(tree.classified) + len(tree.failed)
    examples = {path for paths in report["left_out_examples"].values() for path in paths}
    assert set(tree.left_out) <= examples  # none of them was enqueued, each was reported with its reason
    for path, reason in tree.left_out.items():
        assert path in report["left_out_examples"][reason]
    wait_job(env, report["job_id"])
    model = report["model"]
    assert results_of(model) == set(tree.classified)
    reasons = failures_of(model)
    assert set(reasons) == set(tree.failed)
    assert {path: word in reasons[path] for path, word in tree.failed.items()} == dict.fromkeys(tree.failed, True)


def test_a_message_naming_paths_outside_the_root_fails_only_those_tiles(env: Site, tree: Tree) -> None:
    model = registered(env)
    good = sorted(path for path, what in tree.classified.items() if what == "real")[:3]
    hostile = {"../outside/real.jpg": "not a plain path inside its root",
               str(env.outside / "real.jpg"): "not a plain path inside its root",
               "/etc/passwd": "not a plain path inside its root",
               f"{Z}/{X}/103.jpg": "leads outside its root",  # the escaping symlink, named directly
               f"{Z}/{X}/100.png": "not a regular file"}  # the FIFO: read, it would block the worker for ever
    rows = [(None, None, None, path) for path in [good[0], *hostile, *good[1:]]]
    with session_scope() as session:
        job = jobs.create_job(session, model_hash=model, source=folder_source(env.root, name="bad")).id
        jobs.record_batches_enqueued(session, job_id=job, batches=[(0, len(rows))])  # as the producer does
    connected_app(get_settings()).send_task(CLASSIFY_TASK, kwargs={"batch": ClassifyBatch(job, 0, model, "bad",
                                                                                     rows).to_message()})
    with session_scope() as session:
        jobs.finish_enqueue(session, job_id=job, total_tiles=len(rows), total_batches=1, skipped=0)
    wait_job(env, job)
    assert results_of(model) >= set(good)
    reasons = failures_of(model)
    assert {path: word in reasons.get(path, "") for path, word in hostile.items()} == dict.fromkeys(hostile, True)


class _Plant:
    """Unpickling this creates ``marker``: the side effect a refused pickle must never have."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (open, (str(self.marker), "w"))


def test_a_pickle_message_is_refused_by_the_worker_and_never_unpickled(env: Site, tree: Tree) -> None:
    marker = env.folder / "pickle-ran"
    celery = connected_app(get_settings())
    celery.send_task(CLASSIFY_TASK, kwargs={"batch": _Plant(marker)}, serializer="pickle")
    model = registered(env)
    path = sorted(p for p, what in tree.classified.items() if what == "real")[0]
    with session_scope() as session:
        job = jobs.create_job(session, model_hash=model, source=folder_source(env.root, name="bad")).id
        jobs.record_batches_enqueued(session, job_id=job, batches=[(0, 1)])  # as the producer does
    celery.send_task(CLASSIFY_TASK, kwargs={"batch": ClassifyBatch(job, 0, model, "bad",
                                                                   [(Z, X, 0, path)]).to_message()})
    with session_scope() as session:
        jobs.finish_enqueue(session, job_id=job, total_tiles=1, total_batches=1, skipped=0)
    wait_job(env, job)  # the message behind the pickle ran: the queue moves on
    assert not marker.exists()
    log = "".join(slot.log.read_text(errors="replace") for slot in env.pool.slots if slot.log)
    assert "pickle" in log.lower()  # the worker said why it dropped the message


# -- checkpoints -----------------------------------------------------------------------------------------------------

def forge_sidecar(checkpoint: Path) -> None:
    """A sidecar that matches the file's hash: registration reads only this, so the file itself must be refused."""
    sidecar_path(checkpoint).write_text(json.dumps({
        "format": "tileclass-checkpoint/1", "sha256": file_sha256(checkpoint), "arch": "resnet18",
        "class_names": ["Forest", "Highway", "Residential", "SeaLake"], "image_size": 64, "metrics": {}}))


def test_a_malicious_checkpoint_is_refused_everywhere_and_its_code_never_runs(env: Site, tree: Tree) -> None:
    marker = env.folder / "checkpoint-ran"
    evil = env.folder / "evil" / "model.pt"
    evil.parent.mkdir()
    torch.save({"format": "tileclass-checkpoint/1", "meta": _Plant(marker), "state_dict": {}}, evil)
    image = str(env.root / sorted(tree.classified)[0])

    code, _, err = tileclass("predict", str(evil), image)
    assert code == 2 and err.strip().splitlines() == [err.strip()] and "pickled Python code" in err
    code, _, err = tileclass("enqueue", str(env.root), "--model", str(evil))
    assert code == 2 and "no readable model.json" in err and "Traceback" not in err

    forge_sidecar(evil)  # registered anyway: the workers load it with weights_only and refuse it
    code, out, err = tileclass("enqueue", str(env.root), "--model", str(evil), "--batch-size", "64", "--json")
    assert code == 0, err
    report = json.loads(out)
    wait_job(env, report["job_id"])
    reasons = failures_of(report["model"])
    assert len(reasons) == report["enqueued"] and all("refused" in r for r in reasons.values())
    assert not marker.exists()


def test_a_tutorial_whole_model_pickle_is_refused_with_the_way_out(env: Site, tree: Tree) -> None:
    from model.arch import build_model

    path = env.folder / "aerialmodel.pth"
    torch.save(build_model("resnet18", 4), path)  # torch.save(model): what the PyTorch tutorial does
    code, _, err = tileclass("predict", str(path), str(env.root / sorted(tree.classified)[0]))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "pickled whole model" in err and "state_dict" in err


def test_a_checkpoint_whose_class_count_does_not_match_its_head_is_refused(env: Site, tree: Tree) -> None:
    loaded = torch.load(env.model, map_location="cpu", weights_only=True)
    loaded["meta"]["class_names"] = loaded["meta"]["class_names"][:3]  # 4 outputs, 3 names
    path = env.folder / "mixed-up.pt"
    torch.save(loaded, path)
    code, _, err = tileclass("predict", str(path), str(env.root / sorted(tree.classified)[0]))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "head has 4 outputs but its class list names 3" in err


# -- credentials ----------------------------------------------------------------------------------------------------

def test_a_wrong_redis_password_stops_the_cli_and_the_worker_in_one_line(
        env: Site, tree: Tree, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    locked = PrivateRedis(tmp_path / "locked", password="right-password")
    locked.start()
    try:
        wrong = locked.url.replace("right-password", "wrong-password")
        monkeypatch.setenv("TILECLASS_BROKER_URL", wrong)
        get_settings.cache_clear()
        code, _, err = tileclass("enqueue", str(env.root), "--model", env.model)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "invalid username-password pair" in err and "wrong-password" not in err  # named, never echoed
        code, _, err = tileclass("worker", "--device", "cpu", "--processes", "1")
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "refused the credentials in TILECLASS_BROKER_URL" in err and "wrong-password" not in err
        # Celery run directly (not through `tileclass worker`) stops too, instead of retrying for ever.
        worker_env_ = {k: v for k, v in os.environ.items()} | {"OMP_NUM_THREADS": "1"}
        celery = subprocess.run([sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--pool", "solo",
                                 "--without-mingle", "--without-gossip"], env=worker_env_, cwd=tmp_path,
                                capture_output=True, text=True, timeout=120)
        assert celery.returncode == 2
        assert "refused the credentials" in celery.stderr and "Traceback" not in celery.stderr
    finally:
        locked.stop()

"""Launch-ahead: the pipeline launches chunk k+1 before it collects chunk k, and a device failure at either point is
the host's. (On CUDA the launch returns before the device finishes; on the CPU it is done when it returns, so the
order is observed here through the classifier's two calls.)"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from core.errors import HostError
from model.predict import Classifier, PendingProbabilities
from tests.worker.support import tile_tree, tiny_checkpoint
from worker.pipeline import TileFile, classify_tiles


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    torch.set_num_threads(1)
    return Classifier.load(tiny_checkpoint(tmp_path_factory.mktemp("ckpt")), device="cpu", precision="fp32")


@dataclass(frozen=True)
class Collected(PendingProbabilities):
    """A pending result that logs when the pipeline collects it."""

    log: list[str] = field(default_factory=list)
    name: str = ""

    def result(self) -> torch.Tensor:
        self.log.append(f"collect {self.name}")
        return super().result()


def spy_on_launches(classifier: Classifier, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    log: list[str] = []
    real_launch = classifier.launch

    def launch(batch: torch.Tensor) -> PendingProbabilities:
        name = str(sum(entry.startswith("launch") for entry in log))
        log.append(f"launch {name}")
        return Collected(real_launch(batch).probabilities, None, log, name)

    monkeypatch.setattr(classifier, "launch", launch)
    return log


def files(root: Path, count: int) -> list[TileFile]:
    return [TileFile(tile, root / str(tile.path)) for tile in tile_tree(root, count)]


def test_each_chunk_is_launched_before_the_one_before_it_is_collected(
        tmp_path: Path, classifier: Classifier, monkeypatch: pytest.MonkeyPatch) -> None:
    tiles = files(tmp_path, 10)
    with ThreadPoolExecutor(2) as pool:
        plain = classify_tiles(classifier, tiles, chunk_size=4, pool=pool)
        log = spy_on_launches(classifier, monkeypatch)
        ahead = classify_tiles(classifier, tiles, chunk_size=4, pool=pool)
    assert log == ["launch 0", "launch 1", "collect 0", "launch 2", "collect 1", "collect 2"]
    # Overlapping changes nothing in what is recorded: every tile once, in order, with the same result.
    assert [(c.tile, c.label, c.probabilities) for c in ahead.classified] == \
        [(c.tile, c.label, c.probabilities) for c in plain.classified]
    assert [c.tile.path for c in ahead.classified] == [t.tile.path for t in tiles]


class FailingResult(PendingProbabilities):
    def result(self) -> torch.Tensor:
        raise RuntimeError("CUDA error: an illegal memory access was encountered\nCUDA kernel errors might be ...")


@pytest.mark.parametrize(("failure", "at", "message", "broken"), [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "launch",
     "device cpu out of memory: CUDA out of memory. Tried to allocate 2.00 GiB", False),
    (RuntimeError("CUDA error: device-side assert triggered"), "launch",
     "device cpu failed: CUDA error: device-side assert triggered", True),
    (None, "collect", "device cpu failed: CUDA error: an illegal memory access was encountered", True),
])
def test_a_device_failure_at_launch_or_collection_is_a_host_error(
        tmp_path: Path, classifier: Classifier, monkeypatch: pytest.MonkeyPatch, failure: Exception | None, at: str,
        message: str, broken: bool) -> None:
    def launch(batch: torch.Tensor) -> PendingProbabilities:
        if failure is not None:
            raise failure
        return FailingResult(torch.zeros(len(batch), 2), None)

    monkeypatch.setattr(classifier, "launch", launch)
    with ThreadPoolExecutor(2) as pool, pytest.raises(HostError) as caught:
        classify_tiles(classifier, files(tmp_path, 6), chunk_size=4, pool=pool)
    assert str(caught.value) == message
    assert caught.value.broken is broken


def test_any_other_error_is_not_blamed_on_the_host(
        tmp_path: Path, classifier: Classifier, monkeypatch: pytest.MonkeyPatch) -> None:
    def launch(batch: torch.Tensor) -> PendingProbabilities:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(classifier, "launch", launch)
    with ThreadPoolExecutor(2) as pool, pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        classify_tiles(classifier, files(tmp_path, 3), chunk_size=4, pool=pool)


def test_a_cpu_launch_is_finished_when_it_returns_and_checks_its_batch(classifier: Classifier) -> None:
    batch = torch.randint(0, 256, (3, 3, classifier.image_size, classifier.image_size), dtype=torch.uint8)
    pending = classifier.launch(batch)
    assert pending.ready is None
    assert torch.equal(pending.result(), classifier.predict_tensors(batch))
    assert pending.result().shape == (3, len(classifier.class_names))
    with pytest.raises(ValueError, match=r"expected a uint8 \(N, 3, H, W\) batch, got torch.float32"):
        classifier.launch(batch.float())

"""Decoding JPEG tiles on the device, with the CPU path as each tile's fallback.

No GPU here: the one call into nvJPEG (``worker.device_decode.decode_jpegs_on_device``) is replaced by torchvision's
CPU JPEG decoder, which refuses what a strict decoder refuses and any tile a test names. Everything around it (what
goes to the device, the batched call, the per-tile retry, the fallback and its failure rules, the stacking of tiles
decoded on both sides) is the real code.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from PIL import Image

from core.errors import HostError
from core.settings import Settings
from core.tiles import Tile
from model.errors import ImageError
from model.image_headers import strict_jpeg
from model.predict import Classifier
from tests.worker.support import EUROSAT, broken_tiles, tile_tree, tiny_checkpoint
from worker import device_decode
from worker.pipeline import TileFile, classify_tiles


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    torch.set_num_threads(1)
    return Classifier.load(tiny_checkpoint(tmp_path_factory.mktemp("ckpt")), device="cpu", precision="fp32")


class StandInDecoder:
    """torchvision's CPU decode_jpeg in nvJPEG's place: refuses a whole call if it refuses one of its files."""

    def __init__(self, refuse: set[bytes]) -> None:
        self.refuse = refuse
        self.calls: list[int] = []  # files per call
        self.seen: set[bytes] = set()

    def __call__(self, datas: Sequence[bytes], device: torch.device) -> list[torch.Tensor]:
        from torchvision.io import ImageReadMode, decode_jpeg

        self.calls.append(len(datas))
        self.seen.update(datas)
        if any(data in self.refuse or not self.strictly_decodable(data) for data in datas):
            raise RuntimeError("nvjpeg: unsupported or corrupt JPEG")
        return [decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
                for data in datas]

    @staticmethod
    def strictly_decodable(data: bytes) -> bool:
        try:
            return strict_jpeg(data) is not None
        except ImageError:
            return False


def mixed_tiles(root: Path) -> tuple[list[TileFile], Tile]:
    """Real JPEG tiles, a PNG, a grey JPEG, the broken tiles of the CPU tests, and one good JPEG the device refuses."""
    rows = tile_tree(root, 9)
    extra = {"17/2/0.png": "PNG", "17/2/1.jpg": "L"}
    for relative, kind in extra.items():
        image = Image.open(EUROSAT / "SeaLake" / "SeaLake_3.jpg")
        buffer = io.BytesIO()
        (image.convert("L") if kind == "L" else image).save(buffer, format="JPEG" if kind == "L" else "PNG")
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(buffer.getvalue())
        rows.append(Tile(17, 2, int(relative.split("/")[2][0]), relative))
    rows[4:4] = list(broken_tiles(root))
    return [TileFile(row, root / str(row.path)) for row in rows], rows[2]


def outcome_of(classifier: Classifier, files: list[TileFile], *, device_decode: bool) -> tuple[dict, dict, dict]:
    with ThreadPoolExecutor(2) as pool:
        outcome = classify_tiles(classifier, files, chunk_size=8, pool=pool, device_decode=device_decode)
    return ({c.tile.path: c for c in outcome.classified}, {f.tile.path: f.reason for f in outcome.failures},
            {e.tile.path: e.reason for e in outcome.empty})


def test_device_decoding_gives_the_cpu_paths_outcome_tile_for_tile(tmp_path: Path, classifier: Classifier,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    files, refused_tile = mixed_tiles(tmp_path)
    decoder = StandInDecoder(refuse={(tmp_path / str(refused_tile.path)).read_bytes()})
    monkeypatch.setattr(device_decode, "decode_jpegs_on_device", decoder)

    on_cpu = outcome_of(classifier, files, device_decode=False)
    assert decoder.calls == []
    on_device = outcome_of(classifier, files, device_decode=True)

    classified_cpu, failed_cpu, empty_cpu = on_cpu
    classified_dev, failed_dev, empty_dev = on_device
    assert (failed_dev, empty_dev) == (failed_cpu, empty_cpu)  # the same tiles fail, with the CPU path's reasons
    assert len(failed_cpu) == 8 and set(classified_dev) == set(classified_cpu) and len(classified_cpu) == 11
    for path, result in classified_cpu.items():
        assert classified_dev[path].label == result.label
        assert classified_dev[path].probabilities == pytest.approx(result.probabilities, abs=2e-3)
    # Batched calls, then one call per file after a refusal; only colour JPEGs with their end marker reach the
    # device: not the PNG, the grey JPEG, the truncated file or the non-JPEGs.
    assert decoder.calls[0] > 1 and 1 in decoder.calls
    sent = {str(f.tile.path) for f in files if f.path is not None and f.path.exists()
            and f.path.read_bytes() in decoder.seen}
    good_jpegs = {str(f.tile.path) for f in files if str(f.tile.path).endswith("/42000.jpg")}
    assert sent == good_jpegs | {"17/1/4.jpg", "17/1/5.jpg"}  # (and the two broken ones whose headers look whole)


def test_a_chunk_the_device_accepts_is_decoded_in_one_call(tmp_path: Path, classifier: Classifier,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    rows = tile_tree(tmp_path, 12)
    decoder = StandInDecoder(refuse=set())
    monkeypatch.setattr(device_decode, "decode_jpegs_on_device", decoder)
    files = [TileFile(row, tmp_path / str(row.path)) for row in rows]
    classified, failed, empty = outcome_of(classifier, files, device_decode=True)
    assert decoder.calls == [8, 4] and len(classified) == 12 and not failed and not empty


def test_where_tiles_are_decoded_follows_the_setting_and_the_device() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert device_decode.uses_device_decode("auto", cuda) and device_decode.uses_device_decode("gpu", cuda)
    assert not device_decode.uses_device_decode("auto", cpu) and not device_decode.uses_device_decode("cpu", cuda)
    # Asked for on a worker without CUDA: the host's configuration is wrong, so no tile may fail for it.
    with pytest.raises(HostError, match="TILECLASS_WORKER_DECODE=gpu needs the model on a CUDA device"):
        device_decode.uses_device_decode("gpu", cpu)
    with pytest.raises(ValueError, match="must be one of auto, cpu, gpu"):
        Settings(worker={"decode": "nvjpeg"})

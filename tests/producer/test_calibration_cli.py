"""``tileclass calibrate`` and the calibration part of ``tileclass eval``, through the real CLI on real EuroSAT
patches and a real SQLite registry: a new model with a new hash that keeps everything else the old one holds, the
old file untouched and still addressable, its name moved; eval's ECE, NLL and Brier score before and after the
temperature, and reliability.png."""

from __future__ import annotations

import json
import traceback
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from core.db import session_scope
from core.models.registry import register_checkpoint
from core.settings import get_settings
from core.sidecar import file_sha256, read_sidecar, sidecar_path, sidecar_text
from model.checkpoint import read_checkpoint
from model.predict import Classifier
from producer.cli import app
from tests.conftest import SUBSET_CLASSES, copy_eurosat_subset

PNG = b"\x89PNG\r\n\x1a\n"
pytestmark = pytest.mark.slow  # every test uses the session's trained model


def run(*args: object) -> tuple[int, str, str]:
    """Exit code, stdout and stderr (with the traceback of an exception the CLI did not turn into one line)."""
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    unexpected = "".join(traceback.format_exception(*result.exc_info)) if result.exit_code == 1 and \
        result.exc_info else ""
    return result.exit_code, result.stdout, result.stderr + unexpected


@pytest.fixture
def registry(sqlite_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("TILECLASS_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("TILECLASS_MODEL_DIR", str(tmp_path / "models"))
    get_settings.cache_clear()
    return tmp_path / "models"


@pytest.fixture
def old_model(trained_checkpoint: Path, tmp_path: Path) -> Path:
    """The session's model as a checkpoint saved before temperatures existed: no temperature in its metadata or
    its sidecar, and its int8 images under their old key, "calibration"."""
    checkpoint = read_checkpoint(trained_checkpoint)
    meta = checkpoint.meta.to_dict()
    del meta["temperature"]
    path = tmp_path / "old" / "model.pt"
    path.parent.mkdir()
    torch.save({"format": "tileclass-checkpoint/1", "meta": meta, "state_dict": checkpoint.state_dict,
                "calibration": checkpoint.quantization_images}, path)
    record = json.loads(sidecar_text(sha256=file_sha256(path), arch=checkpoint.meta.arch,
                                     class_names=checkpoint.meta.class_names, image_size=checkpoint.meta.image_size,
                                     metrics=checkpoint.meta.metrics))
    del record["temperature"]
    sidecar_path(path).write_text(json.dumps(record))
    return path


@pytest.fixture
def val_set(tmp_path: Path) -> Path:
    """Patches the session's model never trained on (it trained on 1..80 of each class), for fitting."""
    return copy_eurosat_subset(tmp_path / "val", per_class=25, first=501)


@pytest.fixture
def test_set(tmp_path: Path) -> Path:
    """Other held-out patches, for judging."""
    return copy_eurosat_subset(tmp_path / "test", per_class=20, first=1001)


def test_calibrate_registers_a_new_model_keeps_everything_else_and_moves_the_name(
        old_model: Path, val_set: Path, registry: Path) -> None:
    old_bytes = old_model.read_bytes()
    with session_scope() as session:
        old_hash = register_checkpoint(session, checkpoint=old_model, settings=get_settings()).hash
    code, _, stderr = run("models", "name", old_hash[:8], "eurosat-v1")
    assert code == 0, stderr

    code, stdout, stderr = run("calibrate", "eurosat-v1", val_set, "--json", "--device", "cpu", "--no-progress")
    assert code == 0, stderr
    summary = json.loads(stdout)
    new_hash, temperature = summary["sha256"], summary["temperature"]
    assert summary["old_sha256"] == old_hash and new_hash != old_hash and len(new_hash) == 64
    assert summary["registered"] and summary["name"] == "eurosat-v1" and summary["model"] == "eurosat-v1"
    assert summary["previous_temperature"] == 1.0 and temperature != 1.0 and summary["images"] == 100
    assert summary["nll_after"] <= summary["nll_before"]
    assert Path(summary["checkpoint"]) == Path(summary["stored"]) == registry / f"{new_hash}.pt"
    assert file_sha256(registry / f"{new_hash}.pt") == new_hash

    # The old file is never rewritten, and the old model stays registered and addressable by its hash.
    assert old_model.read_bytes() == old_bytes and (registry / f"{old_hash}.pt").read_bytes() == old_bytes
    shown = json.loads(run("models", "show", "eurosat-v1", "--json")[1])
    assert (shown["hash"], shown["name"], shown["temperature"]) == (new_hash, "eurosat-v1", temperature)
    old_shown = json.loads(run("models", "show", old_hash[:10], "--json")[1])
    assert (old_shown["hash"], old_shown["name"], old_shown["temperature"]) == (old_hash, None, 1.0)

    # The new checkpoint is the old one plus the temperature (and how it was fitted): weights, preprocessing,
    # training record and int8 quantization images are kept; the sidecar mirrors the temperature.
    previous, new = read_checkpoint(old_model), read_checkpoint(registry / f"{new_hash}.pt")
    assert new.meta.temperature == temperature == read_sidecar(registry / f"{new_hash}.pt").temperature
    assert new.meta.metrics["calibration"]["temperature"] == temperature
    assert replace(new.meta, temperature=1.0, metrics=previous.meta.metrics) == previous.meta
    assert new.state_dict.keys() == previous.state_dict.keys()
    assert all(torch.equal(new.state_dict[key], value) for key, value in previous.state_dict.items())
    assert len(previous.quantization_images) > 0  # read from the old key
    assert torch.equal(new.quantization_images, previous.quantization_images)
    classifier = Classifier.load(registry / f"{new_hash}.pt", device="cpu", precision="int8", batch_size=8,
                                 expected_sha256=new_hash)
    assert (classifier.precision, classifier.temperature) == ("int8", temperature)
    probabilities = classifier.predict_tensors(new.quantization_images[:8])
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(8), atol=1e-4)


def test_calibrate_a_file_beside_it_without_a_database_and_never_overwrites(
        old_model: Path, val_set: Path) -> None:
    code, stdout, stderr = run("calibrate", old_model, val_set, "--no-register", "--device", "cpu", "--no-progress")
    assert code == 0, stderr
    written = old_model.with_name("model-calibrated.pt")
    lines = stdout.splitlines()
    assert lines[0].startswith(f"model {old_model} on 100 images of {val_set}: temperature ")
    assert lines[0].endswith("(was 1)") and "ECE " in lines[1] and "unchanged by a temperature" in lines[1]
    assert lines[2] == f"wrote {written} (sha256 {file_sha256(written)[:12]}…)" and len(lines) == 3
    assert read_sidecar(written).temperature == read_checkpoint(written).meta.temperature != 1.0
    code, stdout, stderr = run("calibrate", old_model, val_set, "--no-register", "--device", "cpu", "--no-progress")
    assert code == 2 and stdout == ""
    assert stderr.strip() == f"Error: {written} already exists and calibrate never overwrites a checkpoint: " \
                             "choose another --out"
    elsewhere = old_model.parent / "new" / "folder" / "eurosat.pt"  # --out anywhere, its folders made
    code, stdout, stderr = run("calibrate", old_model, val_set, "--no-register", "--out", elsewhere, "--json",
                               "--device", "cpu", "--no-progress")
    assert code == 0, stderr
    assert json.loads(stdout)["checkpoint"] == str(elsewhere) and read_sidecar(elsewhere).sha256 == \
        file_sha256(elsewhere) == file_sha256(written)  # the same fit on the same images: the same file
    assert sorted(p.name for p in elsewhere.parent.iterdir()) == ["eurosat.json", "eurosat.pt"]  # nothing left over


def test_calibrate_bad_inputs_are_one_line_errors(old_model: Path, val_set: Path, registry: Path,
                                                  tmp_path: Path) -> None:
    other = copy_eurosat_subset(tmp_path / "other", per_class=1, classes=("Forest", "Pasture"))
    with session_scope() as session:
        old_hash = register_checkpoint(session, checkpoint=old_model, settings=get_settings()).hash
    cases = {
        (old_model, tmp_path / "missing"): "does not exist or is not a directory",
        (old_model, other): "Pasture in '" + str(other) + "': not a class of model " + str(old_model),
        (old_model, val_set, "--out", tmp_path / "new.pth"): "must name a .pt file",
        (old_hash[:8], val_set, "--no-register"): "with --no-register, a registered model's calibrated checkpoint "
                                                  "needs --out FILE.pt",
        ("porto-v9", val_set): "model 'porto-v9' is not a checkpoint file, a model name or a registered model hash",
        (old_model, val_set, "--out", old_model): "already exists and calibrate never overwrites a checkpoint",
        (old_model, val_set, "--precision", "fp16"): "unknown precision 'fp16': choose one of auto, fp32, bf16, int8",
    }
    for args, words in cases.items():
        code, stdout, stderr = run("calibrate", *args, "--device", "cpu", "--no-progress")
        assert code == 2 and stdout == "" and len(stderr.strip().splitlines()) == 1, (args, stderr)
        assert stderr.startswith("Error: ") and words in stderr, (args, stderr)
    code, stdout, _ = run("calibrate", "--help")
    assert code == 0 and all(option in stdout for option in ("--out", "--precision", "--no-register", "--json"))


def test_eval_reports_ece_nll_and_brier_before_and_after_the_temperature(
        trained_checkpoint: Path, old_model: Path, test_set: Path, tmp_path: Path) -> None:
    temperature = read_checkpoint(trained_checkpoint).meta.temperature
    reports = {}
    for name, model in (("calibrated", trained_checkpoint), ("old", old_model)):
        code, stdout, stderr = run("eval", model, test_set, "--out", tmp_path / name, "--json", "--device", "cpu",
                                   "--precision", "fp32", "--no-progress")
        assert code == 0, stderr
        reports[name] = json.loads(stdout)
    calibrated, old = reports["calibrated"]["calibration"], reports["old"]["calibration"]
    assert (calibrated["temperature"], calibrated["calibrated"], calibrated["bins"]) == (temperature, True, 15)
    assert (old["temperature"], old["calibrated"]) == (1.0, False)
    # "after" is what the model answers (eval's loss is its NLL); "before" is the same answers at T = 1, which is
    # what the same weights without a temperature answer.
    assert calibrated["after"]["nll"] == pytest.approx(reports["calibrated"]["loss"])
    for key in ("ece", "nll", "brier"):
        assert calibrated["before"][key] == pytest.approx(old["after"][key], abs=1e-4), key
        assert old["before"][key] == old["after"][key]
    assert reports["calibrated"]["accuracy"] == reports["old"]["accuracy"]  # a temperature changes no answer
    assert calibrated["after"]["ece"] != calibrated["before"]["ece"]
    bins = calibrated["reliability"]["after"]
    assert sum(bins["counts"]) == 80 and len(bins["edges"]) == 16
    assert calibrated["after"]["ece"] == pytest.approx(
        sum(n / 80 * abs(a - c) for n, a, c in zip(bins["counts"], bins["accuracy"], bins["confidence"], strict=True)))
    widths = {}
    for name in reports:
        picture = tmp_path / name / "reliability.png"
        assert picture.read_bytes()[:8] == PNG and reports[name]["out"]["reliability"] == str(picture)
        widths[name] = Image.open(picture).size[0]
    assert widths["calibrated"] > 1.5 * widths["old"]  # before and after side by side; one panel without a T

    code, stdout, _ = run("eval", trained_checkpoint, test_set, "--device", "cpu", "--precision", "fp32",
                          "--no-progress")
    lines = stdout.splitlines()
    assert code == 0 and "calibration (ECE over 15 equal-width bins, NLL, Brier score)" in lines
    before = next(line for line in lines if line.startswith("  before (T = 1)"))
    after = next(line for line in lines if line.startswith(f"  after (T = {temperature:.3g})"))
    assert f"ECE {calibrated['before']['ece']:6.2%}" in before and f"Brier {calibrated['after']['brier']:.3f}" in after
    code, stdout, _ = run("eval", old_model, test_set, "--device", "cpu", "--precision", "fp32", "--no-progress")
    assert code == 0 and "  this model is uncalibrated (temperature 1.0): 'tileclass calibrate MODEL VAL_DIR' " \
        "fits a temperature on a labelled validation folder" in stdout.splitlines()
    assert set(SUBSET_CLASSES) == set(reports["old"]["class_names"])

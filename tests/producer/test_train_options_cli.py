"""``tileclass train``'s options for official splits, the tutorial's normalisation, short budgets and long runs,
through the real CLI on real EuroSAT files: --val-dir, --normalize, --ema, --progressive-resize, --keep-epochs,
--resume, the budget warning, and the bad values of each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from model.checkpoint import read_checkpoint
from model.epochs import epoch_files
from model.predict import Classifier
from producer.cli import app
from tests.conftest import copy_eurosat_subset

TINY = ("--batch-size", "8", "--image-size", "32", "--workers", "1", "--no-progress", "--no-register")


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.slow
def test_val_dir_trains_on_all_of_the_data_and_the_run_keeps_its_options(tmp_path: Path) -> None:
    data = copy_eurosat_subset(tmp_path / "train", per_class=6, classes=("Forest", "Highway", "SeaLake"))
    val = copy_eurosat_subset(tmp_path / "test", per_class=3, first=1001, classes=("Forest", "SeaLake"))
    (val / "SeaLake").rename(val / "sealake")  # an official split may spell its folders otherwise
    out = tmp_path / "run"
    args = ("train", data, "--val-dir", val, "--epochs", "2", "--normalize", "none", "--ema", "--ema-decay", "0.9",
            "--progressive-resize", "--keep-epochs", "1", "--out", out, *TINY)
    code, stdout, stderr = run(*args)
    assert code == 0, stdout + stderr
    assert "18 training and 6 validation images, 3 classes, 32 px" in stdout  # no split: every image trains
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["train_images"], metrics["val_images"], metrics["ema"]) == (18, 6, True)
    assert metrics["per_class"]["Highway"]["support"] == 0 and metrics["per_class"]["SeaLake"]["support"] == 3
    checkpoint = read_checkpoint(out / "model.pt")
    assert (checkpoint.meta.mean, checkpoint.meta.std) == ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert checkpoint.meta.train_config["normalize"] == "none"
    assert checkpoint.meta.train_config["val_dir"] == str(val.resolve())
    # Inference follows the checkpoint: pixels only scaled to 0..1, no ImageNet statistics.
    normalized = Classifier.load(out / "model.pt", device="cpu").module.net  # type: ignore[union-attr]
    assert float(normalized.mean.abs().max()) == 0.0 and float(normalized.inv_std.max()) == pytest.approx(1 / 255)
    assert [p.name for p in epoch_files(out)] == ["epoch-0002.pt"]
    code, stdout, stderr = run(*args[:-len(TINY)], *TINY, "--resume")  # done already: nothing left to train
    assert code == 0 and f"continuing from {out / 'epochs' / 'epoch-0002.pt'}: epoch 2 of 2 done" in stdout
    code, _, stderr = run(*[("3" if a == "2" else a) for a in args], "--resume")
    assert code == 2 and "was saved by a run with other options (epochs 2, now 3)" in stderr


@pytest.mark.slow
def test_a_short_budget_is_announced_before_training_with_a_size_that_fits(tmp_path: Path) -> None:
    data = copy_eurosat_subset(tmp_path / "data", per_class=6, classes=("Forest", "SeaLake"))
    # 0.0001 minutes would need 20 epochs of 10 images in 6 ms: no CPU trains at 33,000 images/s.
    code, stdout, stderr = run("train", data, "--time-budget", "0.0001", "--epochs", "20", "--out", tmp_path / "a",
                               *TINY)
    assert code == 0, stderr
    lines = stdout.splitlines()
    warning = next(i for i, line in enumerate(lines) if line.startswith("warning: a 0.0001-minute budget allows "
                                                                       "about "))
    assert "epochs of 10 images at 32 px (probe: " in lines[warning]
    assert "fewer than the 15 the schedule needs to settle" in lines[warning] and "--time-budget " in lines[warning]
    assert warning < next(i for i, line in enumerate(lines) if line.startswith("Epoch "))
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["budget_estimate"]["target"] == 15
    code, stdout, stderr = run("train", data, "--time-budget", "1000", "--epochs", "1", "--out", tmp_path / "b",
                               *TINY)
    assert code == 0 and "a 1000-minute budget allows about" in stdout and "warning" not in stdout


@pytest.mark.parametrize(("args", "words"), [
    (("--normalize", "zscore"), "unknown normalize 'zscore': choose one of imagenet, none"),
    (("--ema-decay", "1.5"), "invalid ema_decay 1.5: must be in (0, 1)"),
    (("--progressive-start", "0"), "invalid progressive_start 0.0: must be in (0, 1]"),
    (("--keep-epochs", "0"), "invalid keep_epochs 0: must be >= 1"),
    (("--queue", "--resume"), "--resume is for a run here"),
    (("--val-dir", "missing", "--queue"), "/missing' does not exist or is not a directory"),
])
def test_bad_option_values_are_one_line_errors(tmp_path: Path, args: tuple[str, ...], words: str) -> None:
    data = copy_eurosat_subset(tmp_path / "data", per_class=1, classes=("Forest", "SeaLake"))
    code, stdout, stderr = run("train", data, *args, "--no-progress")
    assert code == 2 and stdout == "" and len(stderr.strip().splitlines()) == 1, stderr
    assert words in stderr


def test_a_validation_class_the_training_data_lacks_is_named_with_both_sets(tmp_path: Path) -> None:
    data = copy_eurosat_subset(tmp_path / "data", per_class=1, classes=("Forest", "SeaLake"))
    val = copy_eurosat_subset(tmp_path / "val", per_class=1, classes=("Forest", "River"))
    (val / "Forest").rename(val / "forest")
    code, _, stderr = run("train", data, "--val-dir", val, "--no-progress")
    assert code == 2 and stderr.strip() == (
        f"Error: River in '{val}': not a class of the training data (it knows Forest, SeaLake; the folder has "
        "River, forest)")

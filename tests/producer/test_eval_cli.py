"""``tileclass eval`` (and ``predict`` by model name) through the real CLI, on held-out EuroSAT patches and a real
SQLite registry: the scores add up, the worst mistakes are the confident wrong answers, two precisions are
compared, folder names match in any case, and every bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.db import session_scope
from core.models.registry import register_checkpoint
from core.settings import get_settings
from producer.cli import app
from tests.conftest import SUBSET_CLASSES, copy_eurosat_subset

PER_CLASS = 8


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def test_set(tmp_path: Path) -> Path:
    """Held-out patches (never trained on) in folders named in lower case."""
    folder = copy_eurosat_subset(tmp_path / "test", per_class=PER_CLASS, first=1001)
    for name in SUBSET_CLASSES:
        (folder / name).rename(folder / name.lower())
    return folder


@pytest.fixture
def registry(sqlite_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("TILECLASS_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("TILECLASS_MODEL_DIR", str(tmp_path / "models"))
    get_settings.cache_clear()
    return sqlite_url


@pytest.mark.slow
def test_eval_scores_add_up_and_draws_the_confusion_matrix_and_the_worst_mistakes(
        trained_checkpoint: Path, test_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    code, stdout, stderr = run("eval", trained_checkpoint, test_set, "--out", out, "--json", "--device", "cpu",
                               "--precision", "fp32", "--mistakes", "5", "--no-progress")
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["images"] == 4 * PER_CLASS and report["class_names"] == list(SUBSET_CLASSES)
    matrix = report["confusion_matrix"]
    assert [sum(row) for row in matrix] == [PER_CLASS] * 4  # every lower-case folder went to its class
    assert report["accuracy"] == pytest.approx(sum(matrix[i][i] for i in range(4)) / (4 * PER_CLASS))
    assert report["accuracy"] > 0.5  # the session model is about 80% accurate
    for index, name in enumerate(SUBSET_CLASSES):
        row = report["per_class"][name]
        predicted = sum(matrix[r][index] for r in range(4))
        assert row["recall"] == pytest.approx(matrix[index][index] / PER_CLASS)
        assert row["precision"] == pytest.approx(matrix[index][index] / predicted if predicted else 0.0)
        assert row["f1"] == pytest.approx(2 * row["precision"] * row["recall"] / (row["precision"] + row["recall"])
                                          if row["precision"] + row["recall"] else 0.0)
    assert report["macro_f1"] == pytest.approx(sum(r["f1"] for r in report["per_class"].values()) / 4)
    wrong = 4 * PER_CLASS - sum(matrix[i][i] for i in range(4))
    mistakes = report["mistakes"]
    assert len(mistakes) == min(5, wrong)
    assert [m["confidence"] for m in mistakes] == sorted((m["confidence"] for m in mistakes), reverse=True)
    for mistake in mistakes:
        assert mistake["true"] != mistake["predicted"]
        assert Path(mistake["image"]).parent.name == mistake["true"].lower()
    for name in ("confusion.png", "mistakes.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "eval.json").read_text())["accuracy"] == report["accuracy"]
    code, stdout, _ = run("eval", trained_checkpoint, test_set, "--device", "cpu", "--precision", "fp32",
                          "--no-progress")
    lines = stdout.splitlines()
    assert code == 0 and lines[1] == f"accuracy {report['accuracy']:.2%}   macro F1 {report['macro_f1']:.3f}   " \
        f"loss {report['loss']:.3f}"
    assert any(line.split()[:2] == ["[0]", "Forest"] and line.split()[-1] == str(PER_CLASS) for line in lines)


@pytest.mark.slow
def test_bf16_against_fp32_reports_how_many_predictions_agree(trained_checkpoint: Path, test_set: Path) -> None:
    # int8 takes the same path (a second Classifier at --compare's precision); bf16 spares the test its compile.
    code, stdout, stderr = run("eval", trained_checkpoint, test_set, "--precision", "bf16", "--compare", "fp32",
                               "--device", "cpu", "--json", "--no-progress")
    assert code == 0, stderr
    report = json.loads(stdout)
    compared = report["compare"]
    assert report["precision"] == "bf16" and compared["precision"] == "fp32" and compared["images"] == 32
    assert compared["agreement"] == compared["agree"] / 32 and compared["agree"] >= 30  # measured: 99.5% agree
    assert abs(compared["accuracy"] - report["accuracy"]) <= 2 / 32
    code, stdout, _ = run("eval", trained_checkpoint, test_set, "--precision", "bf16", "--compare", "fp32",
                          "--device", "cpu", "--no-progress")
    assert code == 0 and f"bf16 and fp32 agree on {compared['agree']} of 32 images" in stdout


@pytest.mark.slow
def test_a_registered_model_is_taken_by_name_or_hash_and_tta_averages_views(
        trained_checkpoint: Path, test_set: Path, registry: str) -> None:
    with session_scope() as session:
        model_hash = register_checkpoint(session, checkpoint=trained_checkpoint, settings=get_settings()).hash
    assert run("models", "name", model_hash[:8], "eurosat-v1")[0] == 0
    for ref in ("eurosat-v1", model_hash[:8]):
        code, stdout, stderr = run("eval", ref, test_set, "--json", "--device", "cpu", "--precision", "fp32",
                                   "--tta", "--tta-views", "2", "--no-progress")
        assert code == 0, stderr
        report = json.loads(stdout)
        assert report["sha256"] == model_hash and report["model"] == "eurosat-v1" and report["tta_views"] == 2
    image = test_set / "forest" / "Forest_1001.jpg"
    code, stdout, stderr = run("predict", "eurosat-v1", image, "--tta", "--json", "--device", "cpu")
    assert code == 0, stderr
    assert json.loads(stdout)[0]["label"] in SUBSET_CLASSES


@pytest.mark.slow
def test_bad_inputs_are_one_line_errors(trained_checkpoint: Path, test_set: Path, registry: str,
                                        tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    unknown = copy_eurosat_subset(tmp_path / "unknown", per_class=1, classes=("Forest", "Pasture"))
    checkpoint = str(trained_checkpoint)
    cases = {
        ("porto-v9", test_set): "model 'porto-v9' is not a checkpoint file, a model name or a registered model "
                                "hash (registered: none)",
        (tmp_path / "runs" / "model.pt", test_set): "does not exist",
        (checkpoint, tmp_path / "empty"): "no class folders in",
        (checkpoint, tmp_path / "missing"): "does not exist or is not a directory",
        (checkpoint, unknown): "Pasture in '" + str(unknown) + "': not a class of model " + checkpoint +
                               " (it knows Forest, Highway, Residential, SeaLake; the folder has Forest, Pasture)",
        (checkpoint, test_set, "--precision", "fp16"): "unknown precision 'fp16': choose one of auto, fp32, bf16, int8",
        (checkpoint, test_set, "--precision", "fp32", "--compare", "fp32"): "--compare fp32 is the --precision",
        (checkpoint, test_set, "--compare", "half"): "unknown --compare precision 'half'",
        (checkpoint, test_set, "--tta", "--tta-views", "3"): "takes 1, 2, 4, 8 views, not 3",
    }
    for args, words in cases.items():
        code, stdout, stderr = run("eval", *args, "--device", "cpu", "--no-progress")
        assert code == 2 and stdout == "" and len(stderr.strip().splitlines()) == 1, (args, stderr)
        assert stderr.startswith("Error: ") and words in stderr, (args, stderr)
    code, _, stderr = run("eval", checkpoint, test_set, "--mistakes", "-1")
    assert code == 2 and "Invalid value for '--mistakes'" in stderr

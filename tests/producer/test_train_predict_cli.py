"""``tileclass train`` and ``tileclass predict`` end to end through the real CLI (CliRunner, real files, real DB)."""

from __future__ import annotations

import base64
import inspect
import json
from dataclasses import asdict, fields
from pathlib import Path

import pytest
from typer.testing import CliRunner

from model.config import TrainConfig
from producer.cli import app
from producer.commands import train as train_command
from tests.conftest import EUROSAT, SUBSET_CLASSES, copy_eurosat_subset


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.slow
def test_train_end_to_end_writes_outputs_prints_tutorial_lines_and_registers(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = copy_eurosat_subset(tmp_path / "data", per_class=12, classes=("Forest", "SeaLake", "Highway"))
    (data / "Forest" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    code, out, err = run("train", str(data), "--epochs", "2", "--batch-size", "8", "--eval-every", "2",
                         "--image-size", "32", "--lr", "0.01", "--out", str(tmp_path / "run"), "--no-progress")
    assert code == 0, out + err
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"model.pt", "model.json", "metrics.json", "loss.png",
                                                              "confusion.png"}
    lines = out.splitlines()
    periodic = [line for line in lines if line.startswith("Epoch ") and ".. Step " in line]
    assert len(periodic) == 3  # 27 training images / batch 8 = 3 steps per epoch: steps 2, 4 and 6
    assert periodic[0].startswith("Epoch 1/2.. Step 2.. Train loss: ")
    assert ".. Validation loss: " in periodic[0] and ".. Validation accuracy: " in periodic[0]
    assert "skipped 1 unreadable image(s) (1 truncated image)" in caplog.text
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert len(metrics["evaluations"]) == 3 and metrics["skipped_count"] == 1
    assert set(metrics["per_class"]) == {"Forest", "Highway", "SeaLake"}
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["val_images"] == 6
    sha = json.loads((tmp_path / "run" / "model.json").read_text())["sha256"]
    assert f"model sha256 {sha} (registered)" in out
    assert (tmp_path / "models" / f"{sha}.pt").is_file()  # the registry copied it into TILECLASS_MODEL_DIR
    from core.db import session_scope
    from core.schema import Model

    with session_scope() as session:
        model = session.get(Model, sha)
        assert model is not None and model.class_names == ["Forest", "Highway", "SeaLake"]
        assert model.image_size == 32


@pytest.mark.parametrize(("layout", "message"), [
    ("missing", "does not exist"),
    ("flat", "no class folders"),
    ("one", "only one class folder (Forest)"),
    ("empty", "class folders without images in"),
])
def test_bad_data_dirs_are_one_line_errors(tmp_path: Path, layout: str, message: str) -> None:
    data = tmp_path / "data"
    if layout == "flat":
        data.mkdir()
    elif layout == "one":
        copy_eurosat_subset(data, per_class=2, classes=("Forest",))
    elif layout == "empty":
        copy_eurosat_subset(data, per_class=2, classes=("Forest",))
        (data / "River").mkdir()
    code, out, err = run("train", str(data), "--no-progress")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [err.strip()] and err.startswith("Error: ") and message in err


def test_bad_options_name_the_choices(tmp_path: Path) -> None:
    code, _, err = run("train", str(tmp_path), "--arch", "vgg16")
    assert code == 2 and "unknown arch 'vgg16': choose one of resnet18, resnet34, resnet50, resnet101" in err
    code, _, err = run("train", str(tmp_path), "--val-split", "1.5")
    assert code == 2 and "val_split 1.5: must be in (0, 1)" in err


def test_cli_defaults_are_the_train_config_defaults() -> None:
    parameters = inspect.signature(train_command.train).parameters
    renamed = {"time_budget_minutes": "time_budget"}
    for field in fields(TrainConfig):
        if field.name == "device":
            continue  # the CLI falls back to TILECLASS_DEVICE
        option = parameters[renamed.get(field.name, field.name)].default
        assert option.default == field.default, field.name


@pytest.mark.slow
def test_predict_prints_top_k_and_json(trained_checkpoint: Path, tmp_path: Path) -> None:
    images = [EUROSAT / name / f"{name}_1001.jpg" for name in SUBSET_CLASSES]
    code, out, _ = run("predict", str(trained_checkpoint), *map(str, images), "--top-k", "2", "--device", "cpu")
    assert code == 0
    assert out.splitlines()[0] == str(images[0]) and len(out.splitlines()) == 4 * 3
    code, out, _ = run("predict", str(trained_checkpoint), str(images[0]), str(tmp_path / "gone.png"), "--json",
                         "--top-k", "4")
    assert code == 2
    results = json.loads(out)
    assert results[1] == {"image": str(tmp_path / "gone.png"), "error": "no such file"}
    first = results[0]
    assert first["top_k"][0]["label"] == first["label"]
    assert sum(entry["probability"] for entry in first["top_k"]) == pytest.approx(1, abs=1e-4)


@pytest.mark.slow
def test_predict_sample_draws_the_tutorial_figure(trained_checkpoint: Path, eurosat_subset: Path,
                                                  tmp_path: Path) -> None:
    figure = tmp_path / "sample.png"
    code, out, _ = run("predict", str(trained_checkpoint), "--sample", "5", str(eurosat_subset), "--plot",
                       str(figure), "--seed", "3", "--json")
    assert code == 0
    results = json.loads(out)
    assert len(results) == 5
    for result in results:
        assert result["true_label"] == Path(result["image"]).parent.name
        assert result["correct"] == (result["label"] == result["true_label"])
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = run("predict", str(trained_checkpoint), "--plot", str(figure), "a.jpg")
    assert code == 2 and "--plot needs --sample" in err


def test_predict_refuses_a_pickled_model(tmp_path: Path) -> None:
    import torch
    from torchvision.models import resnet18

    torch.save(resnet18(num_classes=3), tmp_path / "aerialmodel.pth")
    code, _, err = run("predict", str(tmp_path / "aerialmodel.pth"), str(EUROSAT / "Forest" / "Forest_1.jpg"))
    assert code == 2 and err.startswith("Error: aerialmodel.pth is a pickled whole model") and err.count("\n") == 1


@pytest.mark.integration
def test_queue_creates_a_train_job_and_sends_it(tmp_path: Path, redis_url: str, sqlite_url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import redis

    from core.db import session_scope
    from core.messages import TRAIN_QUEUE, TRAIN_TASK
    from core.schema import Job
    from core.settings import get_settings

    monkeypatch.setenv("TILECLASS_BROKER_URL", redis_url)
    monkeypatch.setenv("TILECLASS_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    data = copy_eurosat_subset(tmp_path / "data", per_class=2, classes=("Forest", "River"))
    code, out, err = run("train", str(data), "--queue", "--epochs", "3", "--arch", "resnet34", "--json")
    assert code == 0, out + err
    job_id = json.loads(out)["job_id"]
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None and (job.kind, job.state) == ("train", "queued")
    raw = redis.Redis.from_url(redis_url).lindex(TRAIN_QUEUE, 0)
    envelope = json.loads(raw)
    assert envelope["headers"]["task"] == TRAIN_TASK and envelope["content-type"] == "application/json"
    _, kwargs, _ = json.loads(base64.b64decode(envelope["body"]))
    request = kwargs["request"]
    assert request["job_id"] == job_id and request["data_dir"] == str(data.resolve())
    assert TrainConfig(**request["config"]) == TrainConfig(epochs=3, arch="resnet34")
    assert request["config"] == asdict(TrainConfig(epochs=3, arch="resnet34"))

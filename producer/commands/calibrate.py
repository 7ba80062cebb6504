"""``tileclass calibrate MODEL VAL_DIR``: fit a model's temperature on labelled images, as a new model.

Temperature scaling (Guo et al. 2017, model/calibration.py) divides the network's scores by one number T before
the softmax, chosen so that the confidences on VAL_DIR are as likely as can be (minimum NLL): afterwards a
confidence of 0.9 is right about 9 times in 10, and no answer changes. ``tileclass train`` fits T on its own
validation split; this command fits it for a model trained before that, or on other images.

The old checkpoint is never rewritten. The new one is the old one with the temperature (and how it was fitted)
in its metadata, everything else kept (weights, preprocessing, int8 quantization images, training record), so it
has a new hash and is registered as a new model. A name the old model had moves to the new one; the old one stays
registered and addressable by its hash. VAL_DIR should be images the model never trained on, and not the ones
``tileclass eval`` then judges it on. torch is imported only when the command runs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import typer

from core.errors import TileclassError
from core.sidecar import sidecar_path
from producer.commands.options import Json

CALIBRATED_SUFFIX = "-calibrated"


def calibrate(
    model: str = typer.Argument(..., metavar="MODEL", help="A checkpoint file, a model name, or a registered model "
                                                           "hash (or a unique prefix of 6+ characters)."),
    val_dir: Path = typer.Argument(..., metavar="VAL_DIR", help="Labelled ImageFolder the model did not train on: "
                                   "one sub-folder of images per class, named like the model's classes (any case)."),
    out: Path | None = typer.Option(
        None, help="The new checkpoint (.pt; its .json sidecar beside it). Default: NAME-calibrated.pt beside a "
                   "checkpoint given as a file; for a registered model, only the model directory's copy under "
                   "its new hash."),
    precision: str = typer.Option(
        "fp32", help="Precision of the forward passes the temperature is fitted on: fp32, bf16, auto or int8."),
    batch_size: int = typer.Option(64, min=1, help="Images per forward pass."),
    device: str | None = typer.Option(None, help="auto, cpu, cuda or cuda:N. Default: TILECLASS_DEVICE (auto)."),
    workers: int = typer.Option(0, min=0, help="Image decoding threads (0: one per CPU)."),
    register: bool = typer.Option(
        True, help="Register the new checkpoint in the results database and move the old model's name to it."),
    progress: bool = typer.Option(True, help="Show progress bars (on stderr)."),
    as_json: Json = False,
) -> None:
    """Fit a model's temperature on a labelled validation folder; writes and registers it as a new model."""
    from producer.commands.errors import require_ml

    require_ml("calibrate")
    from core.choices import INFERENCE_PRECISIONS, check_choice
    from core.settings import get_settings
    from model.data import scan_image_folder
    from producer.checkpoints import locate_checkpoint

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    check_choice("precision", precision, INFERENCE_PRECISIONS)
    scan_image_folder(val_dir, min_classes=1)  # a missing or empty folder fails before a model is loaded
    if out is not None and out.suffix != ".pt":
        raise TileclassError(f"--out {str(out)!r} must name a .pt file (its sidecar is written beside it as .json)")
    located = locate_checkpoint(model)
    target = out or _default_target(located.path, registered=located.sha256 is not None, register=register)
    if target is not None and (target.exists() or target.resolve() == located.path.resolve()):
        raise TileclassError(f"{target} already exists and calibrate never overwrites a checkpoint: "
                             "choose another --out")
    fitted = _fit(located.path, located.sha256, val_dir, label=located.label, device=device or get_settings().device,
                  precision=precision, batch_size=batch_size, workers=workers, progress=progress)
    summary = _write_and_register(fitted, located.path, target, register=register) | {"model": located.label,
                                                                                      "val_dir": str(val_dir)}
    typer.echo(json.dumps(summary, indent=2) if as_json else _describe(summary))


def _default_target(source: Path, *, registered: bool, register: bool) -> Path | None:
    """Beside a checkpoint given as a file; None (a temporary file, then the model directory) for a registered one."""
    if not registered:
        return source.with_name(f"{source.stem}{CALIBRATED_SUFFIX}.pt")
    if not register:
        raise TileclassError("with --no-register, a registered model's calibrated checkpoint needs --out FILE.pt")
    return None


def _fit(path: Path, expected_sha256: str | None, val_dir: Path, *, label: str, device: str, precision: str,
         batch_size: int, workers: int, progress: bool) -> dict[str, Any]:
    """The temperature fitted on ``val_dir``, what it does there, and the checkpoint's bytes it was fitted for."""
    import hashlib

    from model.calibration import fit_summary, fit_temperature, scores_from
    from model.data import load_labelled
    from model.errors import ChecksumMismatch
    from model.eval_folder import predict_images
    from model.predict import Classifier

    data = path.read_bytes()  # one read: the file that is fitted is the file that is copied
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise ChecksumMismatch(f"{path.name} has sha256 {digest[:12]}…, expected {expected_sha256[:12]}…: "
                               "the file was changed or is a different model; register it again")
    classifier = Classifier.load(path, device=device, precision=precision, expected_sha256=digest,
                                 batch_size=batch_size)
    images = load_labelled(val_dir, known=classifier.class_names, known_as=f"model {label}",
                           size=classifier.image_size, fill=classifier.input_fill, workers=workers, progress=progress)
    probabilities = predict_images(classifier, images.images, batch_size=batch_size, progress=progress)
    # The forward passes give probabilities at the model's current temperature; T log p are its scores up to one
    # constant per image, which a softmax ignores (model/calibration.py).
    scores = scores_from(probabilities, classifier.temperature)
    temperature = fit_temperature(scores, images.labels)
    accuracy = float((probabilities.argmax(dim=1) == images.labels).double().mean())
    record = fit_summary(scores, images.labels, temperature) | {"accuracy": accuracy, "precision": classifier.precision}
    return {"data": data, "old_sha256": digest, "previous_temperature": classifier.temperature,
            "record": record, "skipped": len(images.skipped)}


def _write_and_register(fitted: dict[str, Any], source: Path, target: Path | None, *,
                        register: bool) -> dict[str, Any]:
    from model.calibration import write_calibrated

    record = fitted["record"]
    summary: dict[str, Any] = {"old_sha256": fitted["old_sha256"],
                               "previous_temperature": fitted["previous_temperature"], **record,
                               "skipped": fitted["skipped"], "registered": False, "name": None}
    # Written in a folder of its own first (beside the target, so that it can be linked there), then published.
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".tileclass-calibrate-", dir=target.parent if target else None) as folder:
        written = Path(folder) / "model.pt"
        summary["sha256"] = write_calibrated(source, written, temperature=record["temperature"], record=record,
                                             data=fitted["data"])
        if target is not None:
            _publish(written, target)
            summary["checkpoint"] = str(target)
        if register:
            summary |= _register(target or written, fitted["old_sha256"])
    if target is None:
        summary["checkpoint"] = summary["stored"]  # the model directory's copy is the only one
    return summary


def _publish(written: Path, target: Path) -> None:
    """Put ``written`` at ``target`` unless a file is there already (a hard link, or an exclusive create where links
    are not allowed, fails rather than replace one, so nothing that appears there meanwhile is overwritten), then its
    sidecar beside it."""
    try:
        try:
            os.link(written, target)
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links
            with target.open("xb") as copy, written.open("rb") as original:
                shutil.copyfileobj(original, copy)
    except FileExistsError:
        raise TileclassError(f"{target} already exists and calibrate never overwrites a checkpoint: "
                             "choose another --out") from None
    os.replace(sidecar_path(written), sidecar_path(target))


def _register(checkpoint: Path, old_sha256: str) -> dict[str, Any]:
    """Register ``checkpoint`` (copied into the model directory under its hash) and move the old model's name."""
    from sqlalchemy.exc import SQLAlchemyError

    from core.models.manage import move_name
    from core.models.registry import register_checkpoint
    from core.settings import get_settings
    from producer.session import open_session

    try:
        with open_session() as session:
            model = register_checkpoint(session, checkpoint=checkpoint, settings=get_settings())
            name = move_name(session, from_hash=old_sha256, to_hash=model.hash)
            stored = model.path
    except SQLAlchemyError as exc:
        raise TileclassError(f"registering the calibrated checkpoint failed ({exc.__class__.__name__}: "
                             f"{str(exc).splitlines()[0][:200]}); run with --no-register --out FILE.pt") from None
    return {"registered": True, "name": name, "stored": stored}


def _describe(summary: dict[str, Any]) -> str:
    lines = [
        f"model {summary['model']} on {summary['images']:,} images of {summary['val_dir']}: temperature "
        f"{summary['temperature']:.4g} (was {summary['previous_temperature']:.4g})",
        f"ECE {summary['ece_before']:.2%} -> {summary['ece_after']:.2%}, NLL {summary['nll_before']:.3f} -> "
        f"{summary['nll_after']:.3f} (before: T = 1); accuracy {summary['accuracy']:.2%}, unchanged by a temperature",
        f"wrote {summary['checkpoint']} (sha256 {summary['sha256'][:12]}…)",
    ]
    if summary["skipped"]:
        lines.insert(1, f"skipped {summary['skipped']:,} image(s) that could not be decoded")
    if summary["registered"]:
        moved = (f"; name {summary['name']!r} moved to it from {summary['old_sha256'][:12]}, which stays registered "
                 "under its hash" if summary["name"] else "")
        lines.append(f"registered as model {summary['sha256'][:12]}{moved}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate)

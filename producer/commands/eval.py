"""``tileclass eval MODEL DATA_DIR``: how good is a checkpoint on a labelled test set?

Prints accuracy, per-class precision, recall and F1, the confusion matrix, and how calibrated the confidences are:
ECE over 15 bins, NLL and Brier score before the model's temperature (T = 1) and after it (``--json``: one object
for scripts). ``--out DIR`` writes ``confusion.png``, ``mistakes.png`` (a grid of the most confident wrong answers:
image, true class, predicted class, confidence), ``reliability.png`` (reliability diagrams with their confidence
histograms, before and after the temperature) and ``eval.json``. Class folders are matched to the model's
classes case-insensitively, and a test set may hold only some of them. ``--precision bf16|int8 --compare fp32``
also classifies at the second precision and reports how many predictions agree. The library behind it is
model/eval_folder.py; torch is imported only when the command runs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from core.errors import TileclassError
from producer.commands.options import Json, Tta, TtaViews

if TYPE_CHECKING:
    import torch

    from model.eval_folder import CalibrationReport, Mistake


def eval_(
    model: str = typer.Argument(..., metavar="MODEL", help="A checkpoint file, a model name, or a registered model "
                                                           "hash (or a unique prefix of 6+ characters)."),
    data_dir: Path = typer.Argument(..., metavar="DATA_DIR", help="Labelled ImageFolder: one sub-folder of images "
                                    "per class, named like the model's classes (in any case)."),
    out: Path | None = typer.Option(None, help="Folder for confusion.png, mistakes.png, reliability.png and "
                                                "eval.json."),
    precision: str = typer.Option(
        "auto", help="auto (bf16 where the hardware computes it), fp32, bf16, or int8 (CPU only, quantized)."),
    compare: str | None = typer.Option(
        None, metavar="PRECISION", help="Also classify at this precision (e.g. fp32) and report how many "
                                        "predictions agree with --precision."),
    tta: Tta = False,
    tta_views: TtaViews = 8,
    mistakes: int = typer.Option(16, min=0, help="How many of the most confident wrong answers to draw in "
                                                 "mistakes.png (and list with --json)."),
    batch_size: int = typer.Option(64, min=1, help="Images per forward pass."),
    device: str | None = typer.Option(None, help="auto, cpu, cuda or cuda:N. Default: TILECLASS_DEVICE (auto)."),
    workers: int = typer.Option(0, min=0, help="Image decoding threads (0: one per CPU)."),
    progress: bool = typer.Option(True, help="Show progress bars (on stderr)."),
    as_json: Json = False,
) -> None:
    """Evaluate a model on a labelled ImageFolder: accuracy, per-class precision/recall/F1, confusion matrix,
    calibration (ECE, NLL, Brier score before and after the model's temperature)."""
    from producer.commands.errors import require_ml

    require_ml("eval")
    from core.choices import INFERENCE_PRECISIONS, check_choice
    from core.settings import get_settings
    from model.data import load_labelled, scan_image_folder
    from model.eval_folder import agreement, calibration_report, predict_images, score, worst_mistakes
    from model.predict import Classifier
    from model.tta import check_views
    from producer.checkpoints import locate_checkpoint

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    check_choice("precision", precision, INFERENCE_PRECISIONS)
    if compare is not None and check_choice("--compare precision", compare, INFERENCE_PRECISIONS) == precision:
        raise TileclassError(f"--compare {compare} is the --precision already: compare with another precision")
    views = check_views(tta_views) if tta else 1
    scan_image_folder(data_dir, min_classes=1)  # an empty or missing folder fails before a model is loaded
    located = locate_checkpoint(model)
    device = device or get_settings().device

    def load(chosen: str) -> Classifier:
        return Classifier.load(located.path, device=device, precision=chosen, expected_sha256=located.sha256,
                               batch_size=batch_size, tta_views=views)

    classifier = load(precision)
    data = load_labelled(data_dir, known=classifier.class_names, known_as=f"model {located.label}",
                         size=classifier.image_size, fill=classifier.input_fill, workers=workers, progress=progress)
    probabilities = predict_images(classifier, data.images, batch_size=batch_size, progress=progress)
    report = score(probabilities, data.labels, classifier.class_names) | {
        "model": located.label, "sha256": classifier.sha256, "data_dir": str(data_dir), "images": len(data.labels),
        "skipped": len(data.skipped), "device": str(classifier.device), "precision": classifier.precision,
        "tta_views": views}
    calibration = calibration_report(probabilities, data.labels, temperature=classifier.temperature)
    report["calibration"] = calibration.as_dict()
    if compare is not None:
        other = load(compare)
        second = predict_images(other, data.images, batch_size=batch_size, progress=progress)
        agree = agreement(probabilities, second)
        report["compare"] = {"precision": other.precision, "agree": agree, "images": len(data.labels),
                             "agreement": agree / max(len(data.labels), 1),
                             "accuracy": score(second, data.labels, other.class_names)["accuracy"]}
    worst = worst_mistakes(probabilities, data.labels, classifier.class_names, count=mistakes)
    report["mistakes"] = [{"image": str(data.paths[m.index]), "true": m.true_label, "predicted": m.predicted,
                           "confidence": m.confidence} for m in worst]
    if out is not None:
        report["out"] = _write_outputs(out, report, worst, data.images, data.paths, calibration)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print(report)


def _write_outputs(out: Path, report: dict[str, Any], worst: list[Mistake], images: torch.Tensor,
                   paths: list[Path], calibration: CalibrationReport) -> dict[str, str]:
    from model.plots import plot_confusion, plot_reliability, plot_samples

    out.mkdir(parents=True, exist_ok=True)
    written = {"confusion": out / "confusion.png", "mistakes": out / "mistakes.png",
               "reliability": out / "reliability.png", "report": out / "eval.json"}
    panels = ([("before: T = 1", calibration.before), (f"after: T = {calibration.temperature:.3g}",
                                                       calibration.after)]
              if calibration.calibrated else [("uncalibrated: T = 1", calibration.after)])
    plot_reliability(written["reliability"], panels=panels)
    plot_confusion(written["confusion"], matrix=report["confusion_matrix"], class_names=report["class_names"])
    plot_samples(written["mistakes"], images=[images[m.index].permute(1, 2, 0).numpy() for m in worst],
                 titles=[f"{paths[m.index].name}\ntrue: {m.true_label}\npredicted: {m.predicted} ({m.confidence:.2f})"
                         for m in worst], empty="no mistakes")
    written["report"].write_text(json.dumps(report | {"out": {k: str(v) for k, v in written.items()}}, indent=2)
                                 + "\n")
    return {key: str(path) for key, path in written.items()}


def _print(report: dict[str, Any]) -> None:
    tta = f", test-time augmentation over {report['tta_views']} views" if report["tta_views"] > 1 else ""
    typer.echo(f"model {report['model']} on {report['images']:,} images of {report['data_dir']} "
               f"({report['device']}, {report['precision']}{tta})")
    if report["skipped"]:
        typer.echo(f"skipped {report['skipped']:,} image(s) that could not be decoded")
    typer.echo(f"accuracy {report['accuracy']:.2%}   macro F1 {report['macro_f1']:.3f}   loss {report['loss']:.3f}")
    names = report["class_names"]
    width = max(len(name) for name in names) + 5
    typer.echo(f"\n{'class':<{width}} precision  recall      F1  support")
    for index, name in enumerate(names):
        row = report["per_class"][name]
        typer.echo(f"{f'[{index}] {name}':<{width}} {row['precision']:9.3f} {row['recall']:7.3f} {row['f1']:7.3f} "
                   f"{row['support']:8,}")
    cell = max(5, len(f"{max(map(max, report['confusion_matrix'])):,}") + 1)
    typer.echo(f"\nconfusion matrix (rows: true class, columns: predicted)\n{'':<{width}}"
               + "".join(f"{f'[{i}]':>{cell}}" for i in range(len(names))))
    for index, (name, counts) in enumerate(zip(names, report["confusion_matrix"], strict=True)):
        typer.echo(f"{f'[{index}] {name}':<{width}}" + "".join(f"{count:>{cell},}" for count in counts))
    _print_calibration(report["calibration"])
    if "compare" in report:
        compared = report["compare"]
        typer.echo(f"\n{report['precision']} and {compared['precision']} agree on {compared['agree']:,} of "
                   f"{compared['images']:,} images ({compared['agreement']:.2%}); {compared['precision']} accuracy "
                   f"{compared['accuracy']:.2%}")
    if "out" in report:
        typer.echo(f"\nwrote {', '.join(Path(p).name for p in report['out'].values())} to "
                   f"{Path(report['out']['report']).parent}")


def _print_calibration(calibration: dict[str, Any]) -> None:
    before, after = calibration["before"], calibration["after"]

    def figures(row: dict[str, float]) -> str:
        return f"ECE {row['ece']:6.2%}   NLL {row['nll']:.3f}   Brier {row['brier']:.3f}"

    typer.echo(f"\ncalibration (ECE over {calibration['bins']} equal-width bins, NLL, Brier score)")
    if not calibration["calibrated"]:
        typer.echo(f"  T = 1            {figures(after)}")
        typer.echo("  this model is uncalibrated (temperature 1.0): 'tileclass calibrate MODEL VAL_DIR' fits a "
                   "temperature on a labelled validation folder")
        return
    labels = ("before (T = 1)", f"after (T = {calibration['temperature']:.3g})")
    width = max(map(len, labels)) + 3
    typer.echo(f"  {labels[0]:<{width}}{figures(before)}")
    typer.echo(f"  {labels[1]:<{width}}{figures(after)}")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_)

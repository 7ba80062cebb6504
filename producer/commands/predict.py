"""``tileclass predict MODEL IMAGE...``: classify image files with a checkpoint, top-k with probabilities.

MODEL is a checkpoint file, or a registered model's name or hash (producer/checkpoints.py). ``--tta`` averages
each image's probabilities over flipped and turned copies (model/tta.py).

``--sample N DATA_DIR --plot FILE`` is the tutorial's check: N random images of an ImageFolder directory,
predicted and drawn side by side, titled "predicted:correct?". Unreadable images are reported one line each
(exit code 2 after the others are printed); torch is imported only when the command runs.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from core.errors import TileclassError
from producer.commands.options import Json, Tta, TtaViews

if TYPE_CHECKING:
    from model.predict import Classifier


def predict(
    model: str = typer.Argument(..., metavar="MODEL", help="A checkpoint file (model.pt written by 'tileclass "
                                "train'), a model name, or a registered model hash (or a unique prefix of 6+ "
                                "characters)."),
    images: list[Path] = typer.Argument(
        None, help="Image files to classify; with --sample, the one ImageFolder DATA_DIR to sample from."),
    top_k: int = typer.Option(3, min=1, help="How many classes to show per image."),
    as_json: Json = False,
    sample: int | None = typer.Option(
        None, metavar="N", help="Predict N random images of DATA_DIR (given as the only IMAGE) and check them."),
    plot: Path | None = typer.Option(None, help="With --sample: save the tutorial's figure of the sample here."),
    seed: int | None = typer.Option(None, help="Seed for --sample (default: a different sample each run)."),
    device: str | None = typer.Option(None, help="auto, cpu, cuda or cuda:N. Default: TILECLASS_DEVICE (auto)."),
    precision: str = typer.Option(
        "auto", help="auto (bf16 where the hardware computes it), fp32, bf16, or int8 (CPU only, quantized)."
    ),
    tta: Tta = False,
    tta_views: TtaViews = 8,
) -> None:
    """Classify images with a trained checkpoint and print the top classes with their probabilities."""
    from producer.commands.errors import require_ml

    require_ml("predict")
    from core.settings import get_settings
    from model.predict import Classifier
    from producer.checkpoints import locate_checkpoint

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")

    images = list(images or [])
    if plot is not None and sample is None:
        raise TileclassError("--plot needs --sample N DATA_DIR")
    if sample is not None:
        if len(images) != 1 or sample < 1:
            raise TileclassError("--sample N needs N >= 1 and exactly one DATA_DIR, e.g. "
                                 "'tileclass predict model.pt --sample 5 eurosat-rgb --plot sample.png'")
        labelled = _sample(images[0], sample, seed)
    elif not images:
        raise TileclassError("no images given: tileclass predict MODEL IMAGE... (or --sample N DATA_DIR)")
    else:
        labelled = [(path, None) for path in images]
    located = locate_checkpoint(model)
    classifier = Classifier.load(located.path, device=device or get_settings().device, precision=precision,
                                 expected_sha256=located.sha256, tta_views=tta_views if tta else 1)
    results, pictures = _classify(classifier, labelled, top_k)
    _print(results, as_json)
    if plot is not None and pictures:
        from model.plots import plot_samples

        titles = [f"{r['label']}:{r['correct']}" for r in results if "label" in r]
        plot_samples(plot, images=pictures, titles=titles)
        if not as_json:
            typer.echo(f"figure saved to {plot}")
    failed = [r for r in results if "error" in r]
    if failed:
        raise typer.Exit(2)


def _sample(data_dir: Path, count: int, seed: int | None) -> list[tuple[Path, str | None]]:
    from model.data import scan_image_folder

    folder = scan_image_folder(data_dir)
    chosen = random.Random(seed).sample(folder.samples, min(count, len(folder.samples)))
    return [(path, folder.class_names[label]) for path, label in chosen]


def _classify(classifier: Classifier, labelled: list[tuple[Path, str | None]],
              top_k: int) -> tuple[list[dict[str, Any]], list[Any]]:
    """Results in input order (errors included) and the decoded images, for the figure."""
    from model.errors import ImageError
    from model.images import open_image

    decoded: list[tuple[int, Any, str | None]] = []
    results: list[dict[str, Any]] = []
    for path, truth in labelled:
        try:
            decoded.append((len(results), open_image(path), truth))
            results.append({"image": str(path)})
        except ImageError as exc:
            results.append({"image": str(path), "error": exc.reason})
    predictions = classifier.predict_batch([image for _, image, _ in decoded])
    for (index, _, truth), prediction in zip(decoded, predictions, strict=True):
        results[index] |= {"label": prediction.label, "confidence": prediction.confidence,
                           "top_k": [{"label": name, "probability": p} for name, p in prediction.top(top_k)]}
        if truth is not None:
            results[index] |= {"true_label": truth, "correct": prediction.label == truth}
    return results, [image for _, image, _ in decoded]


def _print(results: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(results, indent=2))
        return
    for result in results:
        if "error" in result:
            typer.echo(f"Error: {result['image']}: {result['error']}", err=True)
            continue
        check = f"  (true: {result['true_label']}, {'correct' if result['correct'] else 'wrong'})" \
            if "true_label" in result else ""
        typer.echo(f"{result['image']}{check}")
        for entry in result["top_k"]:
            typer.echo(f"  {entry['label']:<24} {entry['probability']:.4f}")


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)

"""``tileclass predict MODEL IMAGE...``: classify image files with a checkpoint, top-k with probabilities.

MODEL is a checkpoint file, or a registered model's name or hash (producer/checkpoints.py). ``--tta`` averages
each image's probabilities over flipped and turned copies (model/tta.py). Each image becomes the model's input
exactly as a worker makes a tile's (``Classifier.decode``: ``model.inputs``), so a file gets the worker's answer;
with the worker's coverage rule too: an image with less than ``--min-coverage`` of its pixels holding data (alpha
above 0) is shown as empty (``partial: 6% data``), and ``coverage`` is given for every image decoded.

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
    min_coverage: float | None = typer.Option(
        None, min=0.0, max=1.0, help="Share of an image's pixels that must hold data (alpha > 0) for it to be "
                                     "classified; below it the image is empty. Default: TILECLASS_MIN_COVERAGE (0.5)."),
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
    settings = get_settings()
    classifier = Classifier.load(located.path, device=device or settings.device, precision=precision,
                                 expected_sha256=located.sha256, tta_views=tta_views if tta else 1)
    bound = settings.min_coverage if min_coverage is None else min_coverage
    results, pictures = _classify(classifier, labelled, top_k, max_pixels=settings.worker.max_pixels,
                                  min_coverage=bound)
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


def _classify(classifier: Classifier, labelled: list[tuple[Path, str | None]], top_k: int, *, max_pixels: int,
              min_coverage: float, batch_size: int = 256) -> tuple[list[dict[str, Any]], list[Any]]:
    """Results in input order (errors and empty images included) and the model inputs classified, for the figure."""
    import torch

    from model.errors import EmptyImage, ImageError
    from model.images import read_image_bytes
    from model.inputs import coverage_shortfall

    results: list[dict[str, Any]] = []
    inputs: list[tuple[dict[str, Any], torch.Tensor, str | None]] = []
    for path, truth in labelled:
        result: dict[str, Any] = {"image": str(path)}
        results.append(result)
        try:
            loaded = classifier.decode(read_image_bytes(path), max_pixels=max_pixels)
        except EmptyImage as exc:
            result |= {"empty": exc.reason, "coverage": 0.0}
            continue
        except ImageError as exc:
            result["error"] = exc.reason
            continue
        result["coverage"] = loaded.coverage
        shortfall = coverage_shortfall(loaded.coverage, min_coverage=min_coverage)
        if shortfall is not None:
            result["empty"] = shortfall
            continue
        inputs.append((result, loaded.tensor, truth))
    for start in range(0, len(inputs), batch_size):
        chunk = inputs[start : start + batch_size]
        probabilities = classifier.predict_tensors(torch.stack([tensor for _, tensor, _ in chunk]))
        for (result, _, truth), prediction in zip(chunk, classifier.to_predictions(probabilities), strict=True):
            result |= {"label": prediction.label, "confidence": prediction.confidence,
                       "top_k": [{"label": name, "probability": p} for name, p in prediction.top(top_k)]}
            if truth is not None:
                result |= {"true_label": truth, "correct": prediction.label == truth}
    return results, [tensor.permute(1, 2, 0).numpy() for _, tensor, _ in inputs]


def _print(results: list[dict[str, Any]], as_json: bool) -> None:
    from model.inputs import partial

    if as_json:
        typer.echo(json.dumps(results, indent=2))
        return
    for result in results:
        if "error" in result:
            typer.echo(f"Error: {result['image']}: {result['error']}", err=True)
            continue
        if "empty" in result:
            typer.echo(f"{result['image']}  empty: {result['empty']}")
            continue
        check = f"  (true: {result['true_label']}, {'correct' if result['correct'] else 'wrong'})" \
            if "true_label" in result else ""
        shown = f"  ({partial(result['coverage'])})" if result["coverage"] < 1 else ""
        typer.echo(f"{result['image']}{check}{shown}")
        for entry in result["top_k"]:
            typer.echo(f"  {entry['label']:<24} {entry['probability']:.4f}")


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)

"""Train ResNet18 from scratch on EuroSAT RGB within a time budget: bf16 against fp32, and the short-budget variants.

    .venv/bin/python -m bench.train_eurosat --minutes 25 --parts ratio,accuracy          # the 4 variants: ~2 h
    .venv/bin/python -m bench.train_eurosat --parts standin                              # 256 px speed: ~10 min
    .venv/bin/python -m bench.train_eurosat --minutes 0.5 --classes 3 --per-class 60 \\
        --standin-images 32 --standin-steps 2 --tta-batches 2                            # smoke run: ~3 min

Parts (``--parts``, comma-separated):

- ``ratio``: a short timed segment of identical training steps in fp32 and in bf16 on the same images (the
  baseline measured in the same run), and their ratio;
- ``accuracy``: each variant of ``--variants`` (baseline = tileclass's default recipe; ema; progressive;
  ema+progressive) trained by ``model.train.fit`` at the same ``--minutes`` budget on the same seeded 80% of
  EuroSAT (``--val-dir`` on the other 20%, so that every variant sees the same images), then scored on the
  held-out 20% with each ``--tta-views`` count and timed there (bench/lib/train_variants.py);
- ``standin``: speed only, on EuroSAT patches upscaled to ``--standin-size`` (256 px, a map tile's size): each
  variant's training images/s and the epochs a ``--minutes`` budget allows over 21,600 images, then the
  inference images/s of ``Classifier.predict_tensors`` in chunks of 16 for each TTA view count at 64 and 256 px.

The default recipe: native 64 px, images in memory as uint8, bf16 autocast + channels_last where the hardware
computes bf16, SGD Nesterov with peak lr 0.1, batch 128, weight decay 5e-4, label smoothing 0.1, warm-up then
cosine to zero exactly at the time limit, flips + 90-degree turns + small shifts + mild colour jitter. The last
line printed is the whole summary as JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from bench.lib.eurosat import eurosat_rgb
from bench.lib.train_variants import VARIANTS, run_variant, split_folder, standin_speed, tta_speed
from model.arch import build_model
from model.config import TrainConfig
from model.data import load_images, scan_image_folder
from model.device import autocast, resolve_device, resolve_precision
from model.transforms import IMAGENET_MEAN, IMAGENET_STD, Normalized, augment, resize

EUROSAT_TRAIN_IMAGES = 21_600  # 80% of EuroSAT: what a budget's epochs are counted over


def throughput(images: torch.Tensor, labels: torch.Tensor, *, precision: str, device: torch.device,
               batch_size: int, warmup: int, steps: int) -> float:
    """Training images per second of the recipe's step (augment, forward, backward, SGD) in ``precision``."""
    torch.manual_seed(0)
    net = build_model("resnet18", int(labels.max()) + 1)
    model = Normalized(net, IMAGENET_MEAN, IMAGENET_STD).to(device).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(0)
    started = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
        batch = torch.randint(0, len(images), (batch_size,), generator=generator)
        inputs = augment(images[batch], generator).to(device).contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            output = model(inputs)
        loss = F.cross_entropy(output.float(), labels[batch].to(device), label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()
    return steps * batch_size / (time.perf_counter() - started)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path,
                        help="EuroSAT RGB ImageFolder directory (default: the full set: bench.lib.eurosat).")
    parser.add_argument("--minutes", type=float, default=25.0, help="Training time budget of each variant.")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-eurosat"), help="Output folder.")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda.")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0, help="Training seed (initialisation, order, augmentation).")
    parser.add_argument("--split-seed", type=int, default=0, help="Seed of the train/test split (all variants).")
    parser.add_argument("--parts", default="ratio,accuracy,standin", help="ratio, accuracy, standin.")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"Of {', '.join(VARIANTS)}; the first is the one others are compared with.")
    parser.add_argument("--ema-decay", type=float, default=0.999)
    parser.add_argument("--tta-views", default="1,2,4,8", help="TTA view counts to score and time.")
    parser.add_argument("--classes", type=int, default=10, help="Use the first N classes (smoke runs).")
    parser.add_argument("--per-class", type=int, default=None, help="Use at most N images per class.")
    parser.add_argument("--ratio-steps", type=int, default=10, help="Timed steps per precision for the ratio.")
    parser.add_argument("--standin-size", type=int, default=256)
    parser.add_argument("--standin-images", type=int, default=512, help="Images upscaled for the stand-in.")
    parser.add_argument("--standin-steps", type=int, default=5, help="Timed training steps per variant and size.")
    parser.add_argument("--tta-batches", type=int, default=20, help="Timed chunks of 16 per view count.")
    args = parser.parse_args()
    unknown = set(args.variants.split(",")) - set(VARIANTS) or set(args.parts.split(",")) - {"ratio", "accuracy",
                                                                                           "standin"}
    if unknown:
        parser.error(f"unknown variant or part {sorted(unknown)}")
    args.data = args.data or eurosat_rgb()
    return args


def ratio(args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    folder = scan_image_folder(args.data)
    sample = load_images(folder.samples[:: max(1, len(folder.samples) // 2048)], size=64)
    rates = {p: throughput(sample.images, sample.labels, precision=p, device=device, batch_size=args.batch_size,
                           warmup=3, steps=args.ratio_steps) for p in ("fp32", "bf16")}
    print(f"training throughput: fp32 {rates['fp32']:.0f} images/s, bf16 {rates['bf16']:.0f} images/s, "
          f"bf16/fp32 = {rates['bf16'] / rates['fp32']:.2f}x ({args.ratio_steps} steps of {args.batch_size} each)")
    return {"fp32_images_per_second": rates["fp32"], "bf16_images_per_second": rates["bf16"],
            "bf16_over_fp32": rates["bf16"] / rates["fp32"]}


def accuracy(args: argparse.Namespace, base: TrainConfig) -> list[dict[str, Any]]:
    train, test = split_folder(args.data, args.out / "split", classes=args.classes, per_class=args.per_class,
                               test_share=0.2, seed=args.split_seed)
    views = [int(v) for v in args.tta_views.split(",")]
    rows = [run_variant(name, base, train=train, test=test, out=args.out, views=views, report=print)
            for name in args.variants.split(",")]
    print("\n| variant | epochs | train img/s | accuracy | " + " | ".join(f"TTA {v}" for v in views if v > 1) + " |")
    for row in rows:
        tta = " | ".join(f"{row['tta'][str(v)]['accuracy']:.2%}" for v in views if v > 1)
        print(f"| {row['variant']} | {row['epochs']} | {row['train_images_per_second']:.0f} | "
              f"{row['val_accuracy']:.2%} | {tta} |")
    return rows


def standin(args: argparse.Namespace, base: TrainConfig, device: torch.device, precision: str) -> dict[str, Any]:
    folder = scan_image_folder(args.data)
    sample = load_images(folder.samples[:: max(1, len(folder.samples) // args.standin_images)][:args.standin_images],
                         size=64)
    upscaled = resize(sample.images, args.standin_size)
    names = args.variants.split(",")
    rates = standin_speed(upscaled, sample.labels, size=args.standin_size, base=base, names=names, device=device,
                          precision=precision, steps=args.standin_steps)
    views = [int(v) for v in args.tta_views.split(",")]
    with tempfile.TemporaryDirectory() as work:
        inference = {size: tta_speed(size=size, classes=10, views=views, device=args.device, batches=args.tta_batches,
                                     work=Path(work)) for size in (64, args.standin_size)}
    epochs = {name: args.minutes * 60 * rate / EUROSAT_TRAIN_IMAGES for name, rate in rates.items()}
    print(f"\n| variant ({args.standin_size} px stand-in) | train img/s | vs {names[0]} | "
          f"epochs in {args.minutes:g} min |")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.1f} | {rate / rates[names[0]]:.2f}x | {epochs[name]:.1f} |")
    print("\n| TTA views | " + " | ".join(f"{size} px img/s (vs 1 view)" for size in inference) + " |")
    for count in map(str, views):
        print(f"| {count} | " + " | ".join(f"{r[count]:.0f} ({r[count] / r[str(views[0])]:.2f}x)"
                                           for r in inference.values()) + " |")
    return {"size": args.standin_size, "train_images_per_second": rates, "epochs_in_budget": epochs,
            "inference_images_per_second": {str(size): r for size, r in inference.items()}}


def main() -> None:
    args = arguments()
    device = resolve_device(args.device)
    precision = resolve_precision("auto", device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device} ({precision}), "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    base = TrainConfig(arch="resnet18", weights="none", epochs=1000, batch_size=args.batch_size,
                       time_budget_minutes=args.minutes, seed=args.seed, device=args.device, ema_decay=args.ema_decay)
    parts = args.parts.split(",")
    summary: dict[str, Any] = {"budget_minutes": args.minutes, "precision": precision, "classes": args.classes,
                               "per_class": args.per_class}
    started = time.perf_counter()
    if "ratio" in parts:
        summary["ratio"] = ratio(args, device)
    if "accuracy" in parts:
        summary["variants"] = accuracy(args, base)
    if "standin" in parts:
        summary["standin"] = standin(args, base, device, precision)
    summary["wall_seconds"] = time.perf_counter() - started
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

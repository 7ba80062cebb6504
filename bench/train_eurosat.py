"""Train ResNet18 from scratch on the full EuroSAT RGB set within a time budget, and measure bf16 against fp32.

    .venv/bin/python bench/train_eurosat.py --minutes 30       # the full run (about 35 min of wall clock)
    .venv/bin/python bench/train_eurosat.py --minutes 1        # smoke run

The recipe is tileclass's default ("fast from-scratch"): native 64 px, images held in memory as uint8, bf16
autocast + channels_last where the hardware computes bf16, SGD Nesterov with peak lr 0.1, batch 128, weight decay
5e-4, label smoothing 0.1, warm-up then cosine to zero exactly at the time limit, flips + 90-degree turns + small
shifts + mild colour jitter. Before training, a short timed segment of identical training steps runs in fp32 and
in bf16 on the same images (the baseline measured in the same run), and the ratio is printed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from model.arch import build_model
from model.config import TrainConfig
from model.data import load_images, scan_image_folder
from model.device import autocast, resolve_device
from model.train import fit
from model.transforms import IMAGENET_MEAN, IMAGENET_STD, Normalized, augment

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "eurosat-rgb"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="EuroSAT RGB ImageFolder directory.")
    parser.add_argument("--minutes", type=float, default=30.0, help="Training time budget (training steps only).")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-eurosat"), help="Output folder.")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda.")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ratio-steps", type=int, default=10, help="Timed steps per precision for the ratio.")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")

    folder = scan_image_folder(args.data)
    sample = load_images(folder.samples[:: max(1, len(folder.samples) // 2048)], size=64)
    rates = {p: throughput(sample.images, sample.labels, precision=p, device=device, batch_size=args.batch_size,
                           warmup=3, steps=args.ratio_steps) for p in ("fp32", "bf16")}
    print(f"training throughput: fp32 {rates['fp32']:.0f} images/s, bf16 {rates['bf16']:.0f} images/s, "
          f"bf16/fp32 = {rates['bf16'] / rates['fp32']:.2f}x ({args.ratio_steps} steps of {args.batch_size} each)")

    config = TrainConfig(arch="resnet18", weights="none", epochs=1000, batch_size=args.batch_size, lr=0.1,
                         optimizer="sgd", weight_decay=5e-4, label_smoothing=0.1, schedule="cosine", warmup=0.03,
                         time_budget_minutes=args.minutes, val_split=0.2, seed=args.seed, device=args.device,
                         precision="auto")
    started = time.perf_counter()
    result = fit(config, data_dir=args.data, out_dir=args.out, progress=False, report=print)
    wall = time.perf_counter() - started
    metrics = result.metrics
    # The last epoch is cut short by the budget, so an epoch's time is derived from the measured rate.
    per_epoch = metrics["train_images"] / metrics["images_per_second"]
    validation = [e["epoch_seconds"] - e["train_seconds"] for e in metrics["epochs"]]
    with_eval = per_epoch + sum(validation) / len(validation)
    summary = {
        "val_accuracy": metrics["val_accuracy"], "val_loss": metrics["val_loss"], "best_epoch": metrics["best_epoch"],
        "epochs_run": len(metrics["epochs"]), "steps": metrics["steps"], "precision": metrics["precision"],
        "train_images_per_second": metrics["images_per_second"], "seconds_per_epoch_training": per_epoch,
        "seconds_per_epoch_with_validation": with_eval, "budget_minutes": args.minutes, "wall_seconds": wall,
        "fp32_images_per_second": rates["fp32"], "bf16_images_per_second": rates["bf16"],
        "bf16_over_fp32": rates["bf16"] / rates["fp32"], "checkpoint": str(result.checkpoint),
    }
    print(json.dumps(summary, indent=2))
    print(f"validation accuracy {metrics['val_accuracy']:.4f} on {metrics['val_images']} images after "
          f"{args.minutes:g} min of training ({metrics['images_per_second']:.0f} images/s, "
          f"{per_epoch:.0f} s per epoch of training, {with_eval:.0f} s with validation); wall {wall / 60:.1f} min")


if __name__ == "__main__":
    main()

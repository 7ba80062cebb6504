"""What bench/gpu_check.sh needs on a GPU machine and cannot make there, made here in ``.gpu/`` (ignored by git,
carried by the device tool): real tiles and a trained checkpoint. (bench/gpu_prepare.sh also fetches the wheels.)

- ``.gpu/eurosat``: the EuroSAT patches the check turns into its 256 px tiles (``<Class>_1..N.jpg`` per class);
- ``.gpu/model.pt``: a ResNet18 trained here with ``tileclass train`` on the *other* EuroSAT patches (so that the
  check's tiles are unseen, as a region's tiles are), its weights stored in bf16 (22 MB instead of 45, within the
  carry limit; the GPU computes in fp32 and bf16 from the same rounded weights, so agreement is still measured).

Usage: ``.venv/bin/python -m bench.gpu_prepare [--train-minutes 8] [--per-class 420]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.lib import REPO


def split(eurosat: Path, out: Path, train: Path, per_class: int) -> int:
    """Patches 1..``per_class`` of each class into ``out`` (the check's tiles), the rest into ``train``; returns
    how many went to training."""
    trained = 0
    for folder in sorted(path for path in eurosat.iterdir() if path.is_dir()):
        (out / folder.name).mkdir(parents=True)
        (train / folder.name).mkdir(parents=True)
        for image in folder.glob("*.jpg"):
            number = image.stem.rsplit("_", 1)[-1]
            held_out = number.isdigit() and int(number) <= per_class
            shutil.copyfile(image, (out if held_out else train) / folder.name / image.name)
            trained += not held_out
    return trained


def train(data: Path, out: Path, minutes: float, epochs: int | None = None) -> Path:
    """``tileclass train`` as the demo runs it (ResNet18 from scratch at 64 px), within ``minutes``, or for exactly
    ``epochs`` epochs (what a load-independent run needs: a test on a busy machine)."""
    length = ["--epochs", str(epochs)] if epochs else ["--epochs", "40", "--time-budget", str(minutes)]
    argv = [sys.executable, "-m", "producer", "train", str(data), "--out", str(out), "--arch", "resnet18",
            "--weights", "none", "--image-size", "64", "--batch-size", "64", "--lr", "0.05", *length,
            "--seed", "0", "--no-register", "--no-progress"]
    # Its own state folder: a preparation leaves nothing in the user's results database or broker.
    env = os.environ | {"TILECLASS_DATA_DIR": str(out / "state"), "TILECLASS_DATABASE_URL":
                        f"sqlite:///{out / 'state.db'}", "TILECLASS_BROKER_URL": "filesystem://"}
    subprocess.run(argv, check=True, env=env, cwd=REPO)
    return out / "model.pt"


def bf16_copy(source: Path, target: Path) -> None:
    """``source`` saved again with its floating-point weights in bf16 (the loader casts them back to fp32)."""
    import torch

    from model.arch import build_model
    from model.checkpoint import read_checkpoint, save_checkpoint

    checkpoint = read_checkpoint(source)
    meta = checkpoint.meta
    net = build_model(meta.arch, len(meta.class_names), head=meta.head)
    net.load_state_dict(checkpoint.state_dict)
    save_checkpoint(target, model=net.to(torch.bfloat16), meta=meta,
                    quantization_images=checkpoint.quantization_images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-minutes", type=float, default=8.0, help="Training time (default 8 minutes).")
    parser.add_argument("--epochs", type=int, help="Train exactly this many epochs instead of --train-minutes.")
    parser.add_argument("--per-class", type=int, default=420,
                        help="Patches per class kept out of training for the check's tiles (default 420: the "
                             "check's 4096 tiles need 410).")
    parser.add_argument("--eurosat", type=Path, help="EuroSAT RGB folder (default: the full set: bench.lib.eurosat).")
    parser.add_argument("--out", type=Path, default=REPO / ".gpu", help="Output folder (default .gpu, replaced).")
    args = parser.parse_args()
    if args.eurosat is None:
        from bench.lib.eurosat import eurosat_rgb

        args.eurosat = eurosat_rgb()
    if not args.eurosat.is_dir():
        raise SystemExit(f"gpu_prepare: no EuroSAT folder at {args.eurosat}")
    shutil.rmtree(args.out, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="tileclass-gpu-prepare-") as tmp:
        trained = split(args.eurosat, args.out / "eurosat", Path(tmp) / "train", args.per_class)
        print(f"gpu_prepare: {args.per_class} patches per class kept for the check's tiles, training on {trained}",
              flush=True)
        model = train(Path(tmp) / "train", Path(tmp) / "training", args.train_minutes, args.epochs)
        bf16_copy(model, args.out / "model.pt")
    size = sum(path.stat().st_size for path in args.out.rglob("*") if path.is_file())
    print(f"gpu_prepare: {args.out} holds {size / 2**20:.1f} MiB (tiles and a bf16 ResNet18 checkpoint)")


if __name__ == "__main__":
    main()

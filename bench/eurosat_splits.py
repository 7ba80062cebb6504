"""Split EuroSAT RGB into train, validation and held-out test folders, for measuring calibration (docs/BENCHMARKS.md).

Within each class the files are sorted by name (``Forest_1.jpg``, ``Forest_10.jpg``, ``Forest_100.jpg``, ...) and
dealt in rounds of ``--every`` (20): the first ``--test`` (3) of each round go to ``test/``, the next ``--val`` (3) to
``val/``, the rest to ``train/`` (70/15/15 by default), so every class keeps its share in each split and the split
is the same on every machine. Files are hard-linked (copied where links are impossible). Then::

    tileclass train OUT/train --val-dir OUT/val --time-budget 9 --epochs 100 --out runs/cal --no-register
    tileclass calibrate runs/cal/model.pt OUT/val --no-register          # only for a model trained without T
    tileclass eval runs/cal/model.pt OUT/test --out runs/cal/eval --json  # ECE/NLL/Brier before -> after

Usage: ``.venv/bin/python -m bench.eurosat_splits --out /tmp/eurosat-splits [--eurosat PATH]``; prints the counts
as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from bench.lib.eurosat import eurosat_rgb

SPLITS = ("train", "val", "test")


def split_of(index: int, *, every: int, test: int, val: int) -> str:
    position = index % every
    return "test" if position < test else "val" if position < test + val else "train"


def make_splits(source: Path, out: Path, *, every: int, test: int, val: int) -> dict[str, int]:
    counts = dict.fromkeys(SPLITS, 0)
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif"))
        for index, path in enumerate(files):
            split = split_of(index, every=every, test=test, val=val)
            target = out / split / folder.name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                try:
                    os.link(path, target)
                except OSError:  # another file system, or links not allowed
                    shutil.copyfile(path, target)
            counts[split] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="Folder for train/, val/ and test/.")
    parser.add_argument("--eurosat", type=Path, help="EuroSAT RGB folder (default: the full set: bench.lib.eurosat).")
    parser.add_argument("--every", type=int, default=20, help="Files per round within a class.")
    parser.add_argument("--test", type=int, default=3, help="Files of each round for test/.")
    parser.add_argument("--val", type=int, default=3, help="Files of each round for val/.")
    args = parser.parse_args()
    if not (args.test > 0 and args.val > 0 and args.test + args.val < args.every):
        parser.error("--test and --val must be positive and leave some of --every for training")
    counts = make_splits(args.eurosat or eurosat_rgb(), args.out, every=args.every, test=args.test, val=args.val)
    print(json.dumps({"out": str(args.out), **counts}))


if __name__ == "__main__":
    main()

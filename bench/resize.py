"""Benchmark: resizing a decoded 256 px tile to 224 px on one CPU thread, ``model.transforms.resize`` (PyTorch's
uint8 kernel) against the float path it replaced, in the same run, with the largest difference per pixel.

This is the host's main cost per tile in a GPU worker that decodes on the CPU (decoding a 256 px JPEG costs about
a third of the old resize). Usage: ``.venv/bin/python -m bench.resize [--tiles 300] [--json] [--eurosat DIR]``.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from bench.lib.eurosat import eurosat_rgb
from model.images import decode_tile
from model.transforms import resize


def float_resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """The baseline: antialiased bilinear in float32, rounded back to uint8 (model.transforms before the change)."""
    out = F.interpolate(image.unsqueeze(0).float(), size=(size, size), mode="bilinear", antialias=True,
                        align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8).squeeze(0)


def timed(function: Callable[[torch.Tensor, int], torch.Tensor], images: list[torch.Tensor], repeats: int = 3) -> float:
    """Best seconds per image over ``repeats`` passes."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for image in images:
            function(image, 224)
        best = min(best, (time.perf_counter() - started) / len(images))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiles", type=int, default=300, help="256 px tiles made from EuroSAT patches (300).")
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    parser.add_argument("--eurosat", type=Path, help="EuroSAT RGB folder (default: the full set: bench.lib.eurosat).")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as a GPU worker's decode threads run torch ops
    every = sorted((args.eurosat or eurosat_rgb()).glob("*/*.jpg"))
    paths = every[:: max(1, len(every) // args.tiles)][: args.tiles]  # spread over the classes
    images = []
    for path in paths:
        buffer = io.BytesIO()
        Image.open(path).convert("RGB").resize((256, 256), Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=90)
        images.append(decode_tile(buffer.getvalue()).pixels)
    baseline, current = timed(float_resize, images), timed(resize, images)
    difference = max(int((resize(i, 224).int() - float_resize(i, 224).int()).abs().max()) for i in images)
    result = {"tiles": len(images), "float_ms": round(baseline * 1e3, 3), "uint8_ms": round(current * 1e3, 3),
              "speedup": round(baseline / current, 2), "max_pixel_difference": difference}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"resize 256 -> 224 px on 1 thread: float {result['float_ms']} ms, uint8 {result['uint8_ms']} ms per "
              f"tile: {result['speedup']}x; largest pixel difference {difference}")


if __name__ == "__main__":
    main()

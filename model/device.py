"""Choosing the device and the numeric precision.

bf16 autocast pays off where the hardware computes in bf16: CUDA GPUs from Ampere on, and CPUs with AMX or
AVX512-BF16 (Sapphire Rapids and later Xeons), where oneDNN runs convolutions in bf16 at about 1.7x the fp32
training throughput. Elsewhere "auto" stays in fp32; "bf16" can still be forced (slower, for testing).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import torch

from core.choices import DEVICE_CHOICES, INFERENCE_PRECISIONS, TRAIN_PRECISIONS, check_choice
from model.errors import DeviceError

_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
_INT8_CPU_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")
log = logging.getLogger(__name__)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        DeviceError: an unknown name, or CUDA requested where there is none.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} requested but CUDA is not available here (use --device cpu or auto)")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r} does not exist: this host has {torch.cuda.device_count()} GPU(s)")
        return device
    raise DeviceError(f"unknown device {name!r}: choose one of {DEVICE_CHOICES}")


@functools.cache
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags as /proc/cpuinfo spells them (empty where there is no /proc)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    return frozenset(next((line for line in text.splitlines() if line.startswith("flags")), "").split())


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX or AVX512-BF16)."""
    capability = str(torch.backends.cpu.get_cpu_capability())
    return "AMX" in capability or "BF16" in capability or bool(cpu_flags() & set(_BF16_CPU_FLAGS))


def cpu_has_int8() -> bool:
    """Whether this CPU has int8 dot products (VNNI or AMX), which make int8 inference faster than bf16."""
    return bool(cpu_flags() & set(_INT8_CPU_FLAGS))


def supports_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return device.type == "cpu" and cpu_has_bf16()


def resolve_precision(precision: str, device: torch.device) -> str:
    """``fp32`` or ``bf16`` for ``precision`` (auto, fp32 or bf16) on ``device``."""
    check_choice("precision", precision, TRAIN_PRECISIONS, error=DeviceError)
    if precision == "auto":
        return "bf16" if supports_bf16(device) else "fp32"
    if precision == "bf16" and not supports_bf16(device):
        log.warning("bf16 requested on %s, which has no native bf16: it will run, but slower than fp32", device)
    return precision


def resolve_inference_precision(precision: str, device: torch.device) -> str:
    """``fp32``, ``bf16`` or ``int8`` for an inference ``precision`` (auto, fp32, bf16 or int8) on ``device``.

    auto never picks int8: quantization changes answers more than bf16 does, so it is asked for by name.
    """
    check_choice("precision", precision, INFERENCE_PRECISIONS, error=DeviceError)
    if precision != "int8":
        return resolve_precision(precision, device)
    if device.type != "cpu":
        raise DeviceError(f"int8 runs on the CPU only, not on {device}: use bf16, fp32 or auto there")
    from model.quantize import int8_available

    missing = int8_available()
    if missing:
        raise DeviceError(missing)
    if not cpu_has_int8():
        log.warning("int8 requested on a CPU without VNNI or AMX: it will run, but maybe slower than bf16 or fp32")
    return precision


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The autocast context for a resolved precision (disabled for fp32)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

"""int8 inference on the CPU: static post-training quantization of a loaded classifier.

Why: oneDNN runs int8 convolutions on VNNI (AVX512-VNNI, AVX-VNNI) and on AMX-INT8 at about twice its bf16 rate,
and convolutions are nearly all of a ResNet's time. The recipe is PyTorch 2's export quantization (pt2e) with
torchao's ``X86InductorQuantizer``: weights per channel, activations per tensor, both int8; ``torch.compile`` then
lowers the quantized graph to oneDNN's fused int8 kernels.

Activation ranges are observed on quantization images: training images that ``tileclass train`` stores in the
checkpoint (see model/checkpoint.py), never the tiles being classified, so every worker that quantizes the same
checkpoint builds the same int8 model and a tile gets the same answer whichever worker takes it. (The literature
calls this step "calibration"; tileclass keeps that word for the temperature of ``tileclass calibrate``.)
"""

from __future__ import annotations

import importlib.util
import logging

import torch
from torch import nn

from model.errors import DeviceError, QuantizationImagesMissing
from model.transforms import pad_to


def int8_available() -> str | None:
    """Why int8 cannot run here, or None when it can (torchao is installed)."""
    if importlib.util.find_spec("torchao") is None:
        return "int8 needs the torchao package (pip install 'tileclass[ml]')"
    return None


def quantize(module: nn.Module, images: torch.Tensor, *, batch_size: int) -> nn.Module:
    """``module`` (uint8 images in, as built by ``Classifier.load``) quantized to int8, for batches of exactly
    ``batch_size`` images, ready for ``torch.compile(dynamic=False)`` (oneDNN's int8 kernels run at about half
    their speed on a graph of dynamic shape).

    Args:
        module: the eval-mode inference module, on the CPU.
        images: the quantization images, uint8 (N, 3, S, S) at the module's input size; their activations set
            the int8 ranges.
        batch_size: images per forward pass.

    Raises:
        QuantizationImagesMissing: no quantization images.
        DeviceError: torchao is missing.
    """
    missing = int8_available()
    if missing:
        raise DeviceError(missing)
    if images.numel() == 0:
        raise QuantizationImagesMissing("this checkpoint holds no quantization images, which int8 needs: train it "
                                        "again with this tileclass, or use --precision bf16 or fp32")
    # torchao 0.18 registers an Enum with torch's pytree on import, which torch 2.14 answers with a deprecation
    # warning on every worker start: not ours to fix, and nothing the user can act on.
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    chunks = [pad_to(images[start : start + batch_size], batch_size) for start in range(0, len(images), batch_size)]
    graph = torch.export.export(module, (chunks[0],)).module()
    _one_partition_per_relu_call(graph)
    quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for chunk in chunks:
            prepared(chunk)
    return convert_pt2e(prepared)


def _one_partition_per_relu_call(graph: torch.fx.GraphModule) -> None:
    """Give each call of a ReLU module its own source partition.

    torchvision's ResNet blocks call one ``nn.ReLU`` module two or three times, so export records every call under
    the module's one name, and the quantizer, which fuses conv + add + relu partition by partition, refuses a
    partition with several outputs. Naming each call apart is all it needs: the graph itself is unchanged.
    """
    for node in graph.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if node.op != "call_function" or not stack:
            continue
        key, (fqn, module_type) = next(reversed(stack.items()))
        if module_type is nn.ReLU or module_type == f"{nn.ReLU.__module__}.{nn.ReLU.__qualname__}":
            stack[key] = (f"{fqn}.{node.name}", module_type)

"""torchvision's image decoders (libpng on the CPU, nvJPEG on the GPU), reached through ``decoders()``.

torchvision 0.29 deprecates them in favour of TorchCodec, with a ``DeprecationWarning`` on every call, but they
remain the fastest here. ``decoders()`` installs one targeted filter for that warning the first time a decoder is
needed, not when a module is imported (importing tileclass changes no process-wide state), and not as a
``catch_warnings`` block around each call, which is not thread-safe.
"""

from __future__ import annotations

import functools
import warnings
from types import ModuleType

DEPRECATION_MESSAGE = "The image decoding and encoding capabilities of TorchVision"


@functools.cache
def decoders() -> ModuleType:
    """``torchvision.io``, with its per-call deprecation warning filtered from now on."""
    # filterwarnings replaces an identical filter instead of adding a second one, so two first calls at once are fine.
    warnings.filterwarnings("ignore", message=DEPRECATION_MESSAGE, category=DeprecationWarning)
    import torchvision.io

    return torchvision.io

"""Where the benchmarks find the full EuroSAT RGB set (27,000 64 px patches, ``<Class>/<Class>_<n>.jpg``).

``../shared/data/eurosat-rgb`` beside the checkout when it is there (every developer machine and CI run has it);
else torchvision's ``EuroSAT`` data set, downloaded once (about 90 MB) into ``~/.cache/tileclass`` (or
``$XDG_CACHE_HOME/tileclass``), where its images are ``eurosat/2750/<Class>/<Class>_<n>.jpg``: the same files.
The tests use the small subset committed in ``tests/fixtures/eurosat-rgb`` instead, passed with ``--eurosat``
or ``--data``. EuroSAT: Helber et al., 2019, MIT licence (github.com/phelber/EuroSAT).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bench.lib import REPO

SHARED_EUROSAT = REPO.parent / "shared" / "data" / "eurosat-rgb"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tileclass"
DOWNLOADED_EUROSAT = CACHE / "eurosat" / "2750"  # where torchvision.datasets.EuroSAT(CACHE) puts the images


def eurosat_rgb(*, download: bool = True) -> Path:
    """The full EuroSAT RGB ImageFolder: the shared copy, else torchvision's download (made now unless
    ``download`` is false: then the folder it would be in, which may be missing)."""
    if SHARED_EUROSAT.is_dir():
        return SHARED_EUROSAT
    if download and not DOWNLOADED_EUROSAT.is_dir():
        from torchvision.datasets import EuroSAT

        print(f"no {SHARED_EUROSAT}: downloading EuroSAT (about 90 MB, once) into {CACHE}", file=sys.stderr)
        EuroSAT(str(CACHE), download=True)
    return DOWNLOADED_EUROSAT

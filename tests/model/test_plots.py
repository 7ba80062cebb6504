"""The figures: drawn to files without touching the process's matplotlib backend or pyplot's figure registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from tests.conftest import REPO_ROOT

DRAW_EVERY_FIGURE = """
import json, sys
from pathlib import Path
import numpy as np, torch
import model.plots as plots
from model.scores import reliability_bins

out = Path(sys.argv[1])
bins = reliability_bins(torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]]), torch.tensor([0, 1, 1]))
plots.plot_losses(out / "losses.png", steps=[1, 2, 3], train_loss=[1.0, 0.6, 0.4], val_loss=[1.1, 0.8, 0.6])
plots.plot_confusion(out / "confusion.png", matrix=[[5, 1], [2, 7]], class_names=["Forest", "River"])
plots.plot_samples(out / "samples.png", images=[np.zeros((8, 8, 3), np.uint8)] * 2, titles=["a", "b"])
plots.plot_samples(out / "empty.png", images=[], titles=[])
plots.plot_reliability(out / "reliability.png", panels=[("before", bins), ("after", bins)])
import matplotlib
print(json.dumps({"backend": matplotlib.get_backend(auto_select=False), "pyplot": "matplotlib.pyplot" in sys.modules}))
"""


def test_figures_are_drawn_without_choosing_a_backend_or_loading_pyplot(tmp_path: Path) -> None:
    """A process that draws the figures (train, eval --out) keeps whatever backend it had, none here: the figures
    are matplotlib.figure.Figure objects saved to their files, never pyplot's."""
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"} | {"PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", DRAW_EVERY_FIGURE, str(tmp_path)], capture_output=True, text=True,
                            timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"backend": None, "pyplot": False}
    sizes = {path.name: Image.open(path).size for path in sorted(tmp_path.glob("*.png"))}
    assert sizes == {"confusion.png": (500, 400), "empty.png": (400, 150), "losses.png": (700, 450),
                     "reliability.png": (840, 750), "samples.png": (480, 250)}

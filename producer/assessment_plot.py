"""The figure of ``tileclass assess report --out``: each class's mapped area beside its error-adjusted estimate,
with the estimate's 95% interval as an error bar, so a reader sees at once which classes the map over- or
under-states and whether the difference is larger than the sampling uncertainty.

Drawn with matplotlib's object API (``matplotlib.figure.Figure``), never pyplot, like ``model.plots``: saving to a
file needs no backend, so it neither picks nor changes the process's backend and keeps no figure open. matplotlib
comes with the ``ml`` extra and is imported only here, inside the function.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import TileclassError

if TYPE_CHECKING:
    from core.assessment.estimators import AccuracyAssessment


def plot_areas(result: AccuracyAssessment, path: Path, unit: str) -> None:
    """Write ``path`` (PNG, or any format matplotlib knows by the suffix): mapped vs. estimated area per class."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise TileclassError("the area plot needs matplotlib: install it with pip install 'tileclass[ml]', or "
                             "leave out --out") from None
    names = list(result.classes)
    positions = range(len(names))
    width = 0.38
    fig = Figure(figsize=(max(5.0, 1.3 * len(names) + 2), 4.5), dpi=100)
    ax = fig.subplots()
    ax.bar([p - width / 2 for p in positions], [c.mapped_area for c in result.estimates], width,
           label="mapped", color="#9aa5b1")
    ax.bar([p + width / 2 for p in positions], [c.area for c in result.estimates], width,
           yerr=[c.area_ci95 for c in result.estimates], capsize=4, color="#3b7dd8", ecolor="#1d3557",
           label="estimated (95% interval)")
    crowded = len(names) > 4  # long class names overlap: slant them
    ax.set_xticks(list(positions), names, rotation=30 if crowded else 0, ha="right" if crowded else "center")
    ax.set_ylabel(f"area ({unit})" if unit else "area")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Mapped and error-adjusted areas (overall accuracy {result.overall_accuracy:.3f} "
                 f"± {result.overall_ci95:.3f})", fontsize=10)
    ax.legend(frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)

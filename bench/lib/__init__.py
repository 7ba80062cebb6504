"""What the benchmarks share: temporary databases, the EuroSAT set, tile trees, worker fleets and timings. Nothing
here is a benchmark of its own (those are the modules of ``bench``)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the repository root, where the benchmarks run their commands

"""``tileclass assess estimate COUNTS.csv --areas AREAS.csv``: Olofsson et al. 2014's example through the command
line (text and JSON), and a one-line error for each malformed file. No database: it reads only the two files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.conftest import REPO_ROOT

# Olofsson et al. 2014, section 5 (the numbers): sample counts, map rows x reference columns, and mapped
# areas in hectares (pixels of 30 m: 0.09 ha).
COUNTS = """map,Deforestation,Forest gain,Stable forest,Stable non-forest
Deforestation,66,0,5,4
Forest gain,0,55,8,12
Stable forest,1,0,153,11
Stable non-forest,2,1,9,313
"""
AREAS = """class,area
Deforestation,18000
Forest gain,13500
Stable forest,288000
Stable non-forest,580500
"""


def _files(folder: Path, counts: str = COUNTS, areas: str = AREAS) -> tuple[Path, Path]:
    (folder / "counts.csv").write_text(counts, encoding="utf-8")
    (folder / "areas.csv").write_text(areas, encoding="utf-8")
    return folder / "counts.csv", folder / "areas.csv"


def _estimate(*args: str | Path) -> Result:
    from producer.cli import app

    return CliRunner().invoke(app, ["assess", "estimate", *map(str, args)])


def test_json_reproduces_the_paper(tmp_path: Path) -> None:
    counts, areas = _files(tmp_path)
    result = _estimate(counts, "--areas", areas, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    # Olofsson et al. 2014, p. 54 (and the issue): deforestation 21,158 ha ± 6,158 ha, overall accuracy 0.95 ± 0.02.
    deforestation = data["classes"]["Deforestation"]
    assert (round(deforestation["area"]), round(deforestation["area_ci95"])) == (21_158, 6_158)
    assert deforestation["mapped_area"] == 18_000
    assert (round(data["overall"]["accuracy"], 2), round(data["overall"]["ci95"], 2)) == (0.95, 0.02)
    assert list(data["classes"]) == ["Deforestation", "Forest gain", "Stable forest", "Stable non-forest"]


def test_text_report(tmp_path: Path) -> None:
    counts, areas = _files(tmp_path)
    result = _estimate(counts, "--areas", areas)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Overall accuracy 0.947 ± 0.018" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("Deforestation") and "±" in line)
    assert "0.880 ± 0.074" in row and "0.749 ± 0.213" in row and "18,000" in row
    assert "21,158" in row and "± 6,158" in row
    assert "0.0176" in out  # the area-proportion matrix (the paper's Table 9)


def test_a_reference_class_with_no_area(tmp_path: Path) -> None:
    counts, areas = _files(tmp_path, "map,a,b,cloud\na,8,1,1\nb,0,9,1\n", "class,area\na,40\nb,60\n")
    result = _estimate(counts, "--areas", areas, "--json")
    assert result.exit_code == 0, result.output
    cloud = json.loads(result.stdout)["classes"]["cloud"]
    assert cloud["users_accuracy"] is None and cloud["mapped_area"] == 0 and cloud["area"] == pytest.approx(10.0)


@pytest.mark.parametrize(("counts", "areas", "words"), [
    ("class,a,b\na,1,2\n", AREAS, ["counts.csv row 1", "the header must be 'map,<reference class>,...'"]),
    ("map,a,a\na,1,2\n", "class,area\na,1\n", ["counts.csv row 1", "reference class 'a' appears more than once"]),
    ("map,a,b\na,1\n", "class,area\na,1\n", ["counts.csv row 2 has 2 cells; the header has 3"]),
    ("map,a,b\na,1,x\n", "class,area\na,1\n", ["counts.csv row 2, column 'b'", "'x' is not a count"]),
    ("map,a,b\na,1,-2\n", "class,area\na,1\n", ["'-2' is not a count"]),
    ("map,a,b\na,1,2\na,3,4\n", "class,area\na,1\n", ["counts.csv row 3: map class 'a' appears more than once"]),
    ("map,a,b\n", "class,area\na,1\n", ["counts.csv has no rows of counts"]),
    ("", "class,area\na,1\n", ["counts.csv is empty"]),
    ("map,a,b\na,1,2\n", "name,size\na,1\n", ["areas.csv row 1: the header must be 'class,area'"]),
    ("map,a,b\na,1,2\n", "class,area\na,lots\n", ["areas.csv row 2: area 'lots' of 'a' is not a number >= 0"]),
    ("map,a,b\na,1,2\n", "class,area\na,-1\n", ["area '-1' of 'a' is not a number >= 0"]),
    ("map,a,b\na,1,2\n", "class,area\na,1,2\n", ["areas.csv row 2 has 3 cells"]),
    ("map,a,b\na,1,2\nb,2,2\n", "class,area\na,1\n", ["map class 'b' has no area in areas.csv"]),
    ("map,a,b\na,1,2\n", "class,area\na,1\nb,3\n", ["class 'b' has a mapped area but no row of sample counts"]),
    ("map,a,b\na,1,0\nb,0,5\n", "class,area\na,1\nb,3\n", ["every stratum needs at least 2", "'a' (1)"]),
])
def test_malformed_files_give_one_line(tmp_path: Path, counts: str, areas: str, words: list[str]) -> None:
    counts_path, areas_path = _files(tmp_path, counts, areas)
    result = _estimate(counts_path, "--areas", areas_path)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_missing_file_in_a_real_process(tmp_path: Path) -> None:
    # What a user sees: one line on stderr, exit status 2, no traceback.
    _, areas = _files(tmp_path)
    code = "from producer.cli import main; import sys; sys.argv = ['tileclass', *sys.argv[1:]]; main()"
    done = subprocess.run([sys.executable, "-c", code, "assess", "estimate", str(tmp_path / "nope.csv"), "--areas",
                           str(areas)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"Error: counts file {str(tmp_path / 'nope.csv')!r} does not exist"


def test_plot_areas(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from core.assessment.estimators import estimate_from_counts
    from producer.assessment_plot import plot_areas
    from producer.commands.assess_estimate import read_areas, read_counts

    counts, areas = _files(tmp_path)
    result = estimate_from_counts(read_counts(counts), read_areas(areas))
    plot_areas(result, tmp_path / "areas.png", "ha")
    assert (tmp_path / "areas.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

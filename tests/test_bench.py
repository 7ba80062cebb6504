"""The benchmark scripts run end to end and print the JSON their readers parse (timings themselves are not judged).

bench/gpu_check.sh only earns its keep on a CUDA machine that is lent for minutes, so its CPU dry run has to work
here first: the comparison with the CPU's predictions and the summary are the same code a GPU run takes.

Every script reads the tests' EuroSAT subset (``--eurosat``), never the full set the benchmarks use by default.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from model.predict import Classifier
from tests.conftest import EUROSAT, REPO_ROOT

pytestmark = pytest.mark.slow


CLASS_FOLDERS = sorted(path.name for path in EUROSAT.iterdir() if path.is_dir())  # all ten EuroSAT classes


def _last_json_line(command: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(_run(command).strip().splitlines()[-1])
    return summary


def _run(command: list[str]) -> str:
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What bench/gpu_prepare.py carries to a GPU machine, on a small scale: held-out patches and a trained model."""
    folder = tmp_path_factory.mktemp("gpu")
    # 20 real patches per class: the preparation's steps on real data, without loading all 27,000 to train.
    eurosat = folder / "eurosat"
    for source in (EUROSAT / name for name in CLASS_FOLDERS):
        (eurosat / source.name).mkdir(parents=True)
        for i in range(1, 21):
            shutil.copyfile(source / f"{source.name}_{i}.jpg", eurosat / source.name / f"{source.name}_{i}.jpg")
    out = folder / ".gpu"
    _run([sys.executable, "-m", "bench.gpu_prepare", "--epochs", "3", "--per-class", "3", "--out", str(out),
          "--eurosat", str(eurosat)])
    return out


def test_gpu_prepare_holds_out_the_check_tiles_and_stores_a_bf16_checkpoint(prepared: Path) -> None:
    assert sorted(p.name for p in (prepared / "eurosat").iterdir()) == CLASS_FOLDERS
    assert sorted(p.name for p in (prepared / "eurosat" / "Forest").iterdir()) == [
        "Forest_1.jpg", "Forest_2.jpg", "Forest_3.jpg"]
    state = torch.load(prepared / "model.pt", weights_only=True)["state_dict"]
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.bfloat16}
    classifier = Classifier.load(prepared / "model.pt", device="cpu", precision="fp32")  # loads into fp32
    assert classifier.class_names == CLASS_FOLDERS
    assert next(classifier.module.parameters()).dtype == torch.float32


def test_gpu_prepare_trains_on_every_patch_but_the_held_out_ones(tmp_path: Path) -> None:
    from bench.gpu_prepare import split

    for name in ("Forest", "River"):
        (tmp_path / "src" / name).mkdir(parents=True)
        for i in (1, 2, 3, 10, 11):
            (tmp_path / "src" / name / f"{name}_{i}.jpg").write_bytes(f"{name}{i}".encode())
    assert split(tmp_path / "src", tmp_path / "held", tmp_path / "train", per_class=3) == 4
    for name in ("Forest", "River"):
        assert sorted(p.name for p in (tmp_path / "held" / name).iterdir()) == [f"{name}_{i}.jpg" for i in (1, 2, 3)]
        assert sorted(p.name for p in (tmp_path / "train" / name).iterdir()) == [f"{name}_{i}.jpg" for i in (10, 11)]


def test_gpu_check_dry_run_compares_every_precision_with_the_cpu(prepared: Path) -> None:
    summary = _last_json_line(["bash", "bench/gpu_check.sh", "--device", "cpu", "--no-compile", "--tiles", "24",
                               "--check", "8", "--chunk", "8", "--seconds", "0.5", "--worker-tiles", "24",
                               "--checkpoint", str(prepared / "model.pt"), "--tiles-dir", str(prepared / "eurosat")])

    assert summary["device"] == "cpu (dry run)"
    assert summary["chunk"] == 8 and "256 px JPEG" in summary["tiles"] and str(prepared) in summary["tiles"]
    assert summary["checkpoint"] == str(prepared / "model.pt")
    assert [run["precision"] for run in summary["runs"]] == ["fp32", "bf16"]
    for run in summary["runs"]:
        assert run["ok"] and run["decided"] > 0
        assert run["predictor_images_per_s"] > 0 and set(run["e2e_tiles_per_s"]) == {"cpu", "gpu"}
        assert all(rate > 0 for rate in run["e2e_tiles_per_s"].values())
        assert run["gpu_busy_fraction"] == {"cpu": None, "gpu": None}  # no nvidia-smi samples on a CPU
    assert summary["runs"][0]["max_abs_diff"] < 1e-3  # fp32 on the same CPU: the same numbers
    assert summary["runs"][0]["agreement_with_fp32"] == 1.0
    # Real tileclass worker processes classified the whole timed job (they raise otherwise).
    workers = summary["workers"]
    assert list(workers) == ["1_process_cpu_decode"] and workers["1_process_cpu_decode"]["tiles"] == 24
    # The fixed keys of bench/results/gpu-*.json, from the runs.
    assert summary["bare_images_per_s"] == {run["precision"]: run["predictor_images_per_s"] for run in summary["runs"]}
    assert summary["e2e_tiles_per_s"] == {f"{path}_decode": {run["precision"]: run["e2e_tiles_per_s"][path]
                                                             for run in summary["runs"]} for path in ("cpu", "gpu")}
    assert summary["workers_tiles_per_s"] == {"1_process_cpu_decode": workers["1_process_cpu_decode"]["tiles_per_s"]}
    bare = summary["bare_images_per_s"]["bf16"]
    best_pipeline = max(rate for run in summary["runs"] for rate in run["e2e_tiles_per_s"].values())
    assert summary["e2e_over_bare"] == {"pipeline": round(best_pipeline / bare, 3),
                                        "workers": round(workers["1_process_cpu_decode"]["tiles_per_s"] / bare, 3)}
    assert set(summary["agreement"]) == {"fp32_vs_cpu_fp32", "bf16_vs_cpu_fp32", "bf16_vs_fp32"}


def test_worker_bench_json_reports_the_tutorial_baseline_by_thread_count() -> None:
    summary = _last_json_line([sys.executable, "-m", "bench.worker_speed", "--parts", "a", "--quick", "--json",
                               "--arch", "resnet18", "--eurosat", str(EUROSAT)])

    assert summary["plan"]["eurosat"] == str(EUROSAT)
    assert set(summary["a_by_threads"]) == {"1", str(summary["conditions"]["cores"])}
    assert summary["a_tutorial_images_per_s"] == max(summary["a_by_threads"].values())
    assert summary["b_forward_images_per_s"] is None and summary["c_worker_tiles_per_s"] is None  # not measured


def test_sources_bench_compares_each_kind_of_source_with_files() -> None:
    summary = _last_json_line([sys.executable, "-m", "bench.sources", "--quick", "--json", "--eurosat", str(EUROSAT)])

    assert summary["listing"]["tiles"] == 20_000
    assert summary["classifying"]["tiles"] == 96 and summary["rasters"]["tiles"] == 64
    for part, ratios in (("listing", ["mbtiles"]), ("classifying", ["mbtiles", "server"]), ("rasters", ["geotiff"])):
        values = summary[part]
        baseline = values.get("files_tiles_per_s") or values["precut_tiles_per_s"]
        for name in ratios:
            key = next(k for k in values if k.startswith(f"ratio_{name}"))
            # the ratio is of the unrounded rates, which the summary prints rounded: agree within rounding
            assert values[key] == pytest.approx(values[f"{name}_tiles_per_s"] / baseline, abs=0.011)


def test_serve_bench_times_overlay_parts_and_the_api_against_its_baselines() -> None:
    summary = _last_json_line([sys.executable, "-m", "bench.serve", "--side", "64", "--samples", "5", "--seconds",
                               "0.5", "--only", "sqlite", "--json"])

    found = summary["sqlite"]
    assert found["rows"] == 64 * 64 and set(found["api"]) == {"1", "2"}
    assert set(found["overlay"]) == {"0", "2", "4", "6", "8", "10"}
    assert found["overlay"]["6"]["rows_per_tile"] == 64 * 64  # six zooms out: 64 x 64 result tiles under each
    assert found["overlay"]["2"]["rows_per_tile"] == 16
    for parts in found["overlay"].values():
        assert all(parts[name][0] > 0 for name in ("bare", "query", "aggregation", "png"))
    for api in found["api"].values():
        assert api["errors"] == 0 and api["requests_per_s"] > 0
        assert api["ratio_to_in_process"] == pytest.approx(api["requests_per_s"] / found["in_process_lookups_per_s"],
                                                           abs=0.01)


def test_scale_bench_measures_standin_workers_bare_upserts_metrics_and_real_workers() -> None:
    summary = _last_json_line([sys.executable, "-m", "bench.scale", "--quick", "--json", "--eurosat", str(EUROSAT)])

    for dialect, counts in (("postgresql", [1, 2]), ("sqlite", [1])):
        runs = summary[dialect]
        assert [run["workers"] for run in runs] == counts
        for run in runs:
            assert run["tiles"] == run["batches"] * summary["batch"] and run["tiles_per_s"] > 0
            assert run["cpu_s"]["workers"] > 0 and run["cpu_s"]["redis"] is not None
        assert (runs[0]["cpu_s"]["postgresql"] is None) == (dialect == "sqlite")  # SQLite runs inside the workers
        bare = summary[f"{dialect}_bare"]
        assert set(bare) == ({"executemany", "copy"} if dialect == "postgresql" else {"executemany"})
        best = max(run["tiles_per_s"] for run in runs)
        assert summary[f"{dialect}_ceiling_to_bare"] == round(best / max(bare.values()), 2)
    assert summary["postgresql"][0]["cpu_s"]["postgresql"] > 0
    assert summary["metrics_us_per_batch"] > 0 and 0 < summary["metrics_share_of_a_batch"] < 1
    real = summary["real"]
    assert [real[n]["processes"] for n in ("1", "2")] == [1, 2] and real["tiles"] == 128
    assert real["ratio_2_to_1"] == round(real["2"]["tiles_per_s"] / real["1"]["tiles_per_s"], 2)


def test_resize_bench_compares_the_uint8_kernel_with_the_float_baseline() -> None:
    summary = _last_json_line([sys.executable, "-m", "bench.resize", "--tiles", "20", "--json", "--eurosat",
                               str(EUROSAT)])

    assert summary["tiles"] == 20 and summary["max_pixel_difference"] <= 1
    # (the ratio of the unrounded times, so within rounding of the printed ones)
    assert summary["speedup"] == pytest.approx(summary["float_ms"] / summary["uint8_ms"], abs=0.05)


def test_vectorize_bench_times_vectorize_against_the_bare_read() -> None:
    summary = _last_json_line([sys.executable, "-m", "bench.vectorize", "--side", "120", "--blocks", "1024,32",
                               "--only", "sqlite", "--json"])

    found = summary["sqlite"]
    assert found["rows"] == found["bare"]["count"] == 120 * 120
    whole, blocked = found["vectorize"]
    assert [whole["block"], blocked["block"]] == [1024, 32]
    assert whole["count"] == blocked["count"] > 0  # the same polygons, however many block edges they crossed
    for one in (whole, blocked):
        assert one["peak_rss_mib"] > 0
        assert one["ratio_to_bare"] == pytest.approx(one["seconds"] / found["bare"]["seconds"], abs=0.011)


def test_diff_bench_times_the_matrix_and_the_files_against_the_bare_read() -> None:
    summary = _last_json_line([sys.executable, "-m", "bench.diff", "--side", "60", "--every", "4", "--only", "sqlite",
                               "--json"])

    found = summary["sqlite"]
    assert found["rows_per_job"] == 60 * 60 and found["bare"]["count"] == 2 * 60 * 60
    changed = sum(1 for x in range(60) for y in range(60) if (70000 + x + 40000 + y) % 4 == 0)
    assert found["matrix"]["count"] == found["files"]["count"] == changed
    for mode in ("matrix", "files"):
        assert found[mode]["peak_rss_mib"] > 0
        assert found[mode]["ratio_to_bare"] == pytest.approx(found[mode]["seconds"] / found["bare"]["seconds"],
                                                             abs=0.011)

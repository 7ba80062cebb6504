"""The launcher: which worker processes a host gets, how they are pinned, and how they are stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from producer.cli import app
from worker.launch import (
    ChildSpec,
    LaunchError,
    Supervisor,
    WorkerOptions,
    children_for,
    cpu_split,
    parse_queues,
    visible_gpus,
)


def test_one_pinned_worker_per_gpu_named_after_it() -> None:
    children = children_for(WorkerOptions(), gpus=["0", "1", "2", "3"], cores=16, python="py")
    assert [c.name for c in children] == ["gpu0@%h", "gpu1@%h", "gpu2@%h", "gpu3@%h"]
    assert [c.env["CUDA_VISIBLE_DEVICES"] for c in children] == ["0", "1", "2", "3"]
    assert {c.env["TILECLASS_DEVICE"] for c in children} == {"cuda"}
    # 16 cores shared by 4 GPUs: each process decodes on 4 threads; the model runs on the GPU
    assert {(c.env["TILECLASS_WORKER_DECODE_THREADS"], c.env["TILECLASS_WORKER_THREADS"]) for c in children} == {
        ("4", "1")}
    argv = children[0].argv
    assert argv[:6] == ["py", "-m", "celery", "-A", "worker.app", "worker"]
    assert argv[argv.index("--pool") + 1] == "solo"
    assert argv[argv.index("--hostname") + 1] == "gpu0@%h"
    assert argv[argv.index("-Q") + 1] == "classify"
    assert {c.env["TILECLASS_WORKER_BATCH_SIZE"] for c in children} == {"256"}  # a GPU's chunk, not the CPU's 16


def test_a_gpu_batch_size_named_by_option_or_setting_wins() -> None:
    [child] = children_for(WorkerOptions(batch_size=64), gpus=["0"], cores=4)
    assert child.env["TILECLASS_WORKER_BATCH_SIZE"] == "64"
    # TILECLASS_WORKER_BATCH_SIZE is set:
    [child] = children_for(WorkerOptions(), gpus=["0"], cores=4, gpu_batch_size=None)
    assert "TILECLASS_WORKER_BATCH_SIZE" not in child.env


def test_chosen_gpus_map_onto_the_visible_ones() -> None:
    # With CUDA_VISIBLE_DEVICES=4,7 the host's GPU numbers 0 and 1 are physical GPUs 4 and 7.
    children = children_for(WorkerOptions(gpus="1", queues=("classify", "train")), gpus=["4", "7"], cores=8)
    assert [(c.name, c.env["CUDA_VISIBLE_DEVICES"]) for c in children] == [("gpu1@%h", "7")]
    assert children[0].argv[children[0].argv.index("-Q") + 1] == "classify,train"


def test_several_processes_per_gpu_each_pinned_to_it_with_a_share_of_the_cores() -> None:
    children = children_for(WorkerOptions(per_gpu=2), gpus=["0", "1"], cores=16)
    assert [(c.name, c.env["CUDA_VISIBLE_DEVICES"]) for c in children] == [
        ("gpu0-0@%h", "0"), ("gpu0-1@%h", "0"), ("gpu1-0@%h", "1"), ("gpu1-1@%h", "1")]
    assert {c.env["TILECLASS_WORKER_DECODE_THREADS"] for c in children} == {"4"}  # 16 cores over 4 processes
    assert [c.name for c in children_for(WorkerOptions(processes=2), gpus=["0"], cores=8)] == ["gpu0-0@%h",
                                                                                              "gpu0-1@%h"]


def test_cpu_host_splits_cores_into_single_thread_processes() -> None:
    children = children_for(WorkerOptions(), gpus=[], cores=2)
    assert [c.name for c in children] == ["cpu0@%h", "cpu1@%h"]
    assert "TILECLASS_WORKER_BATCH_SIZE" not in children[0].env  # the setting's (16) on a CPU
    assert all(c.env["TILECLASS_DEVICE"] == "cpu" and c.env["OMP_NUM_THREADS"] == "1" for c in children)
    assert "CUDA_VISIBLE_DEVICES" not in children[0].env


@pytest.mark.parametrize(("cores", "processes", "threads", "expected"), [
    (2, None, None, (2, 1)), (16, None, None, (8, 2)), (64, None, None, (8, 8)), (12, None, None, (6, 2)),
    (8, 2, None, (2, 4)), (8, None, 4, (2, 4)), (2, 1, 2, (1, 2)),
])
def test_cpu_split(cores: int, processes: int | None, threads: int | None, expected: tuple[int, int]) -> None:
    assert cpu_split(cores, processes, threads) == expected


def test_device_cpu_ignores_gpus_and_options_travel_as_settings() -> None:
    options = WorkerOptions(device="cpu", processes=1, threads_per_process=2, batch_size=32, compile=False,
                            precision="fp32")
    [child] = children_for(options, gpus=["0"], cores=2)
    assert {k: child.env[k] for k in ("TILECLASS_DEVICE", "TILECLASS_WORKER_THREADS", "TILECLASS_WORKER_BATCH_SIZE",
                                      "TILECLASS_WORKER_COMPILE", "TILECLASS_WORKER_PRECISION")} == {
        "TILECLASS_DEVICE": "cpu", "TILECLASS_WORKER_THREADS": "2", "TILECLASS_WORKER_BATCH_SIZE": "32",
        "TILECLASS_WORKER_COMPILE": "false", "TILECLASS_WORKER_PRECISION": "fp32"}


@pytest.mark.parametrize(("options", "gpus", "message"), [
    (WorkerOptions(device="cuda"), [], "--device cuda: no GPU is visible"),
    (WorkerOptions(gpus="2"), ["0", "1"], "--gpus 2: GPUs 0..1 are visible"),
    (WorkerOptions(gpus="0"), [], "--gpus 0: no GPU is visible"),
    (WorkerOptions(gpus="first"), ["0"], "use 'all' or GPU numbers like 0,1"),
    (WorkerOptions(device="cpu", gpus="0"), ["0"], "--gpus cannot be combined with --device cpu"),
    (WorkerOptions(device="tpu"), [], "unknown device 'tpu': choose one of auto, cpu, cuda"),
    (WorkerOptions(processes=0), [], "--processes must be at least 1"),
    (WorkerOptions(per_gpu=0), ["0"], "--per-gpu must be at least 1"),
    (WorkerOptions(per_gpu=2), [], "--per-gpu: this run has no GPU"),
    (WorkerOptions(per_gpu=2, device="cpu"), ["0"], "--per-gpu: this run has no GPU"),
    (WorkerOptions(per_gpu=2, processes=3), ["0"], "--per-gpu 2 and --processes 3 disagree"),
])
def test_options_that_do_not_fit_the_host_are_refused(options: WorkerOptions, gpus: list[str], message: str) -> None:
    with pytest.raises(LaunchError, match=message):
        children_for(options, gpus=gpus, cores=2)


def test_queues_are_checked() -> None:
    assert parse_queues("classify, train,classify") == ("classify", "train")
    with pytest.raises(LaunchError, match="unknown queue 'gpu': choose classify, train or classify,train"):
        parse_queues("gpu")


def test_gpus_are_counted_without_torch(tmp_path: Path) -> None:
    """CUDA_VISIBLE_DEVICES when set, else nvidia-smi -L (here a stand-in script on PATH); torch is never loaded."""
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-a)'\necho 'GPU 1: NVIDIA H100 (UUID: GPU-b)'\n")
    smi.chmod(0o755)
    code = "import sys, worker.launch as l; print(l.visible_gpus()); print('torch' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"} | {
        "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         cwd=tmp_path)
    assert out.stdout.split("\n")[:2] == ["['0', '1']", "False"]


def test_cli_reports_bad_options_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    runner = CliRunner()
    result = runner.invoke(app, ["worker", "--device", "cuda"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: --device cuda: no GPU is visible (nvidia-smi -L / CUDA_VISIBLE_DEVICES); use --device cpu"]
    result = runner.invoke(app, ["worker", "--queues", "fast"])
    assert result.exit_code == 2 and "unknown queue 'fast'" in result.output
    result = runner.invoke(app, ["worker", "--per-gpu", "2"])
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        "Error: --per-gpu: this run has no GPU (--device cpu, or none visible); on the CPU use --processes and "
        "--threads-per-process"]


SIGNAL_CHILD = textwrap.dedent("""
    import signal, sys, time, pathlib
    out = pathlib.Path(sys.argv[1])
    def stop(signum, frame):
        written = out.with_suffix(".partial")  # renamed whole: a reader that sees the file sees its signal
        written.write_text(signal.Signals(signum).name)
        written.replace(out)
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    out.with_suffix(".ready").write_text("ready")
    while True:
        time.sleep(0.05)
""")


def _supervise(tmp_path: Path, count: int) -> subprocess.Popen[str]:
    """A launcher process (Supervisor) running ``count`` children that record the signal they get."""
    (tmp_path / "child.py").write_text(SIGNAL_CHILD)
    launcher = textwrap.dedent(f"""
        import sys
        from worker.launch import ChildSpec, Supervisor
        child, folder = {str(tmp_path / 'child.py')!r}, {str(tmp_path)!r}
        specs = [ChildSpec(f"c{{i}}", [sys.executable, child, f"{{folder}}/c{{i}}.txt"]) for i in range({count})]
        sys.exit(Supervisor(specs).run())
    """)
    return subprocess.Popen([sys.executable, "-c", launcher], cwd=tmp_path, text=True)


def _wait_ready(tmp_path: Path, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(list(tmp_path.glob("c*.ready"))) < count:
        assert time.monotonic() < deadline, "children did not start"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_launcher_forwards_a_stop_signal_as_warm_shutdown_and_exits_0(tmp_path: Path, sig: signal.Signals) -> None:
    launcher = _supervise(tmp_path, 2)
    _wait_ready(tmp_path, 2)
    launcher.send_signal(sig)
    assert launcher.wait(timeout=20) == 0
    assert [(tmp_path / f"c{i}.txt").read_text() for i in range(2)] == ["SIGTERM", "SIGTERM"]


def test_children_stop_when_the_launcher_is_killed(tmp_path: Path) -> None:
    launcher = _supervise(tmp_path, 1)
    _wait_ready(tmp_path, 1)
    launcher.kill()
    launcher.wait(timeout=10)
    deadline = time.monotonic() + 20
    while not (tmp_path / "c0.txt").exists():
        assert time.monotonic() < deadline, "the child outlived its launcher"
        time.sleep(0.05)
    assert (tmp_path / "c0.txt").read_text() == "SIGTERM"


def test_a_worker_that_dies_stops_the_others_and_fails_the_launcher(tmp_path: Path) -> None:
    (tmp_path / "child.py").write_text(SIGNAL_CHILD)
    specs = [ChildSpec("ok", [sys.executable, str(tmp_path / "child.py"), str(tmp_path / "ok.txt")]),
             ChildSpec("bad", [sys.executable, "-c", "import time, sys; time.sleep(0.5); sys.exit(3)"])]
    assert Supervisor(specs).run() == 1
    assert (tmp_path / "ok.txt").read_text() == "SIGTERM"

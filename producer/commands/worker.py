"""``tileclass worker``: start this host's Celery workers (one per GPU, or a split of the CPU cores)."""

from __future__ import annotations

import logging

import typer


def worker(
    queues: str = typer.Option(
        "classify", "--queues", "-Q", help="Queues to consume: classify, train or classify,train."
    ),
    gpus: str = typer.Option("all", help="GPUs to use, one worker process each: 'all' or numbers like 0,1."),
    device: str | None = typer.Option(
        None, help="auto (GPUs when present), cpu or cuda. Default: TILECLASS_DEVICE (auto)."
    ),
    processes: int | None = typer.Option(
        None, "--processes", "--concurrency", "-c",
        help="Worker processes: per GPU on a GPU host (default 1); on a CPU host default cores / threads (at most 8).",
    ),
    per_gpu: int | None = typer.Option(
        None, "--per-gpu",
        help="Worker processes per GPU (default 1): more than one when a single process cannot keep a large GPU "
             "busy (each reads and decodes on its own share of the cores). GPU hosts only.",
    ),
    threads_per_process: int | None = typer.Option(
        None, help="Torch CPU threads per process. Default: the cores divided among the processes."
    ),
    batch_size: int | None = typer.Option(
        None, help="Tiles per forward pass. Default: TILECLASS_WORKER_BATCH_SIZE (16); on GPUs 256 unless it is set."
    ),
    compile_model: bool | None = typer.Option(
        None, "--compile/--no-compile",
        help="torch.compile the model (a slow first batch, then faster). Default: TILECLASS_WORKER_COMPILE (on).",
    ),
    precision: str | None = typer.Option(
        None, help="auto (bf16 where the hardware has it), fp32, bf16, or int8 (CPU only, about twice bf16's speed "
                   "with VNNI or AMX; needs a checkpoint from this tileclass's train). "
                   "Default: TILECLASS_WORKER_PRECISION (auto)."
    ),
    loglevel: str = typer.Option("info", "--loglevel", "-l", help="Celery log level: debug, info, warning, error."),
    metrics_port: int | None = typer.Option(
        None, min=0, max=65535,
        help="Serve Prometheus metrics of all this host's worker processes on this port (/metrics; the README lists "
             "them). Default: TILECLASS_WORKER_METRICS_PORT (0: none).",
    ),
    metrics_host: str | None = typer.Option(
        None, help="Address the metrics server listens on; 0.0.0.0 lets a Prometheus on another host scrape it. "
                   "Default: TILECLASS_METRICS_HOST (127.0.0.1).",
    ),
) -> None:
    """Start Celery workers on this host and run until stopped (Ctrl-C or SIGTERM finish the current batch first).

    Each process is a plain `celery -A worker.app worker --pool solo` (run that yourself to manage Celery yourself).
    """
    from producer.commands.errors import require_ml

    require_ml("worker")
    from core.settings import get_settings
    from worker.launch import LaunchError, WorkerOptions, launch, parse_queues

    settings = get_settings()
    if loglevel.lower() not in ("debug", "info", "warning", "error", "critical"):
        raise LaunchError(f"unknown log level {loglevel!r}: choose debug, info, warning, error or critical")
    chosen_device, chosen_gpus = device or settings.device, gpus
    if chosen_device.startswith("cuda:"):  # TILECLASS_DEVICE=cuda:N pins the one worker to GPU N
        chosen_device, chosen_gpus = "cuda", chosen_device.removeprefix("cuda:") if gpus == "all" else gpus
    options = WorkerOptions(
        queues=parse_queues(queues), gpus=chosen_gpus, device=chosen_device, processes=processes, per_gpu=per_gpu,
        threads_per_process=threads_per_process, batch_size=batch_size, compile=compile_model, precision=precision,
        loglevel=loglevel.lower(), metrics_port=metrics_port, metrics_host=metrics_host,
    )
    logging.basicConfig(level=logging.INFO, format="tileclass worker: %(message)s")
    raise typer.Exit(launch(options))


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)

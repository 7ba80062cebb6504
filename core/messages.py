"""The producer/worker contract: queues, task names and message payloads (plain data; no Celery here).

The producer sends tasks by name and never imports the worker (or torch). Messages are JSON only, and compact:
a classify batch carries the job, the model's content hash, the name of the job's tile source and its tiles as
``[z, x, y, path]`` rows (``core.tiles.Tile``) — never pixels::

    "tileclass.classify_batch.v2"
    {"format": 2, "job_id": 7, "seq": 12, "model_hash": "3fa9…", "source": "ortho2024",
     "tiles": [[17, 70420, 42997, "17/70420/42997.png"], [null, null, null, "scans/a.jpg"]]}

Versions. Every payload names its ``format``. A format whose fields change meaning gets a new task name, so that
a worker of an older version never runs it: an older worker discards a task it does not know (Celery logs
"unregistered task"), which leaves the job's tiles pending, never records a wrong result, and ``tileclass resume``
puts them back once every worker is upgraded. Newer workers still run the formats before theirs:

- format 1, ``tileclass.classify_batch``: ``root`` instead of ``source``, every tile with a path (workers before
  the tile-sources work); read here as format 2.
- format 2, ``tileclass.classify_batch.v2``: a tile's path may be null for sources that read by coordinates.

Train requests (``tileclass.train``) are format 1, unchanged since the first version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.schema import MAX_INTEGER
from core.tiles import Tile

CLASSIFY_QUEUE = "classify"
TRAIN_QUEUE = "train"
QUEUES = (CLASSIFY_QUEUE, TRAIN_QUEUE)
CLASSIFY_TASK = "tileclass.classify_batch.v2"
CLASSIFY_TASK_V1 = "tileclass.classify_batch"  # format 1, still run by workers for messages left in a queue
TRAIN_TASK = "tileclass.train"
CLASSIFY_FORMAT = 2
TRAIN_FORMAT = 1
# A message header (not part of the payload, so no format change): the producer's time.time() when it sent the
# batch; workers observe the queue wait from it (tileclass_batch_queue_wait_seconds). Older producers omit it.
SENT_AT_HEADER = "tileclass_sent_at"


@dataclass(frozen=True)
class ClassifyBatch:
    """One batch of tiles of one job, for one model, read from the job's source."""

    job_id: int
    seq: int
    model_hash: str
    source: str  # the source's name; every host maps it to where it reads the tiles
    tiles: list[Tile]

    def to_message(self) -> dict[str, Any]:
        return {"format": CLASSIFY_FORMAT, "job_id": self.job_id, "seq": self.seq, "model_hash": self.model_hash,
                "source": self.source, "tiles": [list(tile) for tile in self.tiles]}

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> ClassifyBatch:
        """A batch from a format 2 payload, or from format 1 (no ``format`` key); ``ValueError`` if malformed."""
        _check_object(message, "classify")
        version = message.get("format", 1)
        if version not in (1, CLASSIFY_FORMAT) or type(version) is not int:
            raise ValueError(f"unknown classify message format {version!r} (this worker reads 1 and 2)")
        rows = message["tiles"]
        if not isinstance(rows, list):
            raise ValueError("a classify message's tiles must be a list of [z, x, y, path] rows")
        tiles = [Tile.from_row(row) for row in rows]
        if version == 1 and any(tile.path is None for tile in tiles):
            raise ValueError("a format 1 classify message must give every tile a path")
        source = message["root"] if version == 1 else message["source"]
        return cls(job_id=_integer(message, "job_id"), seq=_integer(message, "seq"),
                   model_hash=_text(message, "model_hash"), source=_text(message, "source", source), tiles=tiles)


@dataclass(frozen=True)
class TrainRequest:
    """A training run for a worker on the ``train`` queue; ``config`` holds model.config.TrainConfig's fields."""

    job_id: int
    data_dir: str
    config: dict[str, Any] = field(default_factory=dict)

    def to_message(self) -> dict[str, Any]:
        return {"format": TRAIN_FORMAT, "job_id": self.job_id, "data_dir": self.data_dir, "config": self.config}

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> TrainRequest:
        _check_object(message, "train")
        version = message.get("format", TRAIN_FORMAT)
        if version != TRAIN_FORMAT or type(version) is not int:
            raise ValueError(f"unknown train message format {version!r} (this worker reads {TRAIN_FORMAT})")
        config = message.get("config") or {}
        if not isinstance(config, dict):
            raise ValueError("a train message's config must be an object")
        return cls(job_id=_integer(message, "job_id"), data_dir=_text(message, "data_dir"), config=dict(config))


def _check_object(message: Any, kind: str) -> None:
    if not isinstance(message, dict):
        raise ValueError(f"a {kind} message must be a JSON object, not {type(message).__name__}")


def _integer(message: dict[str, Any], key: str) -> int:
    """A job id or batch number: it goes into an ``Integer`` column, so it must fit one (int4 on PostgreSQL)."""
    value = message[key]
    if type(value) is not int or not 0 <= value <= MAX_INTEGER:
        raise ValueError(f"{key} must be an integer 0..{MAX_INTEGER}, not {value!r}")
    return value


def _text(message: dict[str, Any], key: str, value: Any = None) -> str:
    value = message[key] if value is None else value
    if not isinstance(value, str) or not value or "\0" in value:
        raise ValueError(f"{key} must be a non-empty string without NUL bytes, not {value!r}")
    return value

"""The exceptions tileclass raises for problems a user can fix.

The CLI prints any ``TileclassError`` as one line and exits non-zero, without a traceback::

    TileclassError
    ├── SettingsError        a TILECLASS_* value is invalid
    ├── TileError            a tile coordinate, layout or region is invalid
    ├── SourceError          (core.sources.base) a tile source is unknown or unusable, or a path would leave it;
    │                        SourceUnavailable, also a HostError: it is missing or down on this host
    ├── NotFoundError        a job, model or tile the user named does not exist
    ├── HostError            a worker's host cannot serve a batch (not the tiles' fault: nothing fails)
    └── CheckpointError      (model/) a checkpoint is unsafe, corrupt or inconsistent
"""


class TileclassError(Exception):
    """Base class: a problem with the user's input or configuration, reported as one line."""


class SettingsError(TileclassError):
    """A setting has an invalid value."""


class TileError(TileclassError):
    """A tile coordinate, layout template or region is invalid."""


class NotFoundError(TileclassError):
    """Something the user named (job, model, tile) is not in the database."""


class HostError(TileclassError):
    """A problem of the host running a batch, not of its tiles: the batch goes back to the queue (worker.host_errors).

    Examples: the job's tile source is not mounted here (``core.sources.base.SourceUnavailable``), the checkpoint
    is missing from this host's model folder, the device ran out of memory, the database stayed unreachable.
    ``broken``: no job can run on this host (the device is lost, the model folder is unreadable, every configured
    tile root is missing), so its worker exits.
    """

    def __init__(self, reason: str, *, broken: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.broken = reason, broken

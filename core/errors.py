"""The exceptions tileclass raises for problems a user can fix.

The CLI prints any ``TileclassError`` as one line and exits non-zero, without a traceback::

    TileclassError
    ├── SettingsError        a TILECLASS_* value is invalid
    ├── TileError            a tile coordinate, layout or region is invalid
    ├── TileRootError        a tile root is unknown, missing, or a path escapes it
    ├── NotFoundError        a job, model or tile the user named does not exist
    └── CheckpointError      (model/) a checkpoint is unsafe, corrupt or inconsistent
"""


class TileclassError(Exception):
    """Base class: a problem with the user's input or configuration, reported as one line."""


class SettingsError(TileclassError):
    """A setting has an invalid value."""


class TileError(TileclassError):
    """A tile coordinate, layout template or region is invalid."""


class TileRootError(TileclassError):
    """A tile root is unknown or missing, or a path would leave it."""


class NotFoundError(TileclassError):
    """Something the user named (job, model, tile) is not in the database."""

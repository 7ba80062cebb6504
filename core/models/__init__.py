"""The model registry: checkpoints known to the results database, addressed by their content hash, and named.

- ``core.models.info``: ``ModelInfo``, the one read shape of a registered model, which every function here returns
  and queries, the CLI and the HTTP API read;
- ``core.models.names``: the one rule for the names people give models, sources and tile roots (``NAME_PATTERN``)
  and the checks of a model's name;
- ``core.models.registry``: registering a checkpoint from its sidecar (copied into the model directory under its
  hash), or a model's row alone (``register_model``); finding a model's checkpoint on this host;
- ``core.models.lookups``: a model by name, hash or unique prefix (``find_model``), every model with its result
  count (``list_models``), the newest one;
- ``core.models.manage``: naming a model, moving its name to another, unregistering it.

This file imports nothing, so that ``core.settings`` imports ``core.models.names`` (standard library only)
without the database.
"""

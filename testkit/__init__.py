"""Builders that the tests and the benchmarks share: MBTiles and PMTiles archives (``testkit.archives``) and
georeferenced rasters (``testkit.rasters``) made at run time from real tile bytes.

Not part of the wheel (pyproject's package find includes only core, model, producer, worker and api) and never
imported by them: it is importable from the repository root, which pytest puts on ``sys.path`` (``tests/`` is a
package) and which ``python -m bench.NAME`` runs from.
"""

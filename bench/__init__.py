"""The benchmarks. Each module here is one, run from the repository root as ``.venv/bin/python -m bench.NAME``
(``--help`` lists its knobs; docs/BENCHMARKS.md has the numbers); what they share lives in ``bench.lib``, and the
builders they share with the tests in ``testkit``. ``gpu_prepare.sh`` and ``gpu_check.sh`` wrap the GPU check.

Run with ``-m``, the repository root is the first entry of ``sys.path``, so ``bench``, ``testkit`` and the
packages import as they are, with no path set by hand. Not part of the wheel.
"""

#!/usr/bin/env bash
# Wheels for a GPU machine whose Python has torch but not this project's other dependencies (Python 3.12, x86-64):
# the versions this checkout's .venv runs, downloaded into .whl/ (ignored by git) to be carried there and installed
# with `python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; export PYTHONPATH=/tmp/site`.
# Only what that machine lacks (its image already has numpy, pillow, click, typer, rich, httpx, prometheus-client,
# python-dateutil, pyyaml); pure-Python wheels for any platform, binary ones for manylinux x86-64.
#
#   bash bench/gpu_wheels.sh            # then: du -sh .whl (the carry limit is 64 MiB with the working tree)
set -euo pipefail
cd "$(dirname "$0")/.."

NEEDED=(alembic amqp annotated-types billiard celery click-didyoumean click-plugins click-repl kombu Mako mercantile
        pmtiles prompt_toolkit pydantic pydantic_core pydantic-settings python-dotenv redis simplejpeg shapely
        SQLAlchemy typing-inspection tzlocal vine wcwidth)
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64)

pinned=$(.venv/bin/pip freeze)
mkdir -p .whl
grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
for name in "${NEEDED[@]}"; do
  spec=$(grep -i -E "^${name//[-_]/[-_]}==" <<<"$pinned" || true)
  if [[ -z "$spec" ]]; then
    echo "gpu_wheels: $name is not installed in .venv (run make install first)" >&2
    exit 3
  fi
  .venv/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]/#/--platform=}" -d .whl "$spec"
done
echo "gpu_wheels: $(ls .whl | wc -l) wheels, $(du -sh .whl | cut -f1) in .whl/"

#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis that the integration tests use are up on 127.0.0.1, starting them if not.
# On this project's machines both are started before every session and CI run; this covers a stopped one.
set -u

up() { python3 - "$1" <<'PY'
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2).close()
except OSError:
    sys.exit(1)
PY
}

if ! up 5432 && command -v pg_ctlcluster >/dev/null; then
  echo "PostgreSQL is down: starting it"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if ! up 6379 && command -v redis-server >/dev/null; then
  echo "Redis is down: starting it"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
# Debian's docker-compose is the real compose parser the compose-file test validates with (no engine needed).
if ! command -v docker-compose >/dev/null && command -v apt-get >/dev/null; then
  echo "installing Debian's docker-compose for the compose-file test"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose) \
    >/tmp/tileclass-apt.log 2>&1 || echo "could not install docker-compose (see /tmp/tileclass-apt.log)" >&2
fi

# Debian's chromium and chromium-driver: the map page's test drives a real headless browser through selenium.
if ! { command -v chromium >/dev/null && command -v chromedriver >/dev/null; } && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium and chromium-driver for the map page's test"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium \
    chromium-driver fonts-dejavu-core) >/tmp/tileclass-apt-chromium.log 2>&1 \
    || echo "could not install chromium (see /tmp/tileclass-apt-chromium.log)" >&2
fi

# Debian's gdal-bin: ogrinfo opens what vectorize and diff write, as a GIS user would check them.
if ! command -v ogrinfo >/dev/null && command -v apt-get >/dev/null; then
  echo "installing Debian's gdal-bin (ogrinfo) for the vector files' tests"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gdal-bin) \
    >/tmp/tileclass-apt-gdal.log 2>&1 || echo "could not install gdal-bin (see /tmp/tileclass-apt-gdal.log)" >&2
fi

for _ in $(seq 1 30); do up 5432 && up 6379 && exit 0; sleep 1; done
up 5432 || echo "PostgreSQL is still unreachable at 127.0.0.1:5432" >&2
up 6379 || echo "Redis is still unreachable at 127.0.0.1:6379" >&2
exit 1

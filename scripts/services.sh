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
for _ in $(seq 1 30); do up 5432 && up 6379 && exit 0; sleep 1; done
up 5432 || echo "PostgreSQL is still unreachable at 127.0.0.1:5432" >&2
up 6379 || echo "Redis is still unreachable at 127.0.0.1:6379" >&2
exit 1

#!/usr/bin/env bash
# Start PostgreSQL (127.0.0.1:5432, trust auth, database "test") and Redis (127.0.0.1:6379)
# for the test suite when they are not already running. Idempotent.
set -uo pipefail

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

pg_ready() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_ready() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

need_apt=()
command -v pg_ctlcluster >/dev/null 2>&1 || need_apt+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! pg_ready; then
  ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
  if [ -n "$ver" ]; then
    conf=/etc/postgresql/$ver/main/pg_hba.conf
    if ! grep -q "crossroads-ci" "$conf" 2>/dev/null; then
      # trust on loopback, as on the development machines
      $SUDO sed -i '1i host all all 127.0.0.1/32 trust # crossroads-ci\nhost all all ::1/128 trust # crossroads-ci\nlocal all all trust # crossroads-ci' "$conf"
    fi
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  fi
  for _ in $(seq 1 50); do pg_ready && break; sleep 0.2; done
fi
if pg_ready; then
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" 2>/dev/null | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null 2>&1 || true
else
  echo "warning: PostgreSQL is not reachable on 127.0.0.1:5432" >&2
fi

if ! redis_ready; then
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null
  for _ in $(seq 1 50); do redis_ready && break; sleep 0.1; done
fi
redis_ready || echo "warning: Redis is not reachable on 127.0.0.1:6379" >&2
exit 0

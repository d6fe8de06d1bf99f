#!/usr/bin/env bash
# Start PostgreSQL (127.0.0.1:5432, trust auth on loopback, roles postgres and root, database
# "test") and Redis (127.0.0.1:6379, no persistence) for the test suite when they are not
# already running. Idempotent: installs what is missing (Debian packages), starts what is
# stopped, leaves running services alone. Always exits 0; a service that cannot be started
# is reported on stderr and the tests that need it are skipped with that reason.
set -uo pipefail

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

pg_ready() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_ready() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
psql_admin() { psql -h 127.0.0.1 -U postgres -d postgres -tAq "$@" 2>/dev/null; }

# -- install what is missing -----------------------------------------------------------------
need_apt=()
command -v pg_ctlcluster >/dev/null 2>&1 || need_apt+=(postgresql postgresql-client)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# -- PostgreSQL ------------------------------------------------------------------------------
if ! pg_ready; then
  ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
  if [ -z "$ver" ] && ls /usr/lib/postgresql >/dev/null 2>&1; then
    # packages installed without a cluster (e.g. a container image): make one
    ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
    $SUDO pg_createcluster "$ver" main --port 5432 >/dev/null || true
  fi
  if [ -n "$ver" ]; then
    conf=/etc/postgresql/$ver/main/pg_hba.conf
    if ! grep -q "crossroads-ci" "$conf" 2>/dev/null; then
      # trust on loopback, as on the development machines (first matching line wins)
      $SUDO sed -i '1i host all all 127.0.0.1/32 trust # crossroads-ci\nhost all all ::1/128 trust # crossroads-ci\nlocal all all trust # crossroads-ci' "$conf"
    fi
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  fi
  for _ in $(seq 1 100); do pg_ready && break; sleep 0.2; done
fi
if pg_ready; then
  psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname='root'" | grep -q 1 \
    || psql_admin -c "CREATE ROLE root SUPERUSER LOGIN" >/dev/null || true
  psql_admin -c "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 \
    || psql_admin -c "CREATE DATABASE test" >/dev/null || true
else
  echo "warning: PostgreSQL is not reachable on 127.0.0.1:5432" >&2
fi

# -- Redis -----------------------------------------------------------------------------------
if ! redis_ready; then
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null
  for _ in $(seq 1 50); do redis_ready && break; sleep 0.1; done
fi
redis_ready || echo "warning: Redis is not reachable on 127.0.0.1:6379" >&2
exit 0

#!/usr/bin/env bash
# The project's PostgreSQL for tests (Debian postgresql, started by hand: no systemd here).
#   scripts/pg.sh start | stop | url
# Data in $UWS_PG_DIR (default /tmp/uws-pg), 127.0.0.1:$UWS_PG_PORT (default 55433);
# role "uws" (password "uws", CREATEDB) so tests can make a fresh database per run.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
D=${UWS_PG_DIR:-/tmp/uws-pg}; PORT=${UWS_PG_PORT:-55433}; SOCK=$D/sock
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
case "${1:-start}" in
  url) echo "postgresql+psycopg://uws:uws@127.0.0.1:$PORT/postgres"; exit 0 ;;
  stop)
    [ -n "$BIN" ] && [ -f "$D/data/postmaster.pid" ] && runuser -u postgres -- "$BIN/pg_ctl" -D "$D/data" stop -m fast >/dev/null && log "PostgreSQL stopped"
    exit 0 ;;
esac
is_root || die "scripts/pg.sh start needs root (it runs PostgreSQL as the postgres account)"
if [ -z "$BIN" ]; then apt_install postgresql; BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1); fi
mkdir -p "$D/data" "$SOCK"; chown -R postgres:postgres "$D"; chmod 700 "$D/data"
if [ ! -f "$D/data/PG_VERSION" ]; then
  runuser -u postgres -- "$BIN/initdb" -D "$D/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 >/dev/null
fi
opts="-c listen_addresses=127.0.0.1 -p $PORT -k $SOCK -c fsync=off -c synchronous_commit=off"
if ! runuser -u postgres -- "$BIN/pg_ctl" -D "$D/data" status >/dev/null 2>&1; then
  runuser -u postgres -- "$BIN/pg_ctl" -D "$D/data" -l "$D/server.log" -w -o "$opts" start >/dev/null \
    || { tail -n 20 "$D/server.log" >&2; die "PostgreSQL did not start (log above)"; }
fi
PSQL=(runuser -u postgres -- psql -h "$SOCK" -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qAt)
"${PSQL[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname='uws'" | grep -q 1 || "${PSQL[@]}" -c "CREATE ROLE uws LOGIN CREATEDB PASSWORD 'uws'"
log "PostgreSQL up on 127.0.0.1:$PORT (pid $(head -n1 "$D/data/postmaster.pid"))"

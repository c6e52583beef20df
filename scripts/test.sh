#!/usr/bin/env bash
# `make test`: install test dependencies, start the real services the tests use, run the suite:
# the unit layer (tests/unit, seconds) first, then the end-to-end tests (tests/e2e, real hubs),
# then the UWS contract suite (tests/contract, HTTP only).
# `make unit`: the unit layer only — any user, no root, no services started.
#   scripts/test.sh [--unit] [pytest args...]
# Pytest arguments naming no test path run the whole layer(s); with a path (tests/e2e/test_jobs.py,
# tests/unit/test_ids.py::test_ids) only what it names runs, after the unit layer.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
unit_only=
if [ "${1:-}" = --unit ]; then unit_only=1; shift; fi

if ! VENV=$("$UWS_REPO/scripts/bootstrap.sh" test); then
  # e.g. another user's venv that pyproject.toml changed under: fine for pure-Python unit tests
  VENV=$(venv_path)
  [ -n "$unit_only" ] && ! is_root && [ -x "$VENV/bin/pytest" ] || exit 1
  log "setup failed (above); running the unit tests with $VENV as it is"
fi
export UWS_VENV=$VENV
cd "$UWS_REPO"

# the arguments as given when they name a test path; else the layer's directory, then them
args_for() {
  local layer=$1 a
  shift
  for a in "$@"; do
    if [ -e "${a%%::*}" ]; then printf '%s\0' "$@"; return; fi
  done
  printf '%s\0' "$layer" "$@"
}

if [ -n "$unit_only" ]; then
  mapfile -d '' args < <(args_for tests/unit "$@")
  # a user who cannot write the checkout runs without pytest's cache (--lf and co.)
  if [ ! -w "$UWS_REPO/.pytest_cache" ] && { [ -e "$UWS_REPO/.pytest_cache" ] || [ ! -w "$UWS_REPO" ]; }; then
    args=(-p no:cacheprovider "${args[@]}")
  fi
  exec "$VENV/bin/python" -m pytest "${args[@]}"
fi

cleanup() {
  "$UWS_REPO/scripts/pg.sh" stop >/dev/null 2>&1 || true
  "$UWS_REPO/scripts/slurm.sh" stop >/dev/null 2>&1 || true
  "$UWS_REPO/scripts/ldap.sh" stop >/dev/null 2>&1 || true
}
"$VENV/bin/ruff" check uws_hub tests bench jupyterhub_config.py
"$VENV/bin/python" -m pytest tests/unit  # fails fast, before any service starts
trap cleanup EXIT
if is_root; then
  "$UWS_REPO/scripts/pg.sh" start
  export UWS_TEST_PG_URL=$("$UWS_REPO/scripts/pg.sh" url)
  "$UWS_REPO/scripts/slurm.sh" start
  export UWS_TEST_SLURM=1
  "$UWS_REPO/scripts/ldap.sh" start
  export UWS_TEST_LDAP=1
  export UWS_REQUIRE_BROWSER=1  # bootstrap installed chromium: the browser tests must run
fi
mapfile -d '' args < <(args_for tests/e2e "$@")
if [ "${#args[@]}" = 1 ]; then
  # the whole layer, no other arguments: the tests that mostly wait (marked background:
  # minute-long limits and timers, no Slurm) run in a pytest of their own alongside the
  # others; its report follows (with arguments, -k or -m, one pytest runs as asked)
  bg_log=$(mktemp /tmp/uws-e2e-background.XXXXXX)
  PATH="$VENV/bin:$PATH" "$VENV/bin/python" -m pytest "${args[@]}" -m background \
    -p no:cacheprovider > "$bg_log" 2>&1 &
  bg=$!
  trap 'kill "$bg" 2>/dev/null; cleanup' EXIT  # (never services stopped under it)
  status=0
  PATH="$VENV/bin:$PATH" "$VENV/bin/python" -m pytest "${args[@]}" -m "not background" \
    || status=$?
  bg_status=0
  wait "$bg" || bg_status=$?
  trap cleanup EXIT
  log "the e2e tests marked background (run alongside the others):"
  cat "$bg_log"
  rm -f "$bg_log"
  [ "$status" = 0 ] || exit "$status"
  [ "$bg_status" = 0 ] || exit "$bg_status"
else
  PATH="$VENV/bin:$PATH" "$VENV/bin/python" -m pytest "${args[@]}"
fi
# last, the contract suite (tests/contract: UWS's API over HTTP only, on a hub of its own; a few
# minutes), after the e2e layer so that layer's results come first; not when the arguments
# named a test path (that ran above)
if [ "${args[0]}" = tests/e2e ]; then
  PATH="$VENV/bin:$PATH" "$VENV/bin/python" -m pytest tests/contract "$@"
fi

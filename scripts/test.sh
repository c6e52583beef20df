#!/usr/bin/env bash
# `make test`: install test dependencies, start the real services the tests use, run the suite.
#   scripts/test.sh [pytest args...]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
VENV=$("$UWS_REPO/scripts/bootstrap.sh" test)
export UWS_VENV=$VENV
cleanup() {
  "$UWS_REPO/scripts/pg.sh" stop >/dev/null 2>&1 || true
  "$UWS_REPO/scripts/slurm.sh" stop >/dev/null 2>&1 || true
  "$UWS_REPO/scripts/ldap.sh" stop >/dev/null 2>&1 || true
}
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
cd "$UWS_REPO"
"$VENV/bin/ruff" check uws_hub tests bench jupyterhub_config.py
PATH="$VENV/bin:$PATH" "$VENV/bin/python" -m pytest "$@"

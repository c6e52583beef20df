#!/usr/bin/env bash
# `make run`: set up what is missing, then run the hub from ./jupyterhub_config.py in the foreground.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
VENV=$("$UWS_REPO/scripts/bootstrap.sh" run)
export UWS_DATA_DIR=${UWS_DATA_DIR:-$UWS_REPO/uws-data}
mkdir -p "$UWS_DATA_DIR/hub"
if [ -z "${UWS_DEV_PASSWORD:-}" ]; then
  pwfile="$UWS_DATA_DIR/hub/dev-password"
  if [ ! -s "$pwfile" ]; then
    (umask 077; "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(12))' > "$pwfile")
  fi
  UWS_DEV_PASSWORD=$(cat "$pwfile")
  export UWS_DEV_PASSWORD
fi
url="http://${UWS_HUB_IP:-127.0.0.1}:${UWS_HUB_PORT:-8000}/hub/login"
cat >&2 <<MSG

  uws_hub is starting.  Open:      $url
  Log in with any name (e.g. alice; 'admin' is an admin) and the password:  $UWS_DEV_PASSWORD
  Workspaces page / API:           http://${UWS_HUB_IP:-127.0.0.1}:${UWS_HUB_PORT:-8000}/services/uws/
  Data:                            $UWS_DATA_DIR        (Ctrl-C stops the hub)

MSG
cd "$UWS_REPO"
PATH="$VENV/bin:$PATH" exec "$VENV/bin/jupyterhub" -f "$UWS_REPO/jupyterhub_config.py"

#!/usr/bin/env bash
# Install what uws_hub needs and is missing; print the venv path on stdout.
#   scripts/bootstrap.sh [run|test]
# Idempotent and quick when nothing changed: the pip step is skipped while pyproject.toml is unchanged.
# - Debian packages (root only, when missing): python3-venv, nodejs/npm, passwd (useradd); for "test"
#   PostgreSQL and chromium.
# - a venv built from Debian's /usr/bin/python3 (the image's default python lives under /root, mode 0700,
#   and a venv made from it cannot be run by the users that jobs run as).
# - configurable-http-proxy from npm, installed inside the venv (no global npm changes).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
what=${1:-run}

pkgs=(python3-venv passwd)
command -v node >/dev/null || pkgs+=(nodejs)
command -v npm >/dev/null || pkgs+=(npm)
[ "$what" = test ] && [ -z "$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null)" ] && pkgs+=(postgresql)
# the browser tests drive Debian's chromium (Playwright's own browser download is not used)
[ "$what" = test ] && [ ! -x /usr/lib/chromium/chromium ] && pkgs+=(chromium fonts-dejavu-core)
# bench P11 (downloads) compares with `zip -r`
[ "$what" = test ] && ! command -v zip >/dev/null && pkgs+=(zip)
if is_root; then apt_install "${pkgs[@]}"; fi
[ -x /usr/bin/python3 ] || die "/usr/bin/python3 is missing: apt-get install -y python3 python3-venv"
command -v npm >/dev/null || die "npm is missing: apt-get install -y nodejs npm"

VENV=$(venv_path)
if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV (from /usr/bin/python3)"
  mkdir -p "$(dirname "$VENV")"
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip > "$VENV/pip-install.log" 2>&1 || true
fi

# pip step, skipped while pyproject.toml is unchanged ("test" installs a superset of "run")
extras=""
[ "$what" = test ] && extras="[test]"
want="$(sha1sum "$UWS_REPO/pyproject.toml" | cut -c1-40) $UWS_REPO"
if [ "$(cat "$VENV/.uws-installed-test" 2>/dev/null)" != "$want" ] \
   && { [ "$what" = test ] || [ "$(cat "$VENV/.uws-installed-run" 2>/dev/null)" != "$want" ]; }; then
  log "pip install -e .$extras into $VENV"
  "$VENV/bin/pip" install -q -e "$UWS_REPO$extras" > "$VENV/pip-install.log" 2>&1 \
    || { grep -v 'is ignored' "$VENV/pip-install.log" | tail -n 40 >&2; die "pip install failed (log: $VENV/pip-install.log)"; }
  # other users (the accounts jobs run as) must be able to run the venv's programs
  chmod -R a+rX "$VENV" 2>/dev/null || true
  echo "$want" > "$VENV/.uws-installed-$what"
fi

# Node uses its own CA list, not the system's: trust the system store too (local or proxy CAs)
if [ -z "${NODE_EXTRA_CA_CERTS:-}" ] && [ -r /etc/ssl/certs/ca-certificates.crt ]; then
  export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
fi
if [ ! -x "$VENV/bin/configurable-http-proxy" ]; then
  log "npm install configurable-http-proxy (into $VENV/node)"
  npm install --silent --no-audit --no-fund --prefix "$VENV/node" configurable-http-proxy@5 >/dev/null 2>&1 \
    || npm install --no-audit --no-fund --prefix "$VENV/node" configurable-http-proxy@5 >&2 \
    || die "npm install configurable-http-proxy failed"
  ln -sf "$VENV/node/node_modules/.bin/configurable-http-proxy" "$VENV/bin/configurable-http-proxy"
  chmod -R a+rX "$VENV/node" 2>/dev/null || true
fi

echo "$VENV"

# Shared shell helpers for the project's scripts. Source it; do not run it.

# repo root (the directory holding pyproject.toml)
UWS_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '[uws_hub] %s\n' "$*" >&2; }
die() { printf '[uws_hub] error: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

# world_traversable DIR: true when every ancestor of DIR lets other users pass (o+x).
# A venv or data dir that other users cannot reach breaks jobs that run as those users.
world_traversable() {
  local d=$1
  while [ -n "$d" ] && [ "$d" != / ]; do
    [ -e "$d" ] || { d=$(dirname "$d"); continue; }
    local mode
    mode=$(stat -c %a "$d")
    (( (8#$mode & 1) == 1 )) || return 1
    d=$(dirname "$d")
  done
  return 0
}

# venv_path: where the project's virtualenv lives.
#   $UWS_VENV if set; else ./.venv when every user can reach it; else (as root) /opt/uws_hub/venv-<hash>.
venv_path() {
  if [ -n "${UWS_VENV:-}" ]; then echo "$UWS_VENV"; return; fi
  if ! is_root || world_traversable "$UWS_REPO"; then echo "$UWS_REPO/.venv"; return; fi
  echo "/opt/uws_hub/venv-$(printf %s "$UWS_REPO" | sha1sum | cut -c1-8)"
}

# kill_pidfile FILE PATTERN: stop the process in FILE only if its command line contains PATTERN
# (pid files go stale and PIDs are reused; never kill by name).
kill_pidfile() {
  local f=$1 pat=$2 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f" 2>/dev/null) || return 0
  if [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pat"; then
    kill "$pid" 2>/dev/null && log "stopped $pat (pid $pid)"
    for _ in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$f" 2>/dev/null || true
}

# apt_install PKG...: install Debian packages that are missing (root only; quiet).
apt_install() {
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
  [ ${#missing[@]} = 0 ] && return 0
  if ! is_root; then
    die "missing Debian packages: ${missing[*]} — ask an administrator to run: apt-get install -y ${missing[*]}"
  fi
  log "apt-get install ${missing[*]}"
  if [ -z "${_UWS_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || die "apt-get update failed"
    _UWS_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

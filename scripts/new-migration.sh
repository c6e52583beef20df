#!/usr/bin/env bash
# Generate an Alembic migration from the difference between the models and the current head.
#   scripts/new-migration.sh "what changed"
# Review the file it writes under uws_hub/db/migrations/versions/ before committing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ $# = 1 ] || die 'usage: scripts/new-migration.sh "what changed"'
VENV=$(venv_path)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$VENV/bin/python" - "$tmp/gen.sqlite" "$1" <<'PY'
import sys
from alembic import command
from uws_hub.db.migrate import alembic_config, upgrade
from uws_hub.db.session import make_engine
db, message = sys.argv[1], sys.argv[2]
upgrade(make_engine(f"sqlite:///{db}"))
command.revision(alembic_config(f"sqlite:///{db}"), message=message, autogenerate=True)
PY

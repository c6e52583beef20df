"""The ``uws-hub`` command: operator tasks outside the running service.

uws-hub check-config -f jupyterhub_config.py   validate the c.UWS settings (exit 2 with the reason)
uws-hub db upgrade   -f jupyterhub_config.py   bring the uws database schema to this version
uws-hub db current   -f jupyterhub_config.py   print the schema revision (and the one expected)
uws-hub config-help                            every c.UWS setting with its help text
"""

from __future__ import annotations

import argparse
import sys

from .config import UWS
from .errors import ConfigError


def _settings(path: str) -> tuple[UWS, list[str]]:
    from .service.app import load_settings

    return load_settings(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="uws-hub", description="uws_hub operator commands")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("check-config", help="validate the configuration")
    p.add_argument("-f", "--config", default="jupyterhub_config.py")
    p = sub.add_parser("db", help="database schema")
    p.add_argument("action", choices=["upgrade", "current"])
    p.add_argument("-f", "--config", default="jupyterhub_config.py")
    sub.add_parser("config-help", help="print every c.UWS setting")
    args = parser.parse_args(argv)

    if args.cmd == "config-help":
        print(UWS.class_get_help())
        return 0
    try:
        settings, warnings = _settings(args.config)
    except ConfigError as e:
        print(f"uws_hub: configuration error: {e}", file=sys.stderr)
        return 2
    for w in warnings:
        print(f"uws_hub: warning: {w}", file=sys.stderr)
    if args.cmd == "check-config":
        print(f"configuration OK: root_dir={settings.root_dir} db_url={settings.db_url}")
        return 0
    from .db import migrate
    from .db.session import make_engine

    engine = make_engine(settings.db_url, **settings.db_kwargs)
    if args.action == "upgrade":
        migrate.upgrade(engine)
    print(
        f"schema revision: {migrate.current_revision(engine)} (this version needs {migrate.head_revision()})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

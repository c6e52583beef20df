"""Start a hub for the contract suite and print how to reach it; run as a subprocess.

    python tests/contract/launch_hub.py

This is the only part of tests/contract that knows how test hubs are made: it uses the e2e
harness (tests/e2e/hubtest.py, hub_config.py as it is) and the dataset lookup stand-in
(tests/e2e/standins/datasets.py), so the hub has the test configuration's job types, the
portal's parameters (``time_limit_minutes``, ``gpu_enabled``) and dataset links resolved over
HTTP with a Globus groups token, as HuBMAP's storage did (UWS-REFERENCE §3.2). And the hub is
a switched UWS site: before the suite starts, a UWS site (tests/e2e/uwsimport.py) is imported
into it with ``uws-hub import-uws``, so the whole suite runs against imported data, and
test_imported.py checks what came over.

It prints one JSON line once the hub answers::

    {"url", "client_token", "groups_token", "datasets": [uuid, ...],
     "forbidden_dataset", "unknown_dataset", "symlink_target", "log", "imported"}

and keeps the hub until its standard input closes (or SIGTERM/SIGINT), then stops it and
removes what it left. The tests themselves speak HTTP only (conftest.py).
"""

from __future__ import annotations

import json
import os
import secrets
import select
import signal
import sys
import uuid
from pathlib import Path

E2E = Path(__file__).resolve().parents[1] / "e2e"
sys.path.insert(0, str(E2E))

from sqlalchemy import create_engine  # noqa: E402
from uwsimport import HUB_CONFIG, RUNNING_IN_42, UWSSite, build_site, import_uws  # noqa: E402

from hubtest import HubFactory, HubProcess  # noqa: E402
from standins.datasets import DatasetLookupStandin  # noqa: E402

READABLE = [uuid.uuid4().hex for _ in range(2)]
FORBIDDEN = uuid.uuid4().hex
UNKNOWN = uuid.uuid4().hex


def _make_dataset(path: Path, name: str) -> None:
    path.mkdir(parents=True)
    (path / "README.txt").write_text(f"dataset {name}\n")
    path.chmod(0o755)


def _datasets(lookup: DatasetLookupStandin):
    def before_start(hub: HubProcess) -> None:
        for i in [*READABLE, FORBIDDEN]:
            _make_dataset(hub.datasets / "hubmap" / i, i)
            lookup.add_dataset(i, str(hub.datasets / "hubmap" / i), public=i in READABLE)

    return before_start


def _wait_for_eof() -> None:
    while True:
        try:
            if not os.read(0, 4096):
                return
        except BlockingIOError:
            select.select([0], [], [])


def _switch_from_uws(hub: HubProcess) -> dict:
    """Make the hub a switched UWS site: stop it (after its first start set its databases
    up), import a UWS site (tests/e2e/uwsimport.py) with ``uws-hub import-uws``, start it again.
    Its directories move from UWS's root into the hub's. Returns what the site had."""
    site_db = f"sqlite:///{hub.dir}/uws-site.sqlite"
    storage = hub.dir / "uws-storage"
    engine = create_engine(site_db)
    expected = build_site(engine, storage)
    UWSSite(engine).end_job(RUNNING_IN_42)  # the operator lets it end before the switch
    engine.dispose()
    hub.stop()
    import_uws(hub, "--uws-db", site_db, "--uws-root", str(storage))
    hub.start()
    return expected


def _stop(signum, frame):
    raise SystemExit(0)


def main() -> None:
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with DatasetLookupStandin() as lookup:
        groups_token = "Agx" + secrets.token_urlsafe(32)
        lookup.add_token(groups_token, [])
        hubs = HubFactory()
        try:
            hub = hubs(
                "contract",
                extra_config=(
                    'c.UWS.dataset_resolver = "http"\n'
                    f'c.UWS.dataset_lookup_url = "{lookup.lookup_url}"\n'
                    "c.UWS.dataset_lookup_timeout = 5\n"
                    # a site moving from UWS: its portal's user names are the site's own
                    # accounts (UWS-REFERENCE §3.1; docs/identity/README.md)
                    'c.AccountMapping.home_domains = ["test-portal"]\n' + HUB_CONFIG
                    # a switched UWS site's own portal account (tests/e2e/uwsimport.py)
                ),
                before_start=_datasets(lookup),
            )
            imported = _switch_from_uws(hub)
            info = {
                "url": hub.url,
                # the "test-portal" service of hub_config.py: a trusted token client
                "client_token": hub.admin_token[::-1],
                "groups_token": groups_token,
                "datasets": READABLE,
                "forbidden_dataset": FORBIDDEN,
                "unknown_dataset": UNKNOWN,
                # an existing directory under c.UWS.symlink_roots (symlinks with source_path)
                "symlink_target": str(hub.datasets / "hubmap" / READABLE[0]),
                "log": str(hub.log_path),
                # what the site it was switched from had (tests/contract/test_imported.py)
                "imported": imported,
            }
            print(json.dumps(info), flush=True)
            _wait_for_eof()  # until the test session closes our input (or dies)
        finally:
            hubs.close()


if __name__ == "__main__":
    main()

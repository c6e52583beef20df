"""A UWS site to switch to uws_hub, as the import's end-to-end test (tests/e2e/test_import.py)
and the contract suite's hub (tests/contract/launch_hub.py) build it: a UWS database (the
schema UWS's migrations leave, on SQLite or PostgreSQL, tests/unit/uwssite.py) and its storage
root, with real system accounts owning the directories.

Three people from three identity sources (Globus + the account service, the account service,
a local login), each with a DRF token, and the portal's account (a trusted client); workspaces with files and a link, one active, one being
deleted (not imported, but its id, the site's largest, is never given again on PostgreSQL);
ended and running jobs (one running in a workspace that moves: `UWSSite.end_job` before the import); a pending and an accepted invitation; a quota. `build_site` returns
what a UWS client saw of it (`expected`), which the import must keep.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

from hubtest import BIN, HubProcess, ensure_system_user

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from unit.uwssite import T0, UWSSite  # noqa: E402

from uws_hub.importer import uwsschema as u  # noqa: E402

GLOBUS, PSC, LOCAL = (
    "GlobusUserAuthentication",
    "PSCAPIUserAuthentication",
    "LocalUserAuthentication",
)
ANN, BEN, CY = "uwsi-ann", "uwsi-ben", "uwsi-cy"
#: the portal's account: a trusted client (group api_clients) whose user_info names the site's
#: accounts; the hub is configured for it (`HUB_CONFIG`)
PORTAL = "uwsi-portal"
TOKENS = {ANN: "a1" * 20, BEN: "b2" * 20, CY: "c3" * 20}  # DRF tokens: 40 hex characters
PORTAL_TOKEN = "d4" * 20
#: what a hub switched from this site is configured with
HUB_CONFIG = (
    f'c.UWS.token_client_users = {{"{PORTAL}"}}\nc.AccountMapping.home_domains.append("{PORTAL}")\n'
)
RUNNING_IN_42 = 103  # a job still running in workspace 42 (ended before the switch)
#: files of workspace 41 (ann's), relative path -> content; "latest" is a link to a file in it
FILES_41 = {"notes.txt": "from UWS\n", "data/cells.csv": "id,kind\n1,T\n"}
PENDING_COPY, ACCEPTED_COPY = 44, 45
LARGEST_WORKSPACE_ID, LARGEST_JOB_ID = 60, 150  # ids UWS gave that are not imported


def _details(files: list[str]) -> dict:
    """workspace_details as UWS's storage left them (UWS-REFERENCE §1.5)."""
    entries = [{"name": f"/{f}"} for f in files]
    return {
        "request_workspace_details": {},
        "current_workspace_details": {"files": entries, "symlinks": []},
    }


def _own(path: Path, account: str) -> None:
    """`path` and everything in it to `account`, links themselves (never followed)."""
    pw = ensure_system_user(account)
    for p in [path, *path.rglob("*")]:
        os.lchown(p, pw.pw_uid, pw.pw_gid)


def build_site(engine: Engine, storage: Path) -> dict:
    """Build the site in `engine` (an empty database) and `storage` (UWS's root_dir); return
    what the import must keep, JSON-able: per person their token, workspaces and jobs."""
    for account in (ANN, BEN, CY):
        ensure_system_user(account)
    site = UWSSite(engine)
    site.person(7, ANN, "ann@uni.edu", first="Ann", last="Archer", token=TOKENS[ANN])
    site.mapping(11, 7, GLOBUS, "5c1e0b6a-0000-4000-8000-0000000000a1", "ann@uni.edu")
    site.mapping(12, 7, PSC, "9001", ANN, {"uid": 9001})
    site.person(8, BEN, "ben@lab.org", first="Ben", last="Baker", token=TOKENS[BEN])
    site.mapping(13, 8, PSC, "9002", BEN)
    site.person(9, CY, "cy@uni.edu", first="Cy", last="Cole", token=TOKENS[CY])
    site.mapping(14, 9, LOCAL, "9003", CY)
    site.person(10, PORTAL, "", groups=("api_clients",), token=PORTAL_TOKEN)

    def workspace(ws_id, owner, account, files, **kw):
        site.workspace(ws_id, owner, f"{account}/{ws_id}", details=_details(files), **kw)
        d = storage / account / str(ws_id)
        d.mkdir(parents=True)
        for rel in files:
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / rel).write_text(FILES_41.get(rel, f"{rel} of {ws_id}\n"))
        return d

    d41 = workspace(
        41, 7, ANN, list(FILES_41), name="Spleen", description="cells", default_job_type="test_job"
    )
    (d41 / "latest").symlink_to("data/cells.csv")
    workspace(42, 7, ANN, ["kidney.txt"], name="Kidney", status="active")
    workspace(43, 8, BEN, ["ben.txt"], name="Ben's own")
    workspace(PENDING_COPY, 8, BEN, list(FILES_41), name="Spleen", description="cells")
    workspace(ACCEPTED_COPY, 9, CY, ["kidney.txt"], name="Kidney")
    site.workspace(LARGEST_WORKSPACE_ID, 9, f"{CY}/{LARGEST_WORKSPACE_ID}", status="deleting")
    for account in (ANN, BEN, CY):
        (storage / account).chmod(0o700)
        _own(storage / account, account)
    site.job(101, 7, 41, "complete", core_hours="2.5", resource_job_id=4711, hours=1.25)
    site.job(102, 8, 43, "failed", core_hours="0.1", resource_name="LocalResource")
    site.job(RUNNING_IN_42, 7, 42, "running", resource_job_id=4713)
    # still running (in a workspace UWS is deleting, which stays behind): reported only
    site.job(LARGEST_JOB_ID, 9, LARGEST_WORKSPACE_ID, "running", resource_job_id=4750)
    site.share(201, 41, PENDING_COPY)
    site.share(202, 42, ACCEPTED_COPY, accepted=True)
    site.quota(301, 7, 1_500_000_000, "100", used_core="2.5")  # bytes, in a 32-bit column
    return {
        "tokens": TOKENS,
        "created": T0.isoformat(),
        "workspaces": {ANN: [41, 42], BEN: [43], CY: [ACCEPTED_COPY]},
        "names": {
            "41": "Spleen",
            "42": "Kidney",
            "43": "Ben's own",
            str(PENDING_COPY): "Spleen",
            str(ACCEPTED_COPY): "Kidney",
        },
        "jobs": {ANN: [101, RUNNING_IN_42], BEN: [102], CY: []},
        "portal_token": PORTAL_TOKEN,
        "pending_copy": PENDING_COPY,
        "accepted_copy": ACCEPTED_COPY,
        "largest_imported_workspace": ACCEPTED_COPY,
        "files_41": sorted(FILES_41),
        # ann's UWS quota, now a limit; her ended job's core-hours count against it
        "quota": {"user": ANN, "disk": 1_500_000_000, "core_hours": 100, "used": 2.5},
    }


#: the largest workspace id UWS ever gave (on PostgreSQL): a workspace it deleted since
DELETED_WORKSPACE_ID = 70


def gave_and_deleted(engine: Engine) -> None:
    """UWS gave workspace ids up to `DELETED_WORKSPACE_ID` and deleted the last ones (its
    PostgreSQL sequence remembers them; the rows are gone)."""
    with engine.begin() as conn:
        conn.execute(
            text("SELECT setval(pg_get_serial_sequence(:t, 'id'), :v)"),
            {"t": u.WORKSPACE.name, "v": DELETED_WORKSPACE_ID},
        )


def import_uws(hub: HubProcess, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``uws-hub import-uws ARGS`` with `hub`'s configuration (the hub stopped), as an
    operator runs it."""
    proc = subprocess.run(
        [str(BIN / "uws-hub"), "import-uws", *args, "-f", str(hub.config)],
        env=hub.env,
        cwd=hub.dir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"import-uws {args} -> {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc

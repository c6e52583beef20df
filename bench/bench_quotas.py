#!/usr/bin/env python3
"""bench P8, everyone's quotas: the admin page's answer, one person at a time against grouped.

The admin page's *Usage and limits* is ``GET /api/quotas/``.

A uws database with N people, each with 3 workspaces (one deleted), 25 ended jobs over the
last 90 days, a pending job for every tenth person and an own limit for every fifth. Timed:

- per person: ``QuotaManager.describe`` for each (a few queries per person, how
  ``describe_all`` worked before);
- grouped: ``QuotaManager.describe_all`` (one query per figure for everyone).

Both must give the same answers (checked). Printed for each accounting period (all, month):
seconds for each and the ratio. SQLite by default; ``--pg-url`` runs on PostgreSQL too
(in a new database it drops afterwards).

    python bench/bench_quotas.py [--users 2000] [--rounds 3] [--pg-url $(scripts/pg.sh url)]
    python bench/bench_quotas.py --quick [--pg-url ...]    # short form (tests/e2e/test_benches.py)
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import secrets
import statistics
import tempfile
import time

from sqlalchemy import create_engine, make_url, select, text
from traitlets.config import Config

from benchnames import heading
from uws_hub.config import UWS
from uws_hub.db import migrate
from uws_hub.db.models import Job, User, UserQuota, Workspace, utcnow
from uws_hub.db.session import make_engine, make_sessionmaker
from uws_hub.quotas import QuotaManager


def fill(Session, users: int) -> None:
    rng = random.Random(8)
    now = utcnow()
    with Session() as s:
        for i in range(users):
            u = User(name=f"user{i:05d}", uid=20000 + i, gid=20000 + i)
            s.add(u)
            s.flush()
            spaces = []
            for w in range(3):
                ws = Workspace(
                    user_id=u.id,
                    name=f"ws{w}",
                    file_path=f"{u.name}/{w}",
                    disk_space=rng.randrange(10**6, 10**10),
                    status="deleted" if w == 2 else "idle",
                )
                s.add(ws)
                spaces.append(ws)
            s.flush()
            for _ in range(25):
                end = now - dt.timedelta(minutes=rng.randrange(1, 90 * 24 * 60))
                minutes = rng.randrange(5, 600)
                start = end - dt.timedelta(minutes=minutes)
                cpus = rng.choice((1, 2, 4, 8))
                s.add(
                    Job(
                        user_id=u.id,
                        workspace_id=spaces[rng.randrange(2)].id,
                        job_type="jupyter_lab",
                        resource="slurm",
                        status=rng.choice(("complete", "complete", "failed")),
                        datetime_created=start,
                        datetime_start=start,
                        datetime_end=end,
                        cpus=cpus,
                        core_seconds=cpus * minutes * 60,
                        server_removed=True,
                        start_observed=True,
                    )
                )
            if i % 10 == 0:  # waiting in the queue: holds its time limit
                s.add(
                    Job(
                        user_id=u.id,
                        workspace_id=spaces[0].id,
                        job_type="jupyter_lab",
                        resource="slurm",
                        status="pending",
                        datetime_created=now,
                        cpus=2,
                        time_limit_s=7200,
                    )
                )
            if i % 5 == 0:
                s.add(UserQuota(user_id=u.id, core_seconds_limit=rng.randrange(10**6, 10**8)))
        s.commit()


def settings(root: str, db_url: str, period: str) -> UWS:
    c = Config()
    c.UWS.root_dir = root
    c.UWS.db_url = db_url
    c.UWS.default_disk_quota = 50 * 1024**3
    c.UWS.default_core_hours_quota = 10000.0
    c.UWS.core_hours_period = period
    return UWS(config=c)


def timed(fn, rounds: int = 3):
    times, result = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def run(db_url: str, users: int, label: str, rounds: int = 3) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    Session = make_sessionmaker(engine)
    t0 = time.perf_counter()
    fill(Session, users)
    print(
        f"{label}: {users} people, {users * 25 + users // 10} jobs ({time.perf_counter() - t0:.1f} s to fill)"
    )
    for period in ("all", "month"):
        qm = QuotaManager(settings(tempfile.gettempdir(), db_url, period))
        with Session() as s:
            people = s.scalars(select(User).order_by(User.name)).all()
            per_person, a = timed(
                lambda qm=qm, s=s, people=people: [qm.describe(s, u) for u in people], rounds
            )
            grouped, b = timed(lambda qm=qm, s=s: qm.describe_all(s), rounds)
        assert a == b, "the grouped answers differ from the per-person ones"
        print(
            f"  period {period:<5}  per person {per_person:7.3f} s   grouped {grouped:7.3f} s"
            f"   {per_person / grouped:5.1f}x faster (same answers for {len(b)} people)"
        )
    engine.dispose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=2000)
    p.add_argument(
        "--pg-url",
        help="also run on this PostgreSQL server (a URL able to create databases, e.g. "
        "`scripts/pg.sh url`)",
    )
    p.add_argument("--rounds", type=int, default=3, help="timings per figure (median)")
    p.add_argument("--quick", action="store_true", help="short form (tests): 50 people, 1 round")
    args = p.parse_args()
    if args.quick:
        args.users, args.rounds = 50, 1
    print(
        heading("P8", f"{args.users} people, per person against grouped, median of {args.rounds}")
    )
    with tempfile.TemporaryDirectory() as d:
        run(f"sqlite:///{d}/uws.sqlite", args.users, "SQLite", args.rounds)
    if args.pg_url:  # a fresh database on that server, dropped afterwards
        name = f"uws_bench_{secrets.token_hex(4)}"
        admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(args.pg_url).set(database=name).render_as_string(hide_password=False)
            run(url, args.users, "PostgreSQL", args.rounds)
        finally:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()

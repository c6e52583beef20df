"""GET /api/status/'s checks (uws_hub.service.health): UWS's keys, results kept for
c.UWS.status_cache_seconds and shared by callers during a round, a check that hangs answered
as not connected within c.UWS.status_check_timeout (and not started again while it hangs),
messages only for operators."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

from sqlalchemy import create_engine
from traitlets.config import Config

from uws_hub.config import UWS
from uws_hub.service import health
from uws_hub.service.health import HealthChecks


class Hub:
    """The hub's API as the service's HubClient answers it."""

    def __init__(self):
        self.calls = 0
        self.fail: Exception | None = None

    async def info(self) -> dict:
        self.calls += 1
        if self.fail:
            raise self.fail
        return {"version": "6.1.1"}


def make_checks(tmp_path, **uws) -> HealthChecks:
    c = Config()
    c.JupyterHub.authenticator_class = uws.pop("authenticator", "uws-local")
    root = tmp_path / "workspaces"
    root.mkdir(exist_ok=True)
    c.UWS.root_dir = str(root)
    c.UWS.resources = {"local": {"kind": "local", "name": "This server"}}
    for k, v in uws.items():
        setattr(c.UWS, k, v)
    settings = UWS(config=c)
    engine = create_engine(f"sqlite:///{tmp_path / 'uws.sqlite'}")
    return HealthChecks(SimpleNamespace(settings=settings, engine=engine, hub=Hub()))


def run(coro):
    return asyncio.run(coro)


def test_every_uws_key_with_connected_and_message(tmp_path):
    checks = make_checks(tmp_path)
    deps = run(checks.report())["dependencies"]
    assert set(deps) == {
        "database",
        "storage",
        "hub",
        "main_resource",
        "api_user_authentication",
        "resources",
        "storage_methods",
        "user_authentication_methods",
    }
    assert deps["database"] == {"connected": True, "message": "sqlite"}
    assert deps["hub"] == {"connected": True, "message": "JupyterHub 6.1.1"}
    assert deps["api_user_authentication"] == deps["hub"]  # client tokens: the hub checks them
    assert deps["main_resource"] == deps["resources"]["local"]
    assert (
        deps["resources"]["local"]["connected"] and "CPUs" in deps["resources"]["local"]["message"]
    )
    assert deps["storage_methods"] == {"main_storage": deps["storage"]}
    assert "bytes free" in deps["storage"]["message"]
    ((name, local),) = deps["user_authentication_methods"].items()
    assert name == "local" and local["connected"] and "accounts" in local["message"]
    assert health.not_connected(deps) == []
    assert list((tmp_path / "workspaces").iterdir()) == []  # the write probe leaves nothing


def test_main_resource_is_where_a_start_naming_none_runs(tmp_path):
    checks = make_checks(
        tmp_path,
        resources={
            "small": {"kind": "local", "name": "Small"},
            "big": {"kind": "local", "name": "Big"},
        },
        job_types={"lab": {"name": "Lab", "resources": ["big"]}},
        default_job_type="lab",
    )
    assert checks.main_resource() == "big"
    (tmp_path / "plain").mkdir()
    assert make_checks(tmp_path / "plain").main_resource() == "local"  # no default job type


def test_parts_that_are_down(tmp_path):
    checks = make_checks(tmp_path)
    (tmp_path / "workspaces").rmdir()
    checks.ctx.hub.fail = ConnectionRefusedError("hub gone")
    deps = run(checks.report())["dependencies"]
    assert deps["storage"]["connected"] is False
    assert "missing or not writable" in deps["storage"]["message"]
    assert deps["storage_methods"]["main_storage"]["connected"] is False
    assert deps["hub"] == {"connected": False, "message": "ConnectionRefusedError: hub gone"}
    assert deps["api_user_authentication"]["connected"] is False
    assert health.not_connected(deps) == ["storage", "hub"]


def test_results_are_kept_for_the_cache_time(tmp_path):
    checks = make_checks(tmp_path, status_cache_seconds=0.5)

    async def main():
        first = await checks.report()
        second = await checks.report()
        assert second is first and checks.rounds == 1 and checks.ctx.hub.calls == 1
        await asyncio.sleep(0.6)
        third = await checks.report()
        assert checks.rounds == 2 and third["checked_at"] >= first["checked_at"]

    run(main())


def test_callers_during_a_round_share_it(tmp_path):
    checks = make_checks(tmp_path, status_cache_seconds=0)

    async def main():
        reports = await asyncio.gather(*(checks.report() for _ in range(5)))
        assert all(r is reports[0] for r in reports)
        assert checks.rounds == 1 and checks.ctx.hub.calls == 1
        await checks.report()  # no cache: a new round
        assert checks.rounds == 2

    run(main())


def test_a_hanging_check_is_down_within_the_timeout_and_not_piled_up(tmp_path):
    checks = make_checks(tmp_path, status_cache_seconds=0, status_check_timeout=0.3)
    release = threading.Event()
    started = []

    def hangs() -> dict:
        started.append(1)
        release.wait(10)
        return health.ok("late")

    checks._storage = hangs  # a file system that does not answer

    async def main():
        t0 = time.monotonic()
        deps = (await checks.report())["dependencies"]
        assert time.monotonic() - t0 < 2
        assert deps["storage"] == {"connected": False, "message": "no answer within 0.3 s"}
        assert deps["database"]["connected"]  # the others answered meanwhile
        deps = (await checks.report())["dependencies"]
        assert "has not finished yet" in deps["storage"]["message"]
        assert len(started) == 1  # no second thread while the first hangs
        release.set()
        await asyncio.sleep(0.1)
        deps = (await checks.report())["dependencies"]
        assert deps["storage"] == {"connected": True, "message": "late"}

    run(main())


def test_strangers_get_the_booleans_only(tmp_path):
    checks = make_checks(tmp_path)
    (tmp_path / "workspaces").rmdir()
    deps = run(checks.report())["dependencies"]
    shown = health.redacted(deps)
    assert shown["storage"] == {"connected": False, "message": ""}
    assert shown["database"] == {"connected": True, "message": ""}
    assert shown["resources"] == {"local": {"connected": True, "message": ""}}
    assert shown["user_authentication_methods"] == {"local": {"connected": True, "message": ""}}
    assert str(tmp_path) not in repr(shown)
    assert deps["storage"]["message"]  # the operators' report is left as it was


def test_dev_login_has_nothing_outside_to_check(tmp_path):
    deps = run(make_checks(tmp_path, authenticator="uws-dev").report())["dependencies"]
    assert deps["user_authentication_methods"] == {
        "dev": {"connected": True, "message": "development login: no outside service"}
    }


class BrokenLogin:
    """An authenticator whose settings are wrong: it raises when it is built."""

    def __init__(self, **kwargs):
        raise ValueError("BrokenLogin.server must be set")


def test_an_authenticator_that_does_not_load_is_down(tmp_path):
    checks = make_checks(tmp_path, authenticator=BrokenLogin)
    methods = run(checks.report())["dependencies"]["user_authentication_methods"]
    assert methods == {
        "authenticator": {
            "connected": False,
            "message": "the hub's authenticator did not load: ValueError: BrokenLogin.server must be set",
        }
    }


def test_an_ldap_server_that_does_not_answer_is_down(tmp_path):
    """Port 1 of the loopback address: nothing listens there (refused at once)."""
    checks = make_checks(tmp_path, authenticator="uws-ldap", status_check_timeout=2)
    ldap = checks.settings.config.UWSLDAPAuthenticator
    ldap.server_address, ldap.server_port, ldap.tls_strategy = "127.0.0.1", 1, "insecure"
    ldap.bind_dn_template = ["uid={username},dc=x"]
    methods = run(checks.report())["dependencies"]["user_authentication_methods"]
    assert methods["ldap"]["connected"] is False
    assert methods["ldap"]["message"].startswith("ldap://127.0.0.1:1: LDAPSocketOpenError")

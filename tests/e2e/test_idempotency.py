"""The idempotency-key store on a real database: begin, answer, replay, conflict, take-over."""

from __future__ import annotations

import datetime as dt

import pytest

from uws_hub import audit, idempotency
from uws_hub.db import migrate
from uws_hub.db.models import IdempotencyKey
from uws_hub.db.session import make_engine, make_sessionmaker
from uws_hub.errors import UWSError


@pytest.fixture
def store(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/uws.sqlite")
    migrate.upgrade(engine)
    yield idempotency.IdempotencyStore(make_sessionmaker(engine), window_hours=1)
    engine.dispose()


def test_begin_answer_replay(store):
    row = store.begin("user:a", "POST /workspaces/", "k1", "h1")
    assert isinstance(row, int)
    with pytest.raises(UWSError) as e:  # the same request while the first runs
        store.begin("user:a", "POST /workspaces/", "k1", "h1")
    assert e.value.status_code == 409 and e.value.headers == {"Retry-After": "1"}
    store.finish(row, 200, "application/json", b'{"ok": 1}')
    replay = store.begin("user:a", "POST /workspaces/", "k1", "h1")
    assert replay == idempotency.Replay(200, "application/json", b'{"ok": 1}')
    with pytest.raises(UWSError) as e:  # another request with the key
        store.begin("user:a", "POST /workspaces/", "k1", "h2")
    assert e.value.status_code == 422
    # other people, other routes: other keys
    assert isinstance(store.begin("user:b", "POST /workspaces/", "k1", "h2"), int)
    assert isinstance(store.begin("user:a", "POST /shared_workspaces/", "k1", "h2"), int)


def test_server_errors_keep_no_answer(store):
    row = store.begin("user:a", "POST /workspaces/", "k", "h")
    store.finish(row, 500, "application/json", b"{}")
    assert isinstance(store.begin("user:a", "POST /workspaces/", "k", "h"), int)


def test_a_dead_process_row_is_taken_over(store, monkeypatch):
    row = store.begin("user:a", "POST /workspaces/", "k", "h")
    monkeypatch.setattr(idempotency, "BOOT", "a-new-process")  # the service restarted
    assert store.begin("user:a", "POST /workspaces/", "k", "h") == idempotency.Takeover(row, [])
    with pytest.raises(UWSError) as e:  # now it runs in this process
        store.begin("user:a", "POST /workspaces/", "k", "h")
    assert e.value.status_code == 409


def test_window_passes_and_prune(store):
    row = store.begin("user:a", "POST /workspaces/", "k", "h")
    store.finish(row, 200, None, b"first")
    with store.db() as s:
        s.get(IdempotencyKey, row).expires = idempotency.utcnow() - dt.timedelta(seconds=1)
        s.commit()
    new = store.begin("user:a", "POST /workspaces/", "k", "h2")  # a new call
    assert isinstance(new, int)
    with store.db() as s:
        got = s.get(IdempotencyKey, new)
        assert (got.request_hash, got.status, got.body) == ("h2", None, None)
    with store.db() as s:
        s.get(IdempotencyKey, new).expires = idempotency.utcnow() - dt.timedelta(seconds=1)
        s.commit()
    assert store.prune() == 1
    assert store.prune() == 0


@pytest.mark.parametrize("bad", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_keys_are_checked(store, bad):
    with pytest.raises(UWSError) as e:
        store.begin("user:a", "POST /workspaces/", bad, "h")
    assert e.value.status_code == 400


def test_a_cut_short_call_is_answered_from_what_it_changed(store, monkeypatch):
    row = store.begin("user:a", "POST /workspaces/", "k", "h")
    with store.db() as session:
        idempotency.track(session, row)
        audit.record(session, "workspace.create", user="a", target_type="workspace", target_id=7)
        session.commit()  # the change and its record: one transaction
        # a later transaction of the same call adds to it
        audit.record(session, "workspace.update", user="a", target_type="workspace", target_id=7)
        session.commit()
    monkeypatch.setattr(idempotency, "BOOT", "after-a-crash")
    taken = store.begin("user:a", "POST /workspaces/", "k", "h")
    assert taken == idempotency.Takeover(
        row,
        [
            {"action": "workspace.create", "target_type": "workspace", "target_id": "7"},
            {"action": "workspace.update", "target_type": "workspace", "target_id": "7"},
        ],
    )


def test_a_rolled_back_change_is_no_effect(store, monkeypatch):
    row = store.begin("user:a", "POST /workspaces/", "k", "h")
    with store.db() as session:
        idempotency.track(session, row)
        audit.record(session, "workspace.create", user="a", target_type="workspace", target_id=8)
        session.flush()
        session.rollback()
    monkeypatch.setattr(idempotency, "BOOT", "after-a-crash")
    assert store.begin("user:a", "POST /workspaces/", "k", "h") == idempotency.Takeover(row, [])
    with store.db() as session:  # and a later commit of the same call does not bring it back
        idempotency.track(session, row)
        audit.record(session, "workspace.create", user="a", target_type="workspace", target_id=9)
        session.flush()
        session.rollback()
        audit.record(session, "workspace.update", user="a", target_type="workspace", target_id=3)
        session.commit()
    monkeypatch.setattr(idempotency, "BOOT", "after-another-crash")
    taken = store.begin("user:a", "POST /workspaces/", "k", "h")
    assert [e["target_id"] for e in taken.effect] == ["3"]

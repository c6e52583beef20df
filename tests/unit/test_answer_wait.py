"""The spawners' wait for a job's server to answer (UWSJobMixin.wait_until_answering), against
real sockets: the port is tried with TCP connects, the server counts as up only once its /api
answers over HTTP, and a job that dies meanwhile fails the start at once."""

from __future__ import annotations

import asyncio
import socket
import time
from types import SimpleNamespace

import pytest
from jupyterhub.spawner import SpawnException

from uws_hub.spawners.mixin import UWSJobMixin, _takes_connections


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Job(SimpleNamespace):
    """What wait_until_answering uses of a spawner; counts its liveness checks."""

    def __init__(self, alive_until: float = float("inf")) -> None:
        super().__init__(
            server=SimpleNamespace(base_url="/user/x/job-1/"),
            http_timeout=10,
            answer_check_interval=0.025,
            job_alive_interval=0.2,
            alive_checks=0,
        )
        self._dies_at = time.monotonic() + alive_until

    async def job_alive(self):
        self.alive_checks += 1
        if time.monotonic() >= self._dies_at:
            return False, "Slurm job 7 is FAILED"
        return True, ""

    async def log_tail(self):
        return "the server's last words"

    async def wait(self, url: str) -> None:
        await UWSJobMixin.wait_until_answering(self, url)


async def http_server(port: int, answer_after: float) -> asyncio.Server:
    """Listens at once; answers each request `answer_after` seconds after it came (a
    server that has bound its port but is still starting)."""

    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(answer_after)
        body = b'{"version": "2"}'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)


def test_a_listening_port_is_not_yet_a_server_that_answers():
    asyncio.run(_listening_not_answering())


async def _listening_not_answering():
    port = free_port()
    server = await http_server(port, answer_after=0.5)
    try:
        assert await _takes_connections("127.0.0.1", port)
        t0 = time.monotonic()
        await Job().wait(f"http://127.0.0.1:{port}")
        assert 0.5 <= time.monotonic() - t0 < 2
    finally:
        server.close()


def test_a_server_is_seen_within_moments_of_listening():
    """The port is tried every answer_check_interval: a server that begins to listen 0.4 s
    into the wait is seen well within the hub's old 0.1-s HTTP polling step."""
    asyncio.run(_seen_within_moments())


async def _seen_within_moments():
    port = free_port()
    assert not await _takes_connections("127.0.0.1", port)
    job = Job()
    waiter = asyncio.ensure_future(job.wait(f"http://127.0.0.1:{port}"))
    await asyncio.sleep(0.4)
    server = await http_server(port, answer_after=0)
    up = time.monotonic()
    try:
        await asyncio.wait_for(waiter, 5)
        assert time.monotonic() - up < 0.08
        # whether the job lives was asked every job_alive_interval, not at every try
        assert 2 <= job.alive_checks <= 4
    finally:
        server.close()


def test_a_job_that_dies_before_answering_fails_at_once():
    asyncio.run(_dies_before_answering())


async def _dies_before_answering():
    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(SpawnException) as err:
        await Job(alive_until=0.3).wait(f"http://127.0.0.1:{port}")
    assert time.monotonic() - t0 < 0.3 + 0.2 + 0.1  # the next liveness check
    assert "The server stopped before answering: Slurm job 7 is FAILED" in str(err.value)
    assert "the server's last words" in str(err.value)

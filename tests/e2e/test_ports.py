"""Ports for servers we start (job servers, test hubs): below the ephemeral range, never taken."""

from __future__ import annotations

import socket

import pytest

from uws_hub import job_wrapper


def ephemeral_low() -> int:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        return int(f.read().split()[0])


def test_ports_are_free_and_below_the_ephemeral_range():
    low = ephemeral_low()
    for _ in range(50):
        port = job_wrapper.free_port("127.0.0.1")
        assert port < low
        with socket.socket() as s:  # and a server can listen on it
            s.bind(("127.0.0.1", port))
            s.listen()


def two_free_neighbours() -> int:
    for _ in range(100):
        port = job_wrapper.free_port("127.0.0.1")
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    pytest.skip("no two neighbouring free ports")


def test_ports_in_use_are_skipped(monkeypatch):
    port = two_free_neighbours()
    monkeypatch.setattr(job_wrapper, "_candidate_ports", lambda: range(port, port + 2))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert {job_wrapper.free_port("127.0.0.1") for _ in range(20)} == {port + 1}
        assert job_wrapper.free_ports(1, "127.0.0.1") == [port + 1]
        # nothing left below the range: the kernel's choice rather than failing
        with socket.socket() as other:
            other.bind(("127.0.0.1", port + 1))
            other.listen()
            fallback = job_wrapper.free_port("127.0.0.1")
            assert fallback not in (port, port + 1)
            assert fallback >= ephemeral_low()


def test_several_ports_when_few_are_free(monkeypatch):
    """Asking for as many ports as there are free candidates: each of them once (then the
    kernel's choice), never a wait for a port that is already taken."""
    port = two_free_neighbours()
    monkeypatch.setattr(job_wrapper, "_candidate_ports", lambda: range(port, port + 2))
    ports = job_wrapper.free_ports(3, "127.0.0.1")
    assert len(set(ports)) == 3
    assert {port, port + 1} <= set(ports)
    assert [p for p in ports if p not in (port, port + 1)][0] >= ephemeral_low()

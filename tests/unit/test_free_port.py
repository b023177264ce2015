"""Ports for the dev stack's servers and the services the tests start."""

from __future__ import annotations

import random
import socket

import pytest

from tooling.devstack import FREE_PORTS_VARIABLE, _ephemeral_floor, free_port


def test_a_free_port_lies_below_the_ephemeral_range_and_can_be_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(FREE_PORTS_VARIABLE, raising=False)
    floor = _ephemeral_floor()
    for _ in range(50):
        port = free_port()
        assert 10_000 <= port < floor  # outgoing connections never take it
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))


def test_seeding_the_global_generator_does_not_repeat_the_ports() -> None:
    random.seed(0)
    first = [free_port() for _ in range(5)]
    random.seed(0)
    assert [free_port() for _ in range(5)] != first


def test_a_worker_picks_only_from_its_own_part_of_the_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(FREE_PORTS_VARIABLE, "12000-12100")
    assert all(12_000 <= free_port() < 12_100 for _ in range(50))


def test_without_a_part_the_whole_range_below_the_ephemeral_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(FREE_PORTS_VARIABLE, raising=False)
    ports = {free_port() for _ in range(50)}
    assert all(10_000 <= port < _ephemeral_floor() for port in ports)
    assert max(ports) - min(ports) > 1_000  # spread, not one worker's part


def test_a_port_handed_out_but_not_yet_bound_is_not_handed_out_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A service binds its port seconds after it was picked; meanwhile nobody else gets it."""
    monkeypatch.setenv(FREE_PORTS_VARIABLE, "13000-13020")
    picked = [free_port() for _ in range(10)]
    assert len(set(picked)) == 10

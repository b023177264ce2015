"""Ports for the dev stack's servers and the services the tests start."""

from __future__ import annotations

import random
import socket

from tooling.devstack import _ephemeral_floor, free_port


def test_a_free_port_lies_below_the_ephemeral_range_and_can_be_bound() -> None:
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

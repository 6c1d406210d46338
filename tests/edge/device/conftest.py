"""Fixtures of the device tests: a stand-in for systemd's notify socket."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest


class FakeSystemd:
    """A bound ``AF_UNIX``/``SOCK_DGRAM`` socket: what systemd listens on for ``NOTIFY_SOCKET``."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)

    def receive(self, timeout: float = 5.0) -> dict[str, str] | None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096).decode()
        except TimeoutError:
            return None
        return dict(line.split("=", 1) for line in data.splitlines())

    def until(self, key: str, timeout: float = 10.0) -> list[dict[str, str]]:
        """Messages up to and including the first one carrying ``key``."""
        seen = []
        while True:
            m = self.receive(timeout)
            assert m is not None, f"no {key} within {timeout} s; got {seen}"
            seen.append(m)
            if key in m:
                return seen

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def abstract_systemd() -> Iterator[tuple[FakeSystemd, dict[str, str]]]:
    name = f"stainless-test-{uuid.uuid4().hex}"
    fake = FakeSystemd("\0" + name)
    try:
        yield fake, {"NOTIFY_SOCKET": "@" + name}
    finally:
        fake.close()

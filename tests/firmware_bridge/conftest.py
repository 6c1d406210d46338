"""Fixtures of the firmware_bridge tests: emulators served on real ptys / TCP ports, clients on them.

Every fixture closes what it opened (threads are checked by the autouse fixture of tests/conftest.py).
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Iterator

import pytest

from firmware_bridge.client import IlluminateLedArray
from firmware_bridge.emulator import Emulator, EmulatorServer
from firmware_bridge.link import LinkConfig
from firmware_bridge.rigs import get_profile

#: Short timeouts keep fault tests fast; still far above the ~0.2 ms round trip of the emulator.
FAST = LinkConfig(timeout_s=0.5, drain_quiet_s=0.02, drain_max_s=0.3, backoff_initial_s=0.02,
                  backoff_max_s=0.1, reconnect_attempts=3)


@pytest.fixture
def thesis() -> Emulator:
    """The default emulator: the illuminate v2.32 parser."""
    return Emulator(get_profile("thesis-43"))


@pytest.fixture
def strict() -> Emulator:
    """A controller that range-checks everything (``quirks=False``)."""
    return Emulator(get_profile("thesis-43"), quirks=False)


@pytest.fixture(params=["pty", "tcp"])
def served(request: pytest.FixtureRequest, thesis: Emulator) -> Iterator[EmulatorServer]:
    server = thesis.serve_pty() if request.param == "pty" else thesis.serve_tcp()
    yield server
    server.close()


@pytest.fixture
def array(served: EmulatorServer) -> Iterator[IlluminateLedArray]:
    arr = IlluminateLedArray(served.url, config=FAST, emulator=served.emulator)
    yield arr
    arr.close()


@pytest.fixture
def pty_server(thesis: Emulator) -> Iterator[EmulatorServer]:
    server = thesis.serve_pty()
    yield server
    server.close()


@pytest.fixture
def raw_fd(pty_server: EmulatorServer) -> Iterator[int]:
    """The slave side of a v2.32 emulator's pty, opened raw (no client, no link)."""
    fd = os.open(pty_server.url, os.O_RDWR | os.O_NOCTTY)
    read_until(fd, b"type ? \n" + b"=" * 100 + b"\n", 2.0)  # the boot banner
    yield fd
    os.close(fd)


def read_until(fd: int, marker: bytes, timeout: float, count: int = 1) -> bytes:
    """Read from ``fd`` until ``marker`` arrived ``count`` times or ``timeout`` s pass (returns what came)."""
    got = b""
    deadline = time.monotonic() + timeout
    while got.count(marker) < count:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        got += os.read(fd, 4096)
    return got

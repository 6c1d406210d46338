"""Fixtures of the device tests: a stand-in for systemd's notify socket, fields of the virtual bench."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest

from edge.bench.camera import SimCamera
from edge.device.acquisition import Acquirer
from edge.device.config import AcquisitionConfig, VirtualBenchConfig
from edge.device.stack import FieldRequest, Stack
from firmware_bridge.client import open_led_array
from firmware_bridge.recipes import resolve_recipe


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


@pytest.fixture(scope="session")
def bench_fields() -> Iterator[list[Stack]]:
    """Eight fields of the virtual bench as `bench/edge_pipeline.py` captures them (thesis-43, 256², 600 WBC/mm²)."""
    with open_led_array("sim://thesis-43") as led:
        cam = SimCamera(led.emulator, VirtualBenchConfig(field_size_px=(256, 256), seed=1, wbc_per_mm2=600.0))  # type: ignore[arg-type]
        try:
            acq = Acquirer(led, cam, resolve_recipe("full-nohe", led.geometry()), AcquisitionConfig(mode="host"))
            yield [acq.capture(FieldRequest("bench", i, (0.0, 0.0))) for i in range(8)]
        finally:
            cam.close()

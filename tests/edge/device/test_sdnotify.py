"""systemd's notify protocol against a real unix datagram socket standing in for systemd."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from edge.device.sdnotify import Heartbeat, Notifier, watchdog_seconds
from tests.edge.device.conftest import FakeSystemd


def test_messages_reach_a_socket_path() -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as d:  # a unix socket path must stay under 108 bytes
        path = str(Path(d) / "notify")
        fake = FakeSystemd(path)
        notifier = Notifier({"NOTIFY_SOCKET": path})
        try:
            assert notifier.enabled and notifier.ready(status="idle: 0 cells\nsent")
            assert fake.receive() == {"READY": "1", "STATUS": "idle: 0 cells sent"}  # one line per value
            assert notifier.status("scanning") and fake.receive() == {"STATUS": "scanning"}
            assert notifier.stopping() and fake.receive() == {"STOPPING": "1"}
        finally:
            notifier.close()
            fake.close()


def test_abstract_namespace(abstract_systemd: tuple[FakeSystemd, dict[str, str]]) -> None:
    fake, env = abstract_systemd
    notifier = Notifier(env)
    try:
        assert notifier.send(watchdog=1) and fake.receive() == {"WATCHDOG": "1"}
    finally:
        notifier.close()


def test_outside_systemd_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and not notifier.ready() and notifier.watchdog_s == 0
    beat = Heartbeat(notifier)
    beat()
    assert not beat.enabled and beat.beats == 0


def test_a_vanished_systemd_does_not_stop_the_daemon() -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        notifier = Notifier({"NOTIFY_SOCKET": str(Path(d) / "gone")})
        try:
            assert notifier.enabled and not notifier.ready()
        finally:
            notifier.close()


def test_watchdog_interval_from_the_environment() -> None:
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 30.0
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) == 0.0  # meant for another process
    assert watchdog_seconds({"WATCHDOG_USEC": "x"}) == watchdog_seconds({}) == 0.0


def test_heartbeat_is_rate_limited(abstract_systemd: tuple[FakeSystemd, dict[str, str]]) -> None:
    fake, env = abstract_systemd
    notifier = Notifier({**env, "WATCHDOG_USEC": "60000000"})
    try:
        beat = Heartbeat(notifier)
        assert beat.interval_s == 30.0
        beat()
        beat()
        assert beat.beats == 1 and fake.receive() == {"WATCHDOG": "1"}
    finally:
        notifier.close()

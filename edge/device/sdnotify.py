"""systemd's notify protocol, spoken directly (no dependency): readiness, status, watchdog, stopping.

With ``Type=notify`` systemd passes ``NOTIFY_SOCKET`` (a unix datagram socket path, or ``@name`` in
the abstract namespace); every message is one datagram of ``KEY=VALUE`` lines (``READY=1``,
``STATUS=...``, ``WATCHDOG=1``, ``STOPPING=1``). With ``WatchdogSec=`` it also passes
``WATCHDOG_USEC`` (and ``WATCHDOG_PID``: the heartbeat counts only from that process) and kills
the service when no ``WATCHDOG=1`` arrives within that time. Outside systemd ``NOTIFY_SOCKET`` is
unset and every call here does nothing.

:class:`Heartbeat` beats at most every half watchdog interval, called from the daemon's
acquisition loop (also while it idles) and only while no stage failed: a hung or dead loop stops
the heartbeat and systemd restarts the daemon.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends notify messages to ``NOTIFY_SOCKET`` of ``environ`` (``os.environ`` by default)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + path[1:] if path.startswith("@") else path
        self.watchdog_s = watchdog_seconds(env)
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, **fields: str | int) -> bool:
        """One datagram ``KEY=VALUE\\n...`` (``ready=1`` → ``READY=1``); False when not sent."""
        if self._sock is None:
            return False
        msg = "".join(f"{k.upper()}={_one_line(str(v))}\n" for k, v in fields.items()).encode()
        try:
            with self._lock:
                self._sock.sendto(msg, self.address)
            return True
        except OSError as exc:  # systemd gone or the socket unreachable: the daemon goes on
            log.warning("sd_notify to %r failed: %s", self.address.replace("\0", "@"), exc)
            return False

    def ready(self, status: str = "") -> bool:
        return self.send(ready=1, **({"status": status} if status else {}))

    def status(self, text: str) -> bool:
        return self.send(status=text)

    def stopping(self, status: str = "") -> bool:
        return self.send(stopping=1, **({"status": status} if status else {}))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_seconds(environ: Mapping[str, str]) -> float:
    """The watchdog interval (s) systemd asks of this process, 0 when none (or meant for another PID)."""
    usec, pid = environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return 0.0
    return int(usec) / 1e6


def _one_line(text: str) -> str:
    return " ".join(text.split())


class Heartbeat:
    """``WATCHDOG=1`` at most every ``interval_s`` (default: half of systemd's ``WATCHDOG_USEC``).

    Called from the loop being watched (the daemon's acquisition loop, also while idle), so the
    beats stop when that loop hangs or ends — and the pipeline stops calling it once a stage failed.
    """

    def __init__(self, notifier: Notifier, interval_s: float | None = None) -> None:
        self.notifier = notifier
        self.interval_s = interval_s if interval_s is not None else notifier.watchdog_s / 2
        self.beats = 0
        self._last = -float("inf")

    @property
    def enabled(self) -> bool:
        return self.notifier.enabled and self.interval_s > 0

    def __call__(self) -> None:
        now = time.monotonic()
        if self.enabled and now - self._last >= self.interval_s:
            self._last = now
            if self.notifier.send(watchdog=1):
                self.beats += 1

"""The serial link: one reader thread owns the port, one command is in flight at a time.

* Every command goes out in a single locked ``write()`` (the firmware drops a line that arrives
  in pieces) and the next one is not sent before the reply (scan and sequence commands flush the
  device's input, so a pipelined command would be lost).
* Every request has a timeout; :class:`~firmware_bridge.errors.DeviceTimeout` names the command
  and the port. A reply that arrives after its timeout is recognised and discarded, it is never
  handed to the next command.
* Garbage bytes and unsolicited lines (a boot banner after a reset) are logged and counted; they
  never leave the link stuck.
* A vanished port raises :class:`~firmware_bridge.errors.DeviceVanished` for the command in
  flight (it is reported, never silently retried: it may have executed). The next request
  reopens the port with bounded exponential backoff, drains the boot banner and runs the
  ``on_connect`` hook, which re-applies the client's settings.
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import serial

from firmware_bridge.codec import Garbage, Reply, ReplyDecoder
from firmware_bridge.errors import DeviceTimeout, DeviceVanished, FirmwareError, LinkError

log = logging.getLogger(__name__)

Send = Callable[[bytes], Reply]
OnConnect = Callable[[Send, str], None]


@dataclass(frozen=True)
class LinkConfig:
    """Timing of the link (seconds) and the serial settings."""

    timeout_s: float = 2.0
    baudrate: int = 115200
    reconnect_attempts: int = 6
    backoff_initial_s: float = 0.05
    backoff_max_s: float = 1.0
    drain_quiet_s: float = 0.05
    drain_max_s: float = 1.0
    poll_s: float = 0.05

    def __post_init__(self) -> None:
        for name in ("timeout_s", "backoff_initial_s", "backoff_max_s", "drain_quiet_s", "drain_max_s", "poll_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"LinkConfig.{name} = {getattr(self, name)!r}; expected a positive number (s)")
        if self.reconnect_attempts < 1:
            raise ValueError(f"LinkConfig.reconnect_attempts = {self.reconnect_attempts}; expected >= 1")


def _open_port(url: str, cfg: LinkConfig) -> serial.SerialBase:
    kwargs: dict[str, object] = {"baudrate": cfg.baudrate, "timeout": cfg.poll_s, "write_timeout": cfg.timeout_s}
    if "://" not in url:
        kwargs["exclusive"] = True  # a second user of a serial device would corrupt both sessions
    return serial.serial_for_url(url, **kwargs)


class Link:
    """Request/response over a port given by URL (device path, ``socket://host:port``, pyserial URLs)."""

    def __init__(self, url: str, config: LinkConfig | None = None, on_connect: OnConnect | None = None) -> None:
        self.url = url
        self.config = config or LinkConfig()
        self.on_connect = on_connect
        self.garbage: deque[Garbage] = deque(maxlen=100)
        self.unsolicited: deque[str] = deque(maxlen=200)
        self.reconnects = 0
        self.banner = ""
        self._io_lock = threading.Lock()
        self._cond = threading.Condition()
        self._decoder = ReplyDecoder()
        self._replies: deque[Reply] = deque()
        self._in_flight = False
        self._stale = 0
        self._failure: BaseException | None = None
        self._rebooted = False
        self._port: serial.SerialBase | None = None
        self._reader: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = threading.Event()

    # -- public -----------------------------------------------------------------------------
    def open(self) -> None:
        """Open the port (one attempt), drain the banner and run ``on_connect``."""
        with self._io_lock:
            self._connect()

    def request(self, line: bytes, timeout: float | None = None) -> Reply:
        """Send one command line and return its reply; raises on ``ERROR[n]``, timeout, vanishing."""
        with self._io_lock:
            if self._closed.is_set():
                raise LinkError(f"link to {self.url} is closed; open a new one")
            if self._port is None or self._failure is not None:
                self._reconnect()
            elif self._rebooted:
                log.warning("%s rebooted (banner seen); re-applying settings", self.url)
                self._rebooted = False
                self._run_on_connect()
            return self._request_locked(line, timeout)

    def close(self) -> None:
        """Close the port and join the reader thread. Idempotent."""
        self._closed.set()
        with self._io_lock:
            self._teardown()

    @property
    def connected(self) -> bool:
        return self._port is not None and self._failure is None

    # -- connection ---------------------------------------------------------------------------
    def _connect(self) -> None:
        try:
            port = _open_port(self.url, self.config)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkError(
                f"cannot open {self.url}: {exc}. Check the path (ls /dev/ttyACM* /dev/ttyUSB*), "
                "permissions (dialout group) and that no other program holds the port"
            ) from exc
        self._port = port
        try:
            self.banner = self._drain(port)
        except (serial.SerialException, OSError) as exc:
            self._teardown()
            raise LinkError(f"{self.url} failed while draining its boot output: {exc}") from exc
        with self._cond:
            self._decoder.reset()
            self._replies.clear()
            self._failure, self._stale, self._rebooted = None, 0, False
        self._stop.clear()
        self._reader = threading.Thread(target=self._read_loop, args=(port,), name="led-link-reader", daemon=True)
        self._reader.start()
        try:
            self._run_on_connect()
        except BaseException:
            self._teardown()
            raise

    def _run_on_connect(self) -> None:
        if self.on_connect is not None:
            self.on_connect(self._request_locked, self.banner)

    def _drain(self, port: serial.SerialBase) -> str:
        """Read and keep whatever the device says unprompted (boot banner) until it is quiet."""
        got = bytearray()
        deadline = time.monotonic() + self.config.drain_max_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            chunk = port.read(port.in_waiting or 1)
            if chunk:
                got += chunk
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= self.config.drain_quiet_s:
                break
        text = got.decode("ascii", "replace")
        if text.strip():
            log.info("drained %d bytes on connect to %s: %r", len(got), self.url, text[:120])
        return text

    def _reconnect(self) -> None:
        self._teardown()
        cfg = self.config
        delay, last = cfg.backoff_initial_s, None
        for attempt in range(1, cfg.reconnect_attempts + 1):
            try:
                self._connect()
                self.reconnects += 1
                log.warning("reconnected to %s (attempt %d)", self.url, attempt)
                return
            except LinkError as exc:
                last = exc
                self._teardown()
            if self._closed.wait(delay):
                break
            delay = min(delay * 2, cfg.backoff_max_s)
        raise LinkError(
            f"{self.url} is gone and did not come back after {cfg.reconnect_attempts} attempts "
            f"(backoff up to {cfg.backoff_max_s} s): {last}. Plug the controller back in or power-cycle it"
        ) from last

    def _teardown(self) -> None:
        self._stop.set()
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(Exception):
                port.cancel_read()
        if self._reader is not None:
            self._reader.join(timeout=5.0)
            self._reader = None
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()

    # -- request ------------------------------------------------------------------------------
    def _request_locked(self, line: bytes, timeout: float | None = None) -> Reply:
        cmd = line.decode("ascii", "replace").strip()
        timeout = self.config.timeout_s if timeout is None else timeout
        port = self._port
        if port is None:
            raise LinkError(f"{self.url} is not open; cannot send {cmd!r}")
        self._settle_stale(timeout)
        with self._cond:
            self._replies.clear()
            self._in_flight = True
            failure = self._failure
        try:
            if failure is None:
                try:
                    port.write(line)  # one write per command: the firmware drops split lines
                except (serial.SerialException, OSError) as exc:
                    failure = exc
            with self._cond:
                if failure is None:
                    self._cond.wait_for(lambda: bool(self._replies) or self._failure is not None, timeout)
                reply = self._replies.popleft() if self._replies else None
                failure = failure or self._failure
                received = ""
                if reply is None and failure is None:
                    self._stale += 1
                    received = "\n".join(self._decoder.take_pending())
                elif reply is None:
                    self._failure = failure
        finally:
            with self._cond:
                self._in_flight = False
        if reply is None and failure is not None:
            raise DeviceVanished(
                f"{self.url} vanished during {cmd!r} ({failure}); the command may or may not have run. "
                "The next request reconnects and re-applies the settings"
            ) from failure
        if reply is None:
            raise DeviceTimeout(cmd, self.url, timeout, received)
        if reply.error is not None:
            raise FirmwareError(reply.error[0], reply.error[1], cmd, self.url)
        if reply.text_error is not None:
            raise FirmwareError(0, reply.text_error, cmd, self.url)
        return reply

    def _settle_stale(self, timeout: float) -> None:
        """Before sending, let a reply that timed out earlier arrive (and be discarded)."""
        with self._cond:
            if self._stale and not self._cond.wait_for(lambda: self._stale == 0 or self._failure is not None,
                                                       timeout):
                log.warning("%d late repl(ies) from %s never came; resynchronising", self._stale, self.url)
                self._stale = 0
                self._decoder.reset()

    # -- reader thread ------------------------------------------------------------------------
    def _read_loop(self, port: serial.SerialBase) -> None:
        while not self._stop.is_set():
            try:
                data = _read_burst(port)
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                if not self._stop.is_set():
                    log.warning("%s: read failed (%s); link marked down", self.url, exc)
                    with self._cond:
                        self._failure = exc
                        self._cond.notify_all()
                return
            if data:
                self._on_bytes(data)

    def _on_bytes(self, data: bytes) -> None:
        with self._cond:
            for ev in self._decoder.feed(data):
                if isinstance(ev, Garbage):
                    self.garbage.append(ev)
                    log.warning("%s: garbage from device (%s): %r", self.url, ev.reason, ev.data[:40])
                elif self._stale:
                    self._stale -= 1
                    log.warning("%s: discarded a late reply %r", self.url, ev.lines[:2])
                elif self._in_flight:
                    self._replies.append(ev)
                    if _has_banner(ev.lines):  # a reboot raced with this command
                        self._rebooted = True
                else:
                    self._note_unsolicited([*ev.lines, f"<reply {ev.error or 'ok'}>"])
            if not self._in_flight and not self._stale:
                pending = self._decoder.take_pending()
                if pending:
                    self._note_unsolicited(pending)
            self._cond.notify_all()

    def _note_unsolicited(self, lines: list[str]) -> None:
        self.unsolicited.extend(lines)
        log.warning("%s: unsolicited output %r", self.url, lines[:3])
        if _has_banner(lines):
            self._rebooted = True

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _has_banner(lines: Iterable[str]) -> bool:
    """True when lines contain the firmware's boot/about banner (the device has reset)."""
    return any("Illuminate r" in ln or "LED Array Controller" in ln for ln in lines)


def _read_burst(port: serial.SerialBase) -> bytes:
    """Wait up to the port timeout for a byte, then take everything that is already there.

    pyserial's ``socket://`` reports ``in_waiting`` as 0/1 only and its ``read(n)`` waits for all
    ``n`` bytes, so a burst on a socket is fetched from the socket itself, without waiting.
    """
    first = port.read(1)
    if not first:
        return b""
    sock = getattr(port, "_socket", None)
    if sock is not None:
        chunks = [first]
        while select.select([sock], [], [], 0)[0]:
            chunk = sock.recv(65536)
            if not chunk:
                raise serial.SerialException("socket disconnected")
            chunks.append(chunk)
        return b"".join(chunks)
    n = port.in_waiting
    return first + port.read(n) if n else first

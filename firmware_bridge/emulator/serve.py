"""Serve an emulated controller over a real pseudo-terminal or TCP: the emulator's only I/O.

One thread per server owns the transport: it reads bytes, splits lines at ``\\n`` or ``\\r`` (as
the firmware does), runs each through the device's ``handle_line`` and writes the reply. The
server needs only the :class:`ServedDevice` protocol (an :class:`~firmware_bridge.emulator.Emulator`
is one); it knows nothing of the commands but the names in :data:`FLUSHING_COMMANDS`. While a
sequence runs, the same thread answers the sequence's "has input arrived?" question, which is how
the firmware notices an interruption.

With ``emulator.quirks`` (the default) the server also reproduces what the v2.32 firmware does at
the transport level:

* a command line split across writes: when the rest arrives within :attr:`EmulatorServer.split_window_s`
  (~1–2 ms on the device) the firmware runs a *corrupted* command — the part that had arrived
  (``l.1`` + ``2\n`` lights LED 1, not 12) — and the rest of the line is lost; later than that (on
  the device: from ~5 ms) the whole line is discarded without a reply. Complete lines sent back to
  back are all answered, in order;
* the commands in :data:`FLUSHING_COMMANDS` discard input queued behind them;
* any byte that arrives during a running scan or sequence stops it.

Fault injection for tests: :meth:`EmulatorServer.inject` (raw bytes to the host),
:meth:`EmulatorServer.die_on_next_command` (the device vanishes after receiving a command),
:meth:`EmulatorServer.vanish_on` / :meth:`EmulatorServer.vanish_after_patterns` (the device is lost
in the middle of a stack and, on TCP, comes back rebooted), :meth:`EmulatorServer.drop_client`
(TCP: close the connection), plus the ``fault_*`` attributes of the emulator.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import selectors
import socket
import threading
import time
import tty
from collections import deque
from typing import Generic, Literal, Protocol, TypeVar

from firmware_bridge.codec import command_name
from firmware_bridge.emulator.lines import LineBuffer
from firmware_bridge.emulator.parsing import Pacer
from firmware_bridge.geometry import ArrayGeometry

log = logging.getLogger(__name__)

#: Commands that flush the firmware's serial input before they start (with quirks).
FLUSHING_COMMANDS = frozenset({"scf", "scb", "scd", "rseq", "rdpc", "disco", "water", "demo", "trt"})
#: Longest gap (s) between the pieces of a split line that still gives a corrupted command rather
#: than a discarded line (the device: ~1–2 ms corrupts, ~5 ms and more discards).
SPLIT_WINDOW_S = 0.002
_WRITE_TIMEOUT_S = 5.0


class ServedDevice(Protocol):
    """What the server needs of the emulated controller it serves."""

    geometry: ArrayGeometry
    quirks: bool
    banner_enabled: bool
    commands_seen: deque[str]
    fault_hang: int
    fault_delay_s: float

    def handle_line(self, line: str, pacer: Pacer | None = None) -> bytes: ...

    def banner(self) -> bytes: ...

    def power_on(self) -> None: ...


D = TypeVar("D", bound=ServedDevice)


class EmulatorServer(Generic[D]):
    """A running emulator transport. ``url`` is what :func:`open_led_array` takes."""

    def __init__(self, emulator: D, kind: Literal["pty", "tcp"], *, port: int = 0,
                 host: str = "127.0.0.1") -> None:
        self.emulator = emulator
        self.kind = kind
        self.lines_dropped = 0
        self.lines_corrupted = 0
        self.bytes_flushed = 0
        self.split_window_s = SPLIT_WINDOW_S
        #: Set whenever a read ends inside a line (the split-line quirk's trigger).
        self.partial_line_seen = threading.Event()
        #: Set when the serving thread has died on purpose (``die_on_next_command``).
        self.died = threading.Event()
        #: Set after bytes given to :meth:`inject` were written to the host.
        self.injected = threading.Event()
        self._stop = threading.Event()
        self._die_next = False
        self._vanish_cmd: tuple[str, int] | None = None
        self._vanish_patterns: int | None = None
        self._gone = False
        self._sel: selectors.BaseSelector | None = None
        self._inject: deque[bytes] = deque()
        self._drop = False
        self._lines = LineBuffer()
        self._wake_r, self._wake_w = os.pipe()
        self._conn: socket.socket | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._listener: socket.socket | None = None
        if kind == "pty":
            self._master, self._slave = os.openpty()
            tty.setraw(self._slave)
            os.set_blocking(self._master, False)
            self.url = os.ttyname(self._slave)
            if emulator.banner_enabled:
                self._write(emulator.banner())
        else:
            self._listener = socket.create_server((host, port))  # SO_REUSEADDR is set on POSIX
            self.port = self._listener.getsockname()[1]
            self.url = f"socket://{host}:{self.port}"
        self._thread = threading.Thread(target=self._serve, name=f"emulator-{kind}", daemon=True)
        self._thread.start()
        log.info("illuminate emulator (%s, quirks=%s) serving on %s", emulator.geometry.name,
                 emulator.quirks, self.url)

    # -- control (any thread) ---------------------------------------------------------------
    def inject(self, data: bytes) -> None:
        """Send raw bytes to the host now (garbage, a banner, a late reply)."""
        self._inject.append(bytes(data))
        self._wake()

    def die_on_next_command(self) -> None:
        """The device vanishes (transport closed abruptly) right after it receives the next line."""
        self._die_next = True

    def vanish_on(self, command: str, nth: int = 1) -> None:
        """The device is lost when the ``nth`` line of ``command`` (e.g. ``"l"``) arrives; it is not answered.

        TCP: the connection closes and the controller reboots (``power_on``); the
        listener keeps accepting, so the host can reconnect. pty: the device is gone for good.
        """
        if nth < 1:
            raise ValueError(f"nth = {nth}; expected >= 1")
        self._vanish_cmd = (command, nth)

    def vanish_after_patterns(self, k: int) -> None:
        """The device is lost while the next sequence or scan runs, after it has shown ``k`` patterns."""
        if k < 1:
            raise ValueError(f"k = {k}; expected >= 1")
        self._vanish_patterns = k

    def drop_client(self) -> None:
        """TCP: close the current connection (a cable pull); the listener keeps accepting."""
        self._drop = True
        self._wake()

    def close(self) -> None:
        """Stop serving, join the thread and close every descriptor."""
        self._stop.set()
        self._wake()
        self._thread.join(timeout=5.0)
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        for s in (self._conn, self._listener):
            if s is not None:
                s.close()
        self._conn = self._listener = None

    def __enter__(self) -> EmulatorServer[D]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"!")

    # -- serving thread ---------------------------------------------------------------------
    def _fd(self) -> int | None:
        if self._master is not None:
            return self._master
        return self._conn.fileno() if self._conn is not None else None

    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        self._sel = sel
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        if self._master is not None:
            sel.register(self._master, selectors.EVENT_READ, "data")
        if self._listener is not None:
            sel.register(self._listener, selectors.EVENT_READ, "accept")
        try:
            while not self._stop.is_set() and not self.died.is_set():
                for key, _ in sel.select(timeout=1.0):
                    if key.data == "wake":
                        os.read(self._wake_r, 4096)
                        self._control(sel)
                    elif key.data == "accept":
                        self._accept(sel)
                    elif not self._read(sel):
                        break
        except Exception:  # the thread must not die silently: a test would only see a timeout
            log.exception("emulator server on %s crashed", self.url)
            raise
        finally:
            sel.close()

    def _control(self, sel: selectors.BaseSelector) -> None:
        if self._drop and self._conn is not None:
            self._disconnect(sel)
        self._drop = False
        while self._inject:
            self._write(self._inject.popleft())
            self.injected.set()

    def _accept(self, sel: selectors.BaseSelector) -> None:
        if self._listener is None:
            return
        conn, peer = self._listener.accept()
        if self._conn is not None:  # a serial device has one user at a time
            log.warning("emulator busy: refusing second connection from %s", peer)
            conn.close()
            return
        conn.settimeout(_WRITE_TIMEOUT_S)
        self._conn = conn
        sel.register(conn, selectors.EVENT_READ, "data")
        self._lines.clear()
        if self.emulator.banner_enabled:
            self._write(self.emulator.banner())

    def _disconnect(self, sel: selectors.BaseSelector) -> None:
        if self._conn is not None:
            sel.unregister(self._conn)
            self._conn.close()
            self._conn = None

    def _read(self, sel: selectors.BaseSelector) -> bool:
        """Read what is there and handle complete lines; False when the serving loop must end."""
        try:
            if self._master is not None:
                data = os.read(self._master, 4096)
            elif self._conn is not None:
                data = self._conn.recv(4096)
            else:
                return True
        except BlockingIOError:
            return True
        except OSError as exc:
            log.info("emulator transport read failed: %s", exc)
            data = b""
        if not data:
            if self._conn is not None:
                self._disconnect(sel)
                return True
            return False
        return self._on_data(data)

    def _on_data(self, data: bytes) -> bool:
        lines = self._lines
        if lines.partial_since is not None and self.emulator.quirks and not self._split_line(lines.partial_since):
            return False
        lines.append(data)
        while (line := lines.next_line()) is not None:
            if not self._run(line):
                return False
        if lines.end_read(time.monotonic()):
            self.partial_line_seen.set()
        return True

    def _split_line(self, since: float) -> bool:
        """The rest of a line arrived: run the piece already there (corrupted) or discard the line.

        Either way the rest of the line, up to its end, is lost.
        """
        piece = self._lines.take_partial()
        if time.monotonic() - since <= self.split_window_s:
            self.lines_corrupted += 1
            log.info("emulator ran the first piece of a split line: %r", piece[:40])
            return self._run(piece)
        self.lines_dropped += 1
        log.info("emulator discarded a line split across writes: %r", piece[:40])
        return True

    def _run(self, line: str) -> bool:
        emu = self.emulator
        if self._die_next and line.strip():
            emu.commands_seen.append(line)
            log.info("emulator dies on %r", line)
            self._die()
            return False
        if self._vanish_cmd is not None and command_name(line) == self._vanish_cmd[0]:
            name, nth = self._vanish_cmd
            self._vanish_cmd = (name, nth - 1) if nth > 1 else None
            if nth == 1:
                emu.commands_seen.append(line)
                log.info("emulator is lost on %r", line)
                self._vanish()
                return self._after_vanish()
        if emu.fault_hang > 0 and line.strip():
            emu.fault_hang -= 1
            emu.commands_seen.append(line)
            return True
        if emu.quirks and command_name(line) in FLUSHING_COMMANDS:
            self._flush_input()
        reply = emu.handle_line(line, pacer=self)
        if self._gone:
            return self._after_vanish()
        if emu.fault_delay_s > 0 and reply:
            self._stop.wait(emu.fault_delay_s)
        if reply:
            self._write(reply)
        return True

    def _vanish(self) -> None:
        """Lose the device: TCP closes the connection and reboots the controller; a pty dies."""
        self._gone = True
        if self._conn is not None and self._sel is not None:
            self._disconnect(self._sel)
            self.emulator.power_on()
        else:
            self._die()

    def _after_vanish(self) -> bool:
        self._gone = False
        self._lines.clear()
        return not self.died.is_set()

    def _die(self) -> None:
        self._die_next = False
        if self._master is not None:
            os.close(self._master)
            self._master = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self.died.set()

    def _flush_input(self) -> None:
        self.bytes_flushed += self._lines.clear()
        fd = self._fd()
        while fd is not None and select.select([fd], [], [], 0)[0]:
            chunk = os.read(fd, 4096) if self._master is not None else self._conn.recv(4096)  # type: ignore[union-attr]
            if not chunk:
                break
            self.bytes_flushed += len(chunk)

    # -- Pacer protocol (used by running sequences) --------------------------------------------
    def input_pending(self) -> bool:
        if self._gone:
            return True  # the device is gone: the running sequence stops here
        fd = self._fd()
        return bool(self._lines) or (fd is not None and bool(select.select([fd], [], [], 0)[0]))

    def wait(self, seconds: float) -> None:
        if self._vanish_patterns is not None:
            self._vanish_patterns -= 1
            if self._vanish_patterns == 0:
                self._vanish_patterns = None
                log.info("emulator is lost in the middle of a sequence")
                self._vanish()
                return
        self._stop.wait(seconds)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            fd = self._fd()
            if fd is None:
                return
            if not select.select([], [fd], [], _WRITE_TIMEOUT_S)[1]:
                log.warning("emulator: host is not reading; dropped %d reply bytes", len(view))
                return
            try:
                n = os.write(fd, view) if self._master is not None else self._conn.send(view)  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            except OSError as exc:
                log.info("emulator write failed: %s", exc)
                return
            view = view[n:]


def serve_pty(emulator: D) -> EmulatorServer[D]:
    """Serve ``emulator`` on a new pseudo-terminal in raw mode."""
    return EmulatorServer(emulator, "pty")


def serve_tcp(emulator: D, port: int = 0, host: str = "127.0.0.1") -> EmulatorServer[D]:
    """Serve ``emulator`` on TCP (one connection at a time, like a serial port)."""
    return EmulatorServer(emulator, "tcp", port=port, host=host)

"""An emulator of an illuminate v2 LED-array controller, for any geometry.

:class:`Emulator` holds the device state and answers one command line at a time with
:meth:`Emulator.handle_line` (no I/O, so it is testable directly). :meth:`Emulator.serve_pty` and
:meth:`Emulator.serve_tcp` put it behind a real pseudo-terminal or a TCP port
(:mod:`firmware_bridge.emulator_serve`). The virtual camera reads :meth:`Emulator.illumination`.

The default (``quirks=True``) is the illuminate v2.32 command parser as it behaves on a device: no
range checks (``strtoul`` with base 0, so ``l.010`` is LED 8; ``uint16 -> int16`` casts make
``l.99999`` light every LED; indices past the table light an undefined LED, emulated as
``index % led_count`` and recorded in :attr:`Emulator.out_of_table`; ``sb.300`` -> 44; ``l`` alone
lights nothing), ``na.4`` meaning 0.40, ``rseq[.delay_ms[.count]]`` with the trigger outputs
configured beforehand (``troutputmode``, ``troutputpulsewidth``, ``troutputdelay``,
``troutputpolarity``, ``trinput*``, ``trs``), an over-current pattern refused with an ``ERROR:`` line
followed by the *success* terminator, and, when served, the boot banner, split-line corruption or
loss, and input flushes (:mod:`firmware_bridge.emulator_serve`). ``version`` answers ``2.32``.

``quirks=False`` is a strict controller: it checks ranges and argument counts and answers
``ERROR[n]`` (for tests of the bridge's own checks). ``version="1.x"`` emulates an older firmware
whose ``rseq`` takes the trigger modes as arguments and reports ``seq_start:…:seq_end`` (see
:func:`firmware_bridge.commands.sequence_dialect`).
"""

from __future__ import annotations

import logging
import math
import struct
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from firmware_bridge.commands import sequence_dialect
from firmware_bridge.emulator_commands import CommandsMixin, Fail, Handler
from firmware_bridge.emulator_sequences import SequenceMixin
from firmware_bridge.geometry import ArrayGeometry

if TYPE_CHECKING:
    from firmware_bridge.emulator_serve import EmulatorServer

log = logging.getLogger(__name__)

FIRMWARE_VERSION = "2.32"
#: Current of one colour channel of one LED at full drive (A); the firmware's ``LED_CURRENT_AMPS``.
LED_CHANNEL_CURRENT_A = 0.02
#: Current limit the emulated controller enforces by default (A); ``smc.<amps>`` changes it.
DEFAULT_MAX_CURRENT_A = 8.0
#: Longest line the emulated firmware buffers (bytes); longer lines are ERROR[18] or, with quirks,
#: silently dropped.
FIRMWARE_LINE_BUFFER = 1024
ERROR_TEXT = {
    2: "Wrong number of arguments.", 8: "Invalid argument.", 9: "Device does not support this feature.",
    10: "Invalid argument range.", 12: "Reached end of sequence.",
    13: "Sequence period was shorter than LED update rate.", 15: "Command interrupted.",
    16: "Invalid command.", 18: "Command too long.", 19: "Sequence is full.",
}


@dataclass(frozen=True)
class Illumination:
    """What the array shows: lit LED indices (sorted) and per-channel brightness 0..1.

    ``brightness[ch]`` is the firmware's 8-bit drive value of channel ``ch`` (``sb`` and ``sc``
    combined, as the firmware combines them) divided by 255.
    """

    leds: tuple[int, ...]
    brightness: dict[str, float]


class Pacer(Protocol):
    """How a running sequence sees time and the serial input (the server supplies a real one)."""

    def input_pending(self) -> bool: ...

    def wait(self, seconds: float) -> None: ...


class InstantPacer:
    """No time passes and no input arrives (pure :meth:`Emulator.handle_line` calls)."""

    def input_pending(self) -> bool:
        return False

    def wait(self, seconds: float) -> None:
        return None


Listener = Callable[[Illumination, tuple[int, ...]], None]


def f32(x: float) -> float:
    """Round to IEEE single precision, as the Teensy's ``float`` arithmetic does."""
    return float(struct.unpack("f", struct.pack("f", x))[0])


class Emulator(CommandsMixin, SequenceMixin):
    """Device state of an illuminate controller whose LEDs sit where ``geometry`` says."""

    def __init__(self, geometry: ArrayGeometry, *, quirks: bool = True, banner: bool | None = None,
                 serial_number: int = 1, trigger_output_count: int = 2, trigger_input_count: int = 2,
                 version: str = FIRMWARE_VERSION, max_current_a: float = DEFAULT_MAX_CURRENT_A) -> None:
        self.geometry = geometry
        self.quirks = quirks
        self.version = version
        #: ``"v2"`` (trigger outputs configured before ``rseq``) or ``"v1"`` (trigger modes on ``rseq``).
        self.dialect = sequence_dialect(version)
        self.default_max_current_a = max_current_a
        #: Served emulators print the boot banner on start / connect (default: with quirks).
        self.banner_enabled = quirks if banner is None else banner
        self.serial_number = serial_number
        self.channels = tuple(geometry.wavelengths_nm)
        self.trigger_output_count = trigger_output_count
        self.trigger_input_count = trigger_input_count
        # Fault injection, read by handle_line and the server.
        self.fault_error: int | None = None  #: answer the next command with ERROR[n]
        self.fault_delay_s = 0.0  #: served: hold every reply this long (s)
        self.fault_hang = 0  #: served: never answer the next n commands
        self.fault_interrupt_after: int | None = None  #: next sequence sees input after n patterns
        self.commands_seen: deque[str] = deque(maxlen=4096)
        self.out_of_table: list[int] = []
        self.trigger_pulses = [0] * trigger_output_count
        self._notes: list[str] = []  # lines printed before the reply (over-current refusals)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._cmd_lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._change_count = 0
        self._lit: dict[int, tuple[int, ...]] = {}
        self.power_on()

    # -- state ------------------------------------------------------------------------------
    def power_on(self) -> None:
        """Reset to power-on state (a reboot): dark, default colour/brightness/NA, human mode."""
        with self._lock:
            self._lit = {}
            self._change_count += 1
            self._changed.notify_all()
        n = len(self.channels)
        self.color = [round(255 / n)] * n
        self.brightness_setting = 255
        self.value = self._value_ceil()
        self.na = self.geometry.objective_na
        self.distance_mm = self.geometry.leds[0].z_mm
        self.autoclear = True
        self.machine = False
        self.sequence: list[tuple[int, ...]] = [(0,), (), (1,), (), (2,), (), (3,)]
        self.sequence_capacity = len(self.sequence)
        self.sequence_index = 0
        self.trigger_output_modes = [0] * self.trigger_output_count
        self.trigger_input_modes = [0] * self.trigger_input_count
        self.trigger_pulse_width_us = [1000] * self.trigger_output_count
        self.trigger_delay_us = [0] * self.trigger_output_count
        self.trigger_output_polarity = [1] * self.trigger_output_count
        self.trigger_input_polarity = [1] * self.trigger_input_count
        self.trigger_input_timeout_s = 3600
        self.max_current_a = self.default_max_current_a
        self.enforce_max_current = True
        self._na_table = self._build_na_table()

    def _build_na_table(self) -> list[tuple[float, float, float]]:
        """(na_x, na_y, na) of every LED at the current array distance (firmware's buildNaList)."""
        z0 = self.geometry.leds[0].z_mm
        out = []
        for led in self.geometry.leds:
            z = led.z_mm - z0 + self.distance_mm
            r = math.sqrt(led.x_mm**2 + led.y_mm**2 + z**2)
            nx, ny = led.x_mm / r, led.y_mm / r
            out.append((nx, ny, math.hypot(nx, ny)))
        return out

    def _value_ceil(self) -> tuple[int, ...]:
        """LED drive values after ``sb``: ceil(colour / 255 * brightness) in float32."""
        b = f32(self.brightness_setting)
        return tuple(min(255, math.ceil(f32(f32(f32(c) / 255.0) * b))) for c in self.color)

    def _value_trunc(self) -> tuple[int, ...]:
        """LED drive values after ``sc``: (uint8)(colour / 255 * brightness) in float32."""
        b = f32(self.brightness_setting)
        return tuple(int(f32(f32(f32(c) / 255.0) * b)) & 0xFF for c in self.color)

    def draw(self, indices: Sequence[int], *, clear: bool = True, triggers: tuple[int, ...] = ()) -> None:
        """Show ``indices`` at the current drive value (after clearing when ``clear``).

        Like the firmware, a pattern that would draw more than :attr:`max_current_a` is not shown
        (the array keeps its previous pattern) and a line ``ERROR: Current output (…) exceeds …`` is
        printed before the command's reply.
        """
        with self._lock:
            lit = {} if clear else dict(self._lit)
            for i in indices:
                lit[i] = self.value
            amps = sum(sum(v) for v in lit.values()) / 255 * LED_CHANNEL_CURRENT_A
            if self.enforce_max_current and amps > self.max_current_a:
                self._notes.append(f"ERROR: Current output ({amps:.2f}) exceeds maximum current output "
                                   f"({self.max_current_a:.2f})\n")
                lit = self._lit
            self._lit = lit
            for t in triggers:
                self.trigger_pulses[t] += 1
            self._change_count += 1
            self._changed.notify_all()
            listeners = list(self._listeners)
        if listeners:
            snap = self.illumination()
            for fn in listeners:
                fn(snap, triggers)

    def lit(self) -> tuple[int, ...]:
        with self._lock:
            return tuple(sorted(self._lit))

    def na_of(self, index: int) -> float:
        return self._na_table[index][2]

    # -- what the camera reads --------------------------------------------------------------
    def illumination(self) -> Illumination:
        """Thread-safe snapshot of the lit LEDs and the per-channel brightness (0..1)."""
        with self._lock:
            leds = tuple(sorted(self._lit))
            values = list(self._lit.values()) or [self.value]
        bright = {ch: max(v[k] for v in values) / 255.0 for k, ch in enumerate(self.channels)}
        return Illumination(leds, bright)

    @property
    def change_count(self) -> int:
        """Increments on every display update (and reboot)."""
        with self._lock:
            return self._change_count

    def wait_for_change(self, since: int, timeout: float) -> int:
        """Block until :attr:`change_count` differs from ``since`` or ``timeout`` s pass; return it."""
        with self._changed:
            self._changed.wait_for(lambda: self._change_count != since, timeout)
            return self._change_count

    def add_listener(self, fn: Listener) -> None:
        """Call ``fn(illumination, trigger_outputs_pulsed)`` after every display update."""
        with self._lock:
            self._listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        with self._lock:
            self._listeners.remove(fn)

    # -- the dialect -------------------------------------------------------------------------
    def handlers(self) -> dict[str, Handler]:
        return {
            "l": self._led, "x": self._clear, "ff": self._fill, "bf": self._bf, "df": self._df,
            "an": self._annulus, "sb": self._sb, "sc": self._sc, "na": self._na, "sad": self._sad,
            "ac": self._ac, "machine": self._machine, "human": self._human, "pprops": self._pprops,
            "pp": self._pprops, "pledpos": self._pledpos, "pledposna": self._pledposna,
            "version": lambda a, p: f"{self.version}\n", "about": lambda a, p: self.banner().decode(),
            "reset": self._reset, "?": lambda a, p: " ".join(sorted(self.handlers())) + "\n",
            "ssl": self._ssl, "ssv": self._ssv, "rseq": self._rseq, "sseq": self._sseq,
            "xseq": self._xseq, "pseq": self._pseq, "scf": self._scf, "scb": self._scb,
            "scd": self._scd, "tr": self._tr, "trs": self._trs, "troutputmode": self._trmode,
            "trinputmode": self._trmode_in, "troutputpulsewidth": self._trpw, "troutputdelay": self._trdelay,
            "troutputpolarity": self._trpol, "trinputpolarity": self._trpol_in, "trinputtimeout": self._trtimeout,
            "delay": self._delay, "smc": self._smc, "smce": self._smce,
        }

    def handle_line(self, line: str, pacer: Pacer | None = None) -> bytes:
        """Execute one command line (without its newline) and return the bytes the device prints.

        An empty line gets no answer (as on the device). Call from one thread at a time.
        """
        with self._cmd_lock:
            return self._handle(line.strip("\r\n"), pacer or InstantPacer())

    def _handle(self, line: str, pacer: Pacer) -> bytes:
        if not line:
            return b""
        self.commands_seen.append(line)
        if len(line) + 1 > FIRMWARE_LINE_BUFFER:
            return b"" if self.quirks else _error(18)
        if self.fault_error is not None:
            code, self.fault_error = self.fault_error, None
            return _error(code)
        name, *args = [t for t in line.split(".") if t] or [""]
        handler = self.handlers().get(name)
        if handler is None:
            return _error(16)
        self._notes.clear()
        try:
            payload = handler(args, pacer)
        except Fail as exc:
            return "".join(self._notes).encode("ascii") + exc.text.encode("ascii") + _error(exc.code)
        return ("".join(self._notes) + payload).encode("ascii", "replace") + b"-==-\n"

    def say(self, short: str, long: str) -> str:
        """One reply line in the current mode (machine: ``short``, human: ``long``)."""
        return (short if self.machine else long) + "\n"

    def banner(self) -> bytes:
        """The about page the firmware prints at boot."""
        rule = "=" * 100
        mac = self.mac_address
        return (
            f"{rule}\n  {self.geometry.name} LED Array Controller \n  Illuminate r{self.version} | "
            f"Serial Number: {self.serial_number:04d} | Part Number: {self.serial_number:04d} | "
            f"Teensy MAC address: {mac}\n  For help, type ? \n{rule}\n"
        ).encode("ascii")

    @property
    def mac_address(self) -> str:
        return f"04:E9:E5:00:{self.serial_number >> 8 & 0xFF:02X}:{self.serial_number & 0xFF:02X}"

    # -- serving -----------------------------------------------------------------------------
    def serve_pty(self) -> EmulatorServer:
        """Serve on a new pseudo-terminal; ``.url`` is its slave path (``/dev/pts/N``)."""
        from firmware_bridge.emulator_serve import serve_pty

        return serve_pty(self)

    def serve_tcp(self, port: int = 0, host: str = "127.0.0.1") -> EmulatorServer:
        """Serve on TCP; ``.url`` is ``socket://host:port`` (``port=0`` picks a free one)."""
        from firmware_bridge.emulator_serve import serve_tcp

        return serve_tcp(self, port=port, host=host)


def _error(code: int) -> bytes:
    return f"ERROR[{code}]: {ERROR_TEXT.get(code, 'INVALID ERROR CODE')}\n".encode("ascii")

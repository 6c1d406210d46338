"""An emulator of an illuminate v2 LED-array controller, for any geometry.

The emulator is data and a table: :class:`~firmware_bridge.emulator.state.EmulatorState` holds
what the device knows (:mod:`.state`); one literal dict per dialect maps each command name to a
handler function ``(state, args, pacer) -> payload`` (:mod:`.dialects`, with the handlers in
:mod:`.handlers` and :mod:`.sequences`, their argument parsing in :mod:`.parsing`). :class:`Emulator`
is that state plus thread-safe entry points: :meth:`Emulator.handle_line` answers one command line
with no I/O (testable directly); :meth:`Emulator.serve_pty` / :meth:`Emulator.serve_tcp` put it
behind a real pseudo-terminal or a TCP port (:mod:`.serve`, the thin I/O layer). The virtual camera
reads :meth:`Emulator.illumination`.

The default (``quirks=True``) is the illuminate v2.32 command parser as it behaves on a device: no
range checks (``strtoul`` with base 0, so ``l.010`` is LED 8; ``uint16 -> int16`` casts make
``l.99999`` light every LED; indices past the table light an undefined LED, emulated as
``index % led_count`` and recorded in :attr:`Emulator.out_of_table`; ``sb.300`` -> 44; ``l`` alone
lights nothing), ``na.4`` meaning 0.40, ``rseq[.delay_ms[.count]]`` with the trigger outputs
configured beforehand (``troutputmode``, ``troutputpulsewidth``, ``troutputdelay``,
``troutputpolarity``, ``trinput*``, ``trs``), an over-current pattern refused with an ``ERROR:`` line
followed by the *success* terminator, and, when served, the boot banner, split-line corruption or
loss, and input flushes (:mod:`.serve`). ``version`` answers ``2.32``.

``quirks=False`` is a strict controller: it checks ranges and argument counts and answers
``ERROR[n]`` (for tests of the bridge's own checks). ``version="1.x"`` emulates an older firmware
whose ``rseq`` takes the trigger modes as arguments and reports ``seq_start:…:seq_end`` (see
:func:`firmware_bridge.commands.sequence_dialect`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from firmware_bridge.emulator import state as st
from firmware_bridge.emulator.dialects import commands, run_line
from firmware_bridge.emulator.parsing import Handler, InstantPacer, Pacer
from firmware_bridge.emulator.serve import EmulatorServer, serve_pty, serve_tcp
from firmware_bridge.emulator.state import (
    DEFAULT_MAX_CURRENT_A,
    FIRMWARE_VERSION,
    EmulatorState,
    Illumination,
    Listener,
)
from firmware_bridge.geometry import ArrayGeometry

__all__ = [
    "DEFAULT_MAX_CURRENT_A",
    "FIRMWARE_VERSION",
    "Emulator",
    "EmulatorServer",
    "EmulatorState",
    "Illumination",
    "InstantPacer",
    "Listener",
    "Pacer",
]


class Emulator(EmulatorState):
    """An illuminate controller whose LEDs sit where ``geometry`` says: its state, thread-safe.

    Every attribute of :class:`EmulatorState` (``na``, ``trigger_pulses``, ``fault_hang``, …) is
    readable, and the ``fault_*`` ones settable, from tests.
    """

    def __init__(self, geometry: ArrayGeometry, *, quirks: bool = True, banner: bool | None = None,
                 serial_number: int = 1, trigger_output_count: int = 2, trigger_input_count: int = 2,
                 version: str = FIRMWARE_VERSION, max_current_a: float = DEFAULT_MAX_CURRENT_A) -> None:
        # FIRMWARE_VERSION is read here, at construction, so that a test can patch this module's
        # constant to emulate a controller reporting another interface version.
        super().__init__(geometry, quirks=quirks, version=version, interface_version=FIRMWARE_VERSION,
                         serial_number=serial_number, trigger_output_count=trigger_output_count,
                         trigger_input_count=trigger_input_count, default_max_current_a=max_current_a,
                         banner_enabled=quirks if banner is None else banner)
        self._cmd_lock = threading.Lock()

    # -- commands ------------------------------------------------------------------------------
    def handle_line(self, line: str, pacer: Pacer | None = None) -> bytes:
        """Execute one command line (without its newline) and return the bytes the device prints.

        An empty line gets no answer (as on the device). Commands run one at a time.
        """
        with self._cmd_lock:
            return run_line(self, line.strip("\r\n"), pacer or InstantPacer())

    def handlers(self) -> dict[str, Handler]:
        """The command table of this controller's dialect (name -> handler)."""
        return commands(self)

    def power_on(self) -> None:
        """Reset to power-on state (a reboot): dark, default colour/brightness/NA, human mode."""
        st.power_on(self)

    def draw(self, indices: Iterable[int], *, clear: bool = True, triggers: tuple[int, ...] = ()) -> None:
        """Show ``indices`` at the current drive value (see :func:`~firmware_bridge.emulator.state.draw`)."""
        st.draw(self, indices, clear=clear, triggers=triggers)

    def say(self, short: str, long: str) -> str:
        return st.say(self, short, long)

    def banner(self) -> bytes:
        """The about page the firmware prints at boot."""
        return st.banner(self)

    @property
    def mac_address(self) -> str:
        return st.mac_address(self)

    # -- what the camera reads -----------------------------------------------------------------
    def lit(self) -> tuple[int, ...]:
        return st.lit(self)

    def na_of(self, index: int) -> float:
        return self.na_table[index][2]

    def illumination(self) -> Illumination:
        """Thread-safe snapshot of the lit LEDs and the per-channel brightness (0..1)."""
        return st.illumination(self)

    @property
    def change_count(self) -> int:
        """Increments on every display update (and reboot)."""
        with self.display.lock:
            return self.display.change_count

    def wait_for_change(self, since: int, timeout: float) -> int:
        """Block until :attr:`change_count` differs from ``since`` or ``timeout`` s pass; return it."""
        d = self.display
        with d.changed:
            d.changed.wait_for(lambda: d.change_count != since, timeout)
            return d.change_count

    def add_listener(self, fn: Listener) -> None:
        """Call ``fn(illumination, trigger_outputs_pulsed)`` after every display update."""
        with self.display.lock:
            self.display.listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        with self.display.lock:
            self.display.listeners.remove(fn)

    # -- serving -------------------------------------------------------------------------------
    def serve_pty(self) -> EmulatorServer[Emulator]:
        """Serve on a new pseudo-terminal; ``.url`` is its slave path (``/dev/pts/N``)."""
        return serve_pty(self)

    def serve_tcp(self, port: int = 0, host: str = "127.0.0.1") -> EmulatorServer[Emulator]:
        """Serve on TCP; ``.url`` is ``socket://host:port`` (``port=0`` picks a free one)."""
        return serve_tcp(self, port=port, host=host)

"""The emulated controller as data: :class:`EmulatorState` and the functions that read and change it.

:class:`EmulatorState` is plain data: the settings the firmware keeps (colour, brightness, NA,
array distance, sequence, trigger configuration), the fault injections, what was seen, and the
:class:`Display` (the lit LEDs, the one part shared with other threads). The command handlers
(:mod:`firmware_bridge.emulator.handlers`, :mod:`firmware_bridge.emulator.sequences`) are
functions of it; :func:`power_on`, :func:`draw` and the other functions here are what they share.
"""

from __future__ import annotations

import math
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from firmware_bridge.commands import sequence_dialect
from firmware_bridge.geometry import ArrayGeometry

FIRMWARE_VERSION = "2.32"
#: Current of one colour channel of one LED at full drive (A); the firmware's ``LED_CURRENT_AMPS``.
LED_CHANNEL_CURRENT_A = 0.02
#: Current limit the emulated controller enforces by default (A); ``smc.<amps>`` changes it.
DEFAULT_MAX_CURRENT_A = 8.0
#: The sequence a controller holds after power-on (LEDs 0..3, each followed by a dark pattern).
POWER_ON_SEQUENCE: tuple[tuple[int, ...], ...] = ((0,), (), (1,), (), (2,), (), (3,))


@dataclass(frozen=True)
class Illumination:
    """What the array shows: lit LED indices (sorted) and per-channel brightness 0..1.

    ``brightness[ch]`` is the firmware's 8-bit drive value of channel ``ch`` (``sb`` and ``sc``
    combined, as the firmware combines them) divided by 255.
    """

    leds: tuple[int, ...]
    brightness: dict[str, float]


#: Called with the new illumination and the trigger outputs pulsed, after every display update.
Listener = Callable[[Illumination, tuple[int, ...]], None]
#: LED index -> its drive value per colour (0..255).
Pattern = dict[int, tuple[int, ...]]


class Display:
    """The lit LEDs, shared between the command thread and the camera's threads (one lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.lit: Pattern = {}
        self.change_count = 0
        self.listeners: list[Listener] = []

    def show(self, lit: Pattern) -> list[Listener]:
        """Replace the pattern (call with :attr:`lock` held); returns the listeners to notify."""
        self.lit = lit
        self.change_count += 1
        self.changed.notify_all()
        return list(self.listeners)


@dataclass(eq=False)
class EmulatorState:
    """Everything an emulated illuminate controller knows; the handlers read and change it.

    It stands alone: ``run_line(EmulatorState(geometry), "l.5", InstantPacer())`` runs a command
    (:mod:`firmware_bridge.emulator.dialects`). The fields from ``color`` on are the device
    settings: :func:`power_on` sets them (a reboot), commands change them.
    """

    geometry: ArrayGeometry
    #: ``True``: the v2.32 parser (no range checks, C number parsing); ``False``: a strict controller.
    quirks: bool = True
    #: Answer of ``version``; the ``rseq`` dialect follows from it.
    version: str = FIRMWARE_VERSION
    #: ``interface_version`` of ``pprops`` (the version the host checks).
    interface_version: str = FIRMWARE_VERSION
    serial_number: int = 1
    trigger_output_count: int = 2
    trigger_input_count: int = 2
    #: Current limit after power-on (A).
    default_max_current_a: float = DEFAULT_MAX_CURRENT_A
    #: Served emulators print the boot banner on start / connect.
    banner_enabled: bool = True
    # Fault injection, read by the dispatcher and the server.
    fault_error: int | None = None  #: answer the next command with ERROR[n]
    fault_delay_s: float = 0.0  #: served: hold every reply this long (s)
    fault_hang: int = 0  #: served: never answer the next n commands
    fault_interrupt_after: int | None = None  #: next sequence sees input after n patterns
    # What happened.
    commands_seen: deque[str] = field(default_factory=lambda: deque(maxlen=4096), repr=False)
    out_of_table: list[int] = field(default_factory=list)
    #: Pulses sent per trigger output.
    trigger_pulses: list[int] = field(init=False)
    #: Lines printed before the current command's reply (over-current refusals).
    notes: list[str] = field(default_factory=list, repr=False)
    display: Display = field(default_factory=Display, repr=False)
    # Device settings (power_on sets them).
    color: list[int] = field(init=False)
    brightness_setting: int = field(init=False)
    value: tuple[int, ...] = field(init=False)
    na: float = field(init=False)
    distance_mm: float = field(init=False)
    autoclear: bool = field(init=False)
    machine: bool = field(init=False)
    sequence: list[tuple[int, ...]] = field(init=False)
    sequence_capacity: int = field(init=False)
    sequence_index: int = field(init=False)
    trigger_output_modes: list[int] = field(init=False)
    trigger_input_modes: list[int] = field(init=False)
    trigger_pulse_width_us: list[int] = field(init=False)
    trigger_delay_us: list[int] = field(init=False)
    trigger_output_polarity: list[int] = field(init=False)
    trigger_input_polarity: list[int] = field(init=False)
    trigger_input_timeout_s: int = field(init=False)
    max_current_a: float = field(init=False)
    enforce_max_current: bool = field(init=False)
    #: (na_x, na_y, na) of every LED at :attr:`distance_mm` (the firmware's NA list).
    na_table: list[tuple[float, float, float]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.trigger_pulses = [0] * self.trigger_output_count
        power_on(self)

    @property
    def channels(self) -> tuple[str, ...]:
        """Colour channel names, in the order of the firmware's values (``r``, ``g``, ``b``)."""
        return tuple(self.geometry.wavelengths_nm)

    @property
    def dialect(self) -> str:
        """``"v2"`` (trigger outputs configured before ``rseq``) or ``"v1"`` (modes on ``rseq``)."""
        return sequence_dialect(self.version)

    @property
    def led_count(self) -> int:
        return len(self.geometry.leds)


def power_on(s: EmulatorState) -> None:
    """Reset ``s`` to the power-on state (a reboot): dark, default colour/brightness/NA, human mode."""
    with s.display.lock:
        s.display.show({})
    n_out, n_in = s.trigger_output_count, s.trigger_input_count
    s.color = [round(255 / len(s.channels))] * len(s.channels)
    s.brightness_setting = 255
    s.value = value_ceil(s.color, s.brightness_setting)
    s.na = s.geometry.objective_na
    s.distance_mm = s.geometry.leds[0].z_mm
    s.autoclear, s.machine = True, False
    s.sequence = list(POWER_ON_SEQUENCE)
    s.sequence_capacity, s.sequence_index = len(s.sequence), 0
    s.trigger_output_modes, s.trigger_input_modes = [0] * n_out, [0] * n_in
    s.trigger_pulse_width_us, s.trigger_delay_us = [1000] * n_out, [0] * n_out
    s.trigger_output_polarity, s.trigger_input_polarity = [1] * n_out, [1] * n_in
    s.trigger_input_timeout_s = 3600
    s.max_current_a, s.enforce_max_current = s.default_max_current_a, True
    s.na_table = na_table(s.geometry, s.distance_mm)


def f32(x: float) -> float:
    """Round to IEEE single precision, as the Teensy's ``float`` arithmetic does."""
    return float(struct.unpack("f", struct.pack("f", x))[0])


def value_ceil(color: list[int], brightness: int) -> tuple[int, ...]:
    """LED drive values after ``sb``: ceil(colour / 255 * brightness) in float32."""
    b = f32(brightness)
    return tuple(min(255, math.ceil(f32(f32(f32(c) / 255.0) * b))) for c in color)


def value_trunc(color: list[int], brightness: int) -> tuple[int, ...]:
    """LED drive values after ``sc``: (uint8)(colour / 255 * brightness) in float32."""
    b = f32(brightness)
    return tuple(int(f32(f32(f32(c) / 255.0) * b)) & 0xFF for c in color)


def na_table(geometry: ArrayGeometry, distance_mm: float) -> list[tuple[float, float, float]]:
    """(na_x, na_y, na) of every LED with the array ``distance_mm`` below the sample (buildNaList)."""
    z0 = geometry.leds[0].z_mm
    out = []
    for led in geometry.leds:
        z = led.z_mm - z0 + distance_mm
        r = math.sqrt(led.x_mm**2 + led.y_mm**2 + z**2)
        nx, ny = led.x_mm / r, led.y_mm / r
        out.append((nx, ny, math.hypot(nx, ny)))
    return out


def draw(s: EmulatorState, indices: Iterable[int], *, clear: bool = True, triggers: tuple[int, ...] = ()) -> None:
    """Show ``indices`` at the current drive value (after clearing when ``clear``), pulse ``triggers``.

    Like the firmware, a pattern that would draw more than ``s.max_current_a`` is not shown (the
    array keeps its previous pattern) and a line ``ERROR: Current output (…) exceeds …`` is printed
    before the command's reply.
    """
    d = s.display
    with d.lock:
        lit = {} if clear else dict(d.lit)
        for i in indices:
            lit[i] = s.value
        amps = sum(sum(v) for v in lit.values()) / 255 * LED_CHANNEL_CURRENT_A
        if s.enforce_max_current and amps > s.max_current_a:
            s.notes.append(f"ERROR: Current output ({amps:.2f}) exceeds maximum current output "
                           f"({s.max_current_a:.2f})\n")
            lit = d.lit
        for t in triggers:
            s.trigger_pulses[t] += 1
        listeners = d.show(lit)
    if listeners:
        snap = illumination(s)
        for fn in listeners:
            fn(snap, triggers)


def lit(s: EmulatorState) -> tuple[int, ...]:
    """The lit LED indices, sorted."""
    with s.display.lock:
        return tuple(sorted(s.display.lit))


def illumination(s: EmulatorState) -> Illumination:
    """Thread-safe snapshot of the lit LEDs and the per-channel brightness (0..1)."""
    with s.display.lock:
        leds = tuple(sorted(s.display.lit))
        values = list(s.display.lit.values()) or [s.value]
    bright = {ch: max(v[k] for v in values) / 255.0 for k, ch in enumerate(s.channels)}
    return Illumination(leds, bright)


def say(s: EmulatorState, short: str, long: str) -> str:
    """One reply line in the current mode (machine: ``short``, human: ``long``)."""
    return (short if s.machine else long) + "\n"


def mac_address(s: EmulatorState) -> str:
    return f"04:E9:E5:00:{s.serial_number >> 8 & 0xFF:02X}:{s.serial_number & 0xFF:02X}"


def banner(s: EmulatorState) -> bytes:
    """The about page the firmware prints at boot."""
    rule = "=" * 100
    return (
        f"{rule}\n  {s.geometry.name} LED Array Controller \n  Illuminate r{s.version} | "
        f"Serial Number: {s.serial_number:04d} | Part Number: {s.serial_number:04d} | "
        f"Teensy MAC address: {mac_address(s)}\n  For help, type ? \n{rule}\n"
    ).encode("ascii")

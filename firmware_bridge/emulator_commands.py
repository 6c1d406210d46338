"""Command handlers of the illuminate emulator (mixed into :class:`firmware_bridge.emulator.Emulator`).

Each handler takes the ``.``-separated arguments and a pacer and returns the payload printed before
the ``-==-`` terminator, or raises :class:`Fail` for an ``ERROR[n]`` reply. Formats follow the
firmware source (``ledarray.cpp``): machine-mode echoes ``NA.40``, ``SB.128``, ``CO.r.g.b``,
``DZ.50``, ``AC.1``; JSON for ``pprops``/``pledpos``/``pledposna``; scans print
``scan_start:0.1.:scan_end``. ``rseq`` reports the pattern indices it showed as
``seq_start:0.1.2:seq_end`` (the emulator's format, modelled on the scan report).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from firmware_bridge.emulator import Pacer
    from firmware_bridge.geometry import ArrayGeometry

Handler = Callable[[list[str], "Pacer"], str]
_COLOR_NAMES = {"max": 255, "half": 127, "quarter": 63}


class Fail(Exception):
    """Abort a command with ``ERROR[code]`` (after the lines of ``text``, as some commands print)."""

    def __init__(self, code: int, text: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.text = text


def strtoul(tok: str) -> int:
    """C ``strtoul(tok, NULL, 0)`` as a uint32: base prefix 0x / 0, stops at the first bad char."""
    m = re.match(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)?", tok)
    if not m or not m.group(2):
        return 0
    digits = m.group(2)
    v = int(digits, 16) if digits[:2].lower() == "0x" else int(digits, 8) if digits.startswith("0") else int(digits)
    return (-v if m.group(1) == "-" else v) & 0xFFFFFFFF


def atoi(tok: str) -> int:
    """C ``atoi``: optional sign and decimal digits, 0 when there are none (int32 wrap)."""
    m = re.match(r"\s*([+-]?\d+)", tok)
    v = int(m.group(1)) if m else 0
    return (v + 2**31) % 2**32 - 2**31


def int16(v: int) -> int:
    v &= 0xFFFF
    return v - 0x10000 if v >= 0x8000 else v


class EmulatorState:
    """State attributes and helpers the handler mixins share; :class:`Emulator` defines them."""

    quirks: bool
    machine: bool
    geometry: ArrayGeometry
    channels: tuple[str, ...]
    color: list[int]
    brightness_setting: int
    value: tuple[int, ...]
    na: float
    distance_mm: float
    autoclear: bool
    sequence: list[tuple[int, ...]]
    sequence_capacity: int
    sequence_index: int
    trigger_output_count: int
    trigger_input_count: int
    trigger_output_modes: list[int]
    trigger_input_modes: list[int]
    trigger_pulse_width_us: list[int]
    trigger_delay_us: list[int]
    trigger_output_polarity: list[int]
    trigger_input_polarity: list[int]
    trigger_input_timeout_s: int
    max_current_a: float
    enforce_max_current: bool
    dialect: str
    out_of_table: list[int]
    fault_interrupt_after: int | None
    serial_number: int
    _na_table: list[tuple[float, float, float]]

    # Provided by Emulator.
    def draw(self, indices: Sequence[int], *, clear: bool = True, triggers: tuple[int, ...] = ()) -> None:
        raise NotImplementedError

    def say(self, short: str, long: str) -> str:
        raise NotImplementedError

    def power_on(self) -> None:
        raise NotImplementedError

    def banner(self) -> bytes:
        raise NotImplementedError

    @property
    def mac_address(self) -> str:
        raise NotImplementedError

    def lit(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _value_ceil(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _value_trunc(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _build_na_table(self) -> list[tuple[float, float, float]]:
        raise NotImplementedError

    # -- argument parsing --------------------------------------------------------------------
    def _uint(self, tok: str) -> int:
        if self.quirks:
            return strtoul(tok)
        if not tok.isdigit():
            raise Fail(8)
        return int(tok)

    def _sint(self, tok: str) -> int:
        if self.quirks:
            return atoi(tok)
        if not re.fullmatch(r"-?\d+", tok):
            raise Fail(8)
        return int(tok)

    def _check(self, ok: bool, code: int = 10) -> None:
        if not ok and not self.quirks:
            raise Fail(code)

    def _indices(self, toks: Sequence[str]) -> list[int]:
        n = len(self.geometry.leds)
        out: list[int] = []
        for t in toks:
            v = self._uint(t)
            if not self.quirks:
                if v >= n:
                    raise Fail(10)
                out.append(v)
                continue
            i = int16(v)  # (uint16) led_number passed as int16: negative means "every LED"
            if i < 0:
                out.extend(range(n))
            elif i >= n:
                self.out_of_table.append(i)
                out.append(i % n)
            else:
                out.append(i)
        return out



class CommandsMixin(EmulatorState):
    """Illumination, settings and query commands."""

    # -- illumination ------------------------------------------------------------------------
    def _led(self, args: list[str], pacer: Pacer) -> str:
        self._check(bool(args), 2)
        self.draw(self._indices(args), clear=self.autoclear)
        return ""

    def _clear(self, args: list[str], pacer: Pacer) -> str:
        self.draw([])
        return ""

    def _fill(self, args: list[str], pacer: Pacer) -> str:
        self.draw(range(len(self.geometry.leds)))
        return ""

    def _circle(self, lo: float, hi: float) -> list[int]:
        return [i for i, (_, _, d) in enumerate(self._na_table) if lo <= d <= hi]

    def _bf(self, args: list[str], pacer: Pacer) -> str:
        self.draw(self._circle(0.0, self.na))
        return ""

    def _df(self, args: list[str], pacer: Pacer) -> str:
        self.draw(self._circle(self.na, 1.0))
        return ""

    def _annulus(self, args: list[str], pacer: Pacer) -> str:
        self._check(len(args) in (0, 2), 2)
        if len(args) == 2:
            lo, hi = self._uint(args[0]), self._uint(args[1])
            self._check(lo < hi <= 100)
            self.draw(self._circle(lo / 100, hi / 100))
        else:
            self.draw(self._circle(self.na, min(self.na + 0.2, 1.0)))
        return ""

    # -- settings ----------------------------------------------------------------------------
    def _sb(self, args: list[str], pacer: Pacer) -> str:
        if args:
            named = {"min": 1, **_COLOR_NAMES}
            v = named[args[0]] if args[0] in named else self._uint(args[0])
            self._check(v <= 255)
            self.brightness_setting = v & 0xFF
        self.value = self._value_ceil()
        b = self.brightness_setting
        return self.say(f"SB.{b}", f"Current brightness value is {b}.")

    def _sc(self, args: list[str], pacer: Pacer) -> str:
        n = len(self.channels)
        if n == 1:
            self._check(False, 9)
            return "ERROR (LedArray::setColor): Current device does not support color illumination \n"
        if len(args) not in (0, 1, n):
            self._check(False, 2)
            return "ERROR (LedArray::setColor): Invalid color value \n"
        if len(args) == 1:
            v = _COLOR_NAMES.get(args[0])
            vals = [v if v is not None else self._sint(args[0])] * n
        else:
            vals = [self._sint(a) for a in args] or self.color
        self._check(all(0 <= v <= 255 for v in vals))
        self.color = [v & 0xFF for v in vals]
        self.value = self._value_trunc()
        c = ".".join(str(v) for v in self.color)
        return self.say(f"CO.{c}", f"Current color value is {c}")

    def _na(self, args: list[str], pacer: Pacer) -> str:
        """``na.<NA×100>``; a single digit is tenths (``na.4`` = 0.40); 0 < NA <= 1 or ERROR[10]."""
        if len(args) > 1:
            raise Fail(2)
        if args:
            v = self._sint(args[0]) / 100
            if len(args[0]) == 1:
                v *= 10
            if not 0 < v <= 1.0:
                raise Fail(10)
            self.na = v
        n = round(self.na * 100) & 0xFF
        return self.say(f"NA.{n:02d}", f"Current NA is {self.na:.2f}")

    def _sad(self, args: list[str], pacer: Pacer) -> str:
        if args:
            v = self._uint(args[0])
            self._check(1 <= v <= 255)
            if v > 0:
                self.distance_mm = float(v)
                self._na_table = self._build_na_table()
        d = round(self.distance_mm) & 0xFF
        return self.say(f"DZ.{d}", f"Current array distance from sample is {d}mm.")

    def _ac(self, args: list[str], pacer: Pacer) -> str:
        if args:  # without an argument it only reports
            v = self._sint(args[0])
            self._check(v in (0, 1))
            self.autoclear = bool(v)
        return self.say(f"AC.{int(self.autoclear)}", f"Auto clear bit is now {int(self.autoclear)}")

    def _machine(self, args: list[str], pacer: Pacer) -> str:
        self.machine = True
        return "Command output set to machine-readable\n"

    def _human(self, args: list[str], pacer: Pacer) -> str:
        self.machine = False
        return "Command output set to human-readable\n"

    def _smc(self, args: list[str], pacer: Pacer) -> str:
        """``smc.<amps>``: the current limit (whole amperes; the firmware splits arguments at ``.``)."""
        if len(args) != 1:
            raise Fail(2)
        self.max_current_a = float(self._uint(args[0]))
        return ""

    def _smce(self, args: list[str], pacer: Pacer) -> str:
        if len(args) != 1:
            raise Fail(2)
        self.enforce_max_current = self._uint(args[0]) != 0
        return ""

    def _reset(self, args: list[str], pacer: Pacer) -> str:
        self.power_on()
        return self.banner().decode()

    # -- queries -----------------------------------------------------------------------------
    def _pprops(self, args: list[str], pacer: Pacer) -> str:
        chans = ", ".join(f'"{c}"' for c in self.channels)
        waves = ", ".join(f'"{c}" : {w:.3f}' for c, w in self.geometry.wavelengths_nm.items())
        fields: list[tuple[str, Any]] = [
            ("device_name", f'"{self.geometry.name}"'), ("led_count", len(self.geometry.leds)),
            ("color_channels", f"[{chans}]"), ("color_channel_center_wavelengths", f"{{{waves}}}"),
            ("trigger_input_count", self.trigger_input_count),
            ("trigger_output_count", self.trigger_output_count), ("bit_depth", 8),
            ("serial_number", self.serial_number), ("color_channel_count", len(self.channels)),
            ("part_number", self.serial_number), ("mac_address", f'"{self.mac_address}"'),
            ("interface_version", _version()),
        ]
        return "{\n" + ",\n".join(f'    "{k}" : {v}' for k, v in fields) + "\n}"

    def _table(self, key: str, rows: list[str]) -> str:
        body = ",\n".join(f'        "{i}" : [{r}]' for i, r in enumerate(rows))
        return f'{{\n    "{key}" : {{\n{body}\n    }}\n}}'

    def _pledpos(self, args: list[str], pacer: Pacer) -> str:
        z0 = self.geometry.leds[0].z_mm
        rows = [f"{led.x_mm:.2f}, {led.y_mm:.2f}, {led.z_mm - z0 + self.distance_mm:.2f}"
                for led in self.geometry.leds]
        return self._table("led_position_list_cartesian", rows)

    def _pledposna(self, args: list[str], pacer: Pacer) -> str:
        return self._table("led_position_list_na", [f"{nx:.3f}, {ny:.3f}" for nx, ny, _ in self._na_table])


def _version() -> str:
    from firmware_bridge.emulator import FIRMWARE_VERSION

    return FIRMWARE_VERSION

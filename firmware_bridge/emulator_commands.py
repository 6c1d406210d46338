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
MIN_SEQUENCE_DELAY_MS = 5
SCAN_DELAY_MAX_MS = 2000
_COLOR_NAMES = {"max": 255, "half": 127, "quarter": 63}


class Fail(Exception):
    """Abort a command with ``ERROR[code]``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


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


class CommandsMixin:
    """The command set. Relies on the state attributes :class:`Emulator` defines."""

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
    trigger_pulse_width_us: int
    trigger_delay_us: int
    out_of_table: list[int]
    fault_interrupt_after: int | None
    serial_number: int
    mac_address: str
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

    def lit(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _value_ceil(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _value_trunc(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _build_na_table(self) -> list[tuple[float, float, float]]:
        raise NotImplementedError

    def handlers(self) -> dict[str, Handler]:
        return {
            "l": self._led, "x": self._clear, "ff": self._fill, "bf": self._bf, "df": self._df,
            "an": self._annulus, "sb": self._sb, "sc": self._sc, "na": self._na, "sad": self._sad,
            "ac": self._ac, "machine": self._machine, "human": self._human, "pprops": self._pprops,
            "pp": self._pprops, "pledpos": self._pledpos, "pledposna": self._pledposna,
            "version": lambda a, p: f"{_version()}\n", "about": lambda a, p: self.banner().decode(),
            "reset": self._reset, "?": lambda a, p: " ".join(sorted(self.handlers())) + "\n",
            "ssl": self._ssl, "ssv": self._ssv, "rseq": self._rseq, "sseq": self._sseq,
            "xseq": self._xseq, "pseq": self._pseq, "scf": self._scf, "scb": self._scb,
            "tr": self._tr, "troutputmode": self._trmode, "trinputmode": self._trmode_in,
            "troutputpulsewidth": self._trpw, "troutputdelay": self._trdelay, "delay": self._delay,
        }

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
            v = _COLOR_NAMES.get(args[0], None)
            vals = [v if v is not None else self._sint(args[0])] * n
        else:
            vals = [self._sint(a) for a in args] or self.color
        self._check(all(0 <= v <= 255 for v in vals))
        self.color = [v & 0xFF for v in vals]
        self.value = self._value_trunc()
        c = ".".join(str(v) for v in self.color)
        return self.say(f"CO.{c}", f"Current color value is {c}")

    def _na(self, args: list[str], pacer: Pacer) -> str:
        pre = ""
        if len(args) > 1:
            self._check(False, 2)
            pre = "ERROR (LedArray::setNa): wrong number of arguments.\n"
        elif args:
            v = self._sint(args[0])
            if 0 < v < 100:
                self.na = v / 100
            else:
                self._check(False)
                pre = "ERROR (LedArray::setNa): invalid NA. Make sure NA is 100*na\n"
        n = round(self.na * 100) & 0xFF
        return pre + self.say(f"NA.{n}", f"Current NA is 0.{n}.")

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
        if args:
            v = self._sint(args[0])
            self._check(v in (0, 1))
            self.autoclear = bool(v)
        else:
            self.autoclear = not self.autoclear
        return self.say(f"AC.{int(self.autoclear)}", f"Auto clear bit is now {int(self.autoclear)}")

    def _machine(self, args: list[str], pacer: Pacer) -> str:
        self.machine = True
        return "Command output set to machine-readable\n"

    def _human(self, args: list[str], pacer: Pacer) -> str:
        self.machine = False
        return "Command output set to human-readable\n"

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

    # -- sequences and scans -----------------------------------------------------------------
    def _ssl(self, args: list[str], pacer: Pacer) -> str:
        self._check(len(args) == 1, 2)
        n = self._uint(args[0]) & 0xFFFF if args else 0
        self._check(1 <= n <= 2048)
        self.sequence, self.sequence_capacity, self.sequence_index = [], n, 0
        return f"New sequence length is: {n}\n"

    def _ssv(self, args: list[str], pacer: Pacer) -> str:
        self._check(bool(args), 2)
        count = self._uint(args[0]) if args else 0
        self._check(count == len(args) - 1, 2)
        leds = tuple(self._indices(args[1:]))
        if len(self.sequence) >= self.sequence_capacity:
            self._check(False, 19)
            return ""  # the firmware's incriment() fails silently when the sequence is full
        self.sequence.append(leds)
        return ""

    def _play(self, patterns: Sequence[Sequence[int]], delay_ms: int, repeats: int,
              pulse: Callable[[int, int], tuple[int, ...]], pacer: Pacer) -> tuple[list[int], bool]:
        shown: list[int] = []
        for rep in range(repeats):
            for k, pattern in enumerate(patterns):
                stop_at = self.fault_interrupt_after
                if pacer.input_pending() or (stop_at is not None and len(shown) >= stop_at):
                    self.fault_interrupt_after = None
                    if not self.quirks:
                        self.draw([])
                    return shown, True
                self.draw(pattern, triggers=pulse(rep, k))
                shown.append(k)
                pacer.wait(delay_ms / 1000.0)
        self.draw([])
        return shown, False

    def _rseq(self, args: list[str], pacer: Pacer) -> str:
        if not args:
            raise Fail(2)
        delay, repeats = self._uint(args[0]) & 0xFFFF, (self._uint(args[1]) & 0xFFFF if len(args) > 1 else 1)
        modes = [self._sint(a) for a in args[2:]]
        n_pairs = max(self.trigger_output_count, self.trigger_input_count)
        self._check(len(modes) <= 2 * n_pairs, 2)
        outs = (modes[0::2] + [0] * n_pairs)[: self.trigger_output_count]
        self._check(repeats >= 1 and all(m >= -2 for m in modes))
        if delay < MIN_SEQUENCE_DELAY_MS:
            self._check(False, 13)
            return (f"ERROR: Sequance delay ({delay}ms) was shorter than MIN_SEQUENCE_DELAY "
                    f"({MIN_SEQUENCE_DELAY_MS}ms).\n")

        def pulse(rep: int, k: int) -> tuple[int, ...]:
            return tuple(t for t, m in enumerate(outs)
                         if (m > 0 and k % m == 0) or (m == -1 and k == 0) or (m == -2 and rep == 0 and k == 0))

        shown, interrupted = self._play(self.sequence, delay, repeats, pulse, pacer)
        self._check(not interrupted, 15)
        return "seq_start:" + ".".join(str(k) for k in shown) + ":seq_end\n"

    def _sseq(self, args: list[str], pacer: Pacer) -> str:
        if not self.sequence:
            self._check(False, 12)
            self.draw([])
            return "Displayed pattern # 0 of 0\n"
        # The firmware zeroes the output modes after parsing them, so sseq never pulses (quirk).
        outs = [0] * self.trigger_output_count if self.quirks else [self._sint(a) for a in args]
        if self.sequence_index >= len(self.sequence):
            self.sequence_index = 0
        k = self.sequence_index
        pulses = tuple(t for t, m in enumerate(outs[: self.trigger_output_count])
                       if (m > 0 and k % m == 0) or (m < 0 and k == 0))
        self.draw(self.sequence[k], triggers=pulses)
        self.sequence_index += 1
        return f"Displayed pattern # {self.sequence_index} of {len(self.sequence)}\n"

    def _xseq(self, args: list[str], pacer: Pacer) -> str:
        self.sequence_index = 0
        return ""

    def _pseq(self, args: list[str], pacer: Pacer) -> str:
        lines = [f"Sequence has {self.sequence_capacity}x 1 bit patterns:"]
        lines += [f"{k}: " + ".".join(str(i) for i in p) for k, p in enumerate(self.sequence)]
        return "\n".join(lines) + "\n"

    def _scan(self, args: list[str], pacer: Pacer, hi: float) -> str:
        delay = self._uint(args[0]) & 0xFFFF if args else 0
        self._check(delay < SCAN_DELAY_MAX_MS)
        leds = [i for i, (_, _, d) in enumerate(self._na_table) if d <= hi]
        outs = self.trigger_output_modes

        def pulse(rep: int, k: int) -> tuple[int, ...]:  # scan semantics: -1 every LED, -2 once
            return tuple(t for t, m in enumerate(outs) if m == -1 or (m == -2 and k == 0))

        shown, interrupted = self._play([(i,) for i in leds], delay, 1, pulse, pacer)
        self._check(not interrupted, 15)
        last = len(self.geometry.leds) - 1
        if self.quirks:  # a delimiter after every index except the array's last LED
            text = "".join(f"{leds[k]}" + ("" if leds[k] == last else ".") for k in shown)
        else:
            text = ".".join(str(leds[k]) for k in shown)
        return f"scan_start:{text}:scan_end\n"

    def _scf(self, args: list[str], pacer: Pacer) -> str:
        return self._scan(args, pacer, 1.0)

    def _scb(self, args: list[str], pacer: Pacer) -> str:
        return self._scan(args, pacer, self.na)

    # -- triggers ----------------------------------------------------------------------------
    def _tr(self, args: list[str], pacer: Pacer) -> str:
        t = self._uint(args[0]) if args else 0
        if t >= self.trigger_output_count:
            self._check(False)
            return "ERROR - pin not configured! \n"
        self.draw(self.lit(), clear=False, triggers=(t,))
        return ""

    def _set_mode(self, args: list[str], modes: list[int]) -> str:
        self._check(len(args) == 2, 2)
        if len(args) == 2:
            t, m = self._uint(args[0]), self._sint(args[1])
            self._check(t < len(modes) and m >= -2)
            if t < len(modes):
                modes[t] = m
        return ""

    def _trmode(self, args: list[str], pacer: Pacer) -> str:
        return self._set_mode(args, self.trigger_output_modes)

    def _trmode_in(self, args: list[str], pacer: Pacer) -> str:
        return self._set_mode(args, self.trigger_input_modes)

    def _trpw(self, args: list[str], pacer: Pacer) -> str:
        self._check(len(args) == 1, 2)
        if args:
            self.trigger_pulse_width_us = self._uint(args[0])
        return ""

    def _trdelay(self, args: list[str], pacer: Pacer) -> str:
        self._check(len(args) == 1, 2)
        if args:
            self.trigger_delay_us = self._uint(args[0])
        return ""

    def _delay(self, args: list[str], pacer: Pacer) -> str:
        self._check(len(args) == 1, 2)
        pacer.wait((self._uint(args[0]) if args else 0) / 1000.0)
        return ""


def _version() -> str:
    from firmware_bridge.emulator import FIRMWARE_VERSION

    return FIRMWARE_VERSION

"""Sequence, scan and trigger commands of the illuminate emulator.

Trigger-mode semantics differ between ``rseq`` and the scans, as in the firmware: in ``rseq`` a
mode ``n > 0`` pulses every n-th pattern, ``-1`` at the first pattern of every repeat and ``-2``
only at the very first pattern; in a scan ``-1`` pulses at every LED and ``-2`` once at the start.

v2.32 (``dialect == "v2"``): ``rseq[.delay_ms[.count]]`` (delay 0, or 5..2000 ms; more arguments are
ERROR[8]) runs with the trigger modes set beforehand by ``troutputmode.<i>.<mode>`` /
``trinputmode.<i>.<mode>`` or ``trs.<i>.<in_mode>.<out_mode>.<width_us>.<delay_us>``; it prints an
empty line on success, clears the array and answers ERROR[15] when input arrives while it runs. The
older ``"v1"`` dialect takes ``rseq.<delay>.<count>.<out0>.<in0>.<out1>.<in1>`` and reports the
patterns shown as ``seq_start:0.1.2:seq_end``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from firmware_bridge.emulator_commands import EmulatorState, Fail

if TYPE_CHECKING:
    from firmware_bridge.emulator import Pacer

MIN_SEQUENCE_DELAY_MS = 5
MAX_SEQUENCE_DELAY_MS = 2000
SCAN_DELAY_MAX_MS = 2000


class SequenceMixin(EmulatorState):
    """``ssl``/``ssv``/``rseq``/``sseq``/``xseq``/``pseq``, ``scf``/``scb`` and the trigger commands."""

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
            raise Fail(19)
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
                    if not (self.quirks and self.dialect == "v1"):  # old firmware left the pattern lit
                        self.draw([])
                    return shown, True
                self.draw(pattern, triggers=pulse(rep, k))
                shown.append(k)
                pacer.wait(delay_ms / 1000.0)
        self.draw([])
        return shown, False

    def _rseq(self, args: list[str], pacer: Pacer) -> str:
        if self.dialect == "v1":
            return self._rseq_v1(args, pacer)
        if len(args) > 2:
            raise Fail(8)
        delay = self._uint(args[0]) & 0xFFFF if args else 500
        repeats = self._uint(args[1]) & 0xFFFF if len(args) > 1 else 1
        self._check_delay(delay)
        _, interrupted = self._play(self.sequence, delay, repeats, self._rseq_pulses(self.trigger_output_modes), pacer)
        if interrupted:
            raise Fail(15)
        return "\n"

    def _check_delay(self, delay: int) -> None:
        for bad, word, limit in ((0 < delay < MIN_SEQUENCE_DELAY_MS, "shorter", "MIN"),
                                 (delay > MAX_SEQUENCE_DELAY_MS, "greater", "MAX")):
            if bad:
                ms = MIN_SEQUENCE_DELAY_MS if limit == "MIN" else MAX_SEQUENCE_DELAY_MS
                raise Fail(13, f"ERROR: Sequance delay ({delay}ms) was {word} than {limit}_SEQUENCE_DELAY ({ms}ms).\n")

    @staticmethod
    def _rseq_pulses(outs: Sequence[int]) -> Callable[[int, int], tuple[int, ...]]:
        def pulse(rep: int, k: int) -> tuple[int, ...]:
            return tuple(t for t, m in enumerate(outs)
                         if (m > 0 and k % m == 0) or (m == -1 and k == 0) or (m == -2 and rep == 0 and k == 0))
        return pulse

    def _rseq_v1(self, args: list[str], pacer: Pacer) -> str:
        """The older dialect: trigger modes as ``rseq`` arguments, an index report."""
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
        shown, interrupted = self._play(self.sequence, delay, repeats, self._rseq_pulses(outs), pacer)
        self._check(not interrupted, 15)
        return "seq_start:" + ".".join(str(k) for k in shown) + ":seq_end\n"

    def _sseq(self, args: list[str], pacer: Pacer) -> str:
        if not self.sequence:
            self._check(False, 12)
            self.draw([])
            return "Displayed pattern # 0 of 0\n"
        # The firmware ignores sseq's arguments and pulses by the configured output modes.
        outs = self.trigger_output_modes if self.quirks else [self._sint(a) for a in args]
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

    def _scan(self, args: list[str], pacer: Pacer, lo: float, hi: float) -> str:
        delay = self._uint(args[0]) & 0xFFFF if args else 0
        self._check(delay < SCAN_DELAY_MAX_MS)
        leds = [i for i, (_, _, d) in enumerate(self._na_table) if lo <= d <= hi]  # as bf / df draw them
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
        return self._scan(args, pacer, 0.0, 1.0)

    def _scb(self, args: list[str], pacer: Pacer) -> str:
        return self._scan(args, pacer, 0.0, self.na)

    def _scd(self, args: list[str], pacer: Pacer) -> str:
        return self._scan(args, pacer, self.na, 1.0)

    # -- triggers ----------------------------------------------------------------------------
    def _tr(self, args: list[str], pacer: Pacer) -> str:
        t = self._uint(args[0]) if args else 0
        if t >= self.trigger_output_count:
            self._check(False)
            return "ERROR - pin not configured! \n"
        self.draw(self.lit(), clear=False, triggers=(t,))
        return ""

    def _per_channel(self, args: list[str], values: list[int], lo: int = 0) -> None:
        """``cmd.<value>`` (channel 0) or ``cmd.<channel>.<value>``, as the trigger setters take them."""
        if len(args) not in (1, 2):
            raise Fail(2)
        t, v = (0, self._sint(args[0])) if len(args) == 1 else (self._uint(args[0]), self._sint(args[1]))
        if t >= len(values) or v < lo:
            raise Fail(10)
        values[t] = v

    def _trmode(self, args: list[str], pacer: Pacer) -> str:
        self._per_channel(args, self.trigger_output_modes, -2)
        return ""

    def _trmode_in(self, args: list[str], pacer: Pacer) -> str:
        self._per_channel(args, self.trigger_input_modes, -2)
        return ""

    def _trpw(self, args: list[str], pacer: Pacer) -> str:
        self._per_channel(args, self.trigger_pulse_width_us, 1)
        return ""

    def _trdelay(self, args: list[str], pacer: Pacer) -> str:
        self._per_channel(args, self.trigger_delay_us)
        return ""

    def _trpol(self, args: list[str], pacer: Pacer) -> str:
        self._per_channel(args, self.trigger_output_polarity)
        return ""

    def _trpol_in(self, args: list[str], pacer: Pacer) -> str:
        self._per_channel(args, self.trigger_input_polarity)
        return ""

    def _trtimeout(self, args: list[str], pacer: Pacer) -> str:
        if len(args) != 1:
            raise Fail(2)
        self.trigger_input_timeout_s = self._uint(args[0])
        return ""

    def _trs(self, args: list[str], pacer: Pacer) -> str:
        """``trs.<i>.<in_mode>.<out_mode>.<width_us>.<delay_us>``: one trigger channel at once."""
        if len(args) != 5:
            raise Fail(2)
        t = self._uint(args[0])
        in_mode, out_mode = self._sint(args[1]), self._sint(args[2])
        width, delay = self._uint(args[3]), self._uint(args[4])
        if t >= self.trigger_output_count or min(in_mode, out_mode) < -2 or width < 1:
            raise Fail(10)
        if t < self.trigger_input_count:
            self.trigger_input_modes[t] = in_mode
        self.trigger_output_modes[t] = out_mode
        self.trigger_pulse_width_us[t], self.trigger_delay_us[t] = width, delay
        return ""

    def _delay(self, args: list[str], pacer: Pacer) -> str:
        self._check(len(args) == 1, 2)
        pacer.wait((self._uint(args[0]) if args else 0) / 1000.0)
        return ""

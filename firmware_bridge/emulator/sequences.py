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

from firmware_bridge.emulator.handlers import leds_within
from firmware_bridge.emulator.parsing import Fail, Handler, Pacer, check, indices, sint, uint
from firmware_bridge.emulator.state import EmulatorState, draw, lit

MIN_SEQUENCE_DELAY_MS = 5
MAX_SEQUENCE_DELAY_MS = 2000
SCAN_DELAY_MAX_MS = 2000


# -- sequences and scans ---------------------------------------------------------------------
def set_sequence_length(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    check(s, len(args) == 1, 2)
    n = uint(s, args[0]) & 0xFFFF if args else 0
    check(s, 1 <= n <= 2048)
    s.sequence, s.sequence_capacity, s.sequence_index = [], n, 0
    return f"New sequence length is: {n}\n"


def set_sequence_value(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    check(s, bool(args), 2)
    count = uint(s, args[0]) if args else 0
    check(s, count == len(args) - 1, 2)
    leds = tuple(indices(s, args[1:]))
    if len(s.sequence) >= s.sequence_capacity:
        raise Fail(19)
    s.sequence.append(leds)
    return ""


def _play(s: EmulatorState, patterns: Sequence[Sequence[int]], delay_ms: int, repeats: int,
          pulse: Callable[[int, int], tuple[int, ...]], pacer: Pacer) -> tuple[list[int], bool]:
    shown: list[int] = []
    for rep in range(repeats):
        for k, pattern in enumerate(patterns):
            stop_at = s.fault_interrupt_after
            if pacer.input_pending() or (stop_at is not None and len(shown) >= stop_at):
                s.fault_interrupt_after = None
                if not (s.quirks and s.dialect == "v1"):  # old firmware left the pattern lit
                    draw(s, [])
                return shown, True
            draw(s, pattern, triggers=pulse(rep, k))
            shown.append(k)
            pacer.wait(delay_ms / 1000.0)
    draw(s, [])
    return shown, False


def run_sequence(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    """v2.32 ``rseq[.delay_ms[.count]]``, triggering by the modes configured beforehand."""
    if len(args) > 2:
        raise Fail(8)
    delay = uint(s, args[0]) & 0xFFFF if args else 500
    repeats = uint(s, args[1]) & 0xFFFF if len(args) > 1 else 1
    _check_delay(delay)
    _, interrupted = _play(s, s.sequence, delay, repeats, _rseq_pulses(s.trigger_output_modes), pacer)
    if interrupted:
        raise Fail(15)
    return "\n"


def _check_delay(delay: int) -> None:
    for bad, word, limit in ((0 < delay < MIN_SEQUENCE_DELAY_MS, "shorter", "MIN"),
                             (delay > MAX_SEQUENCE_DELAY_MS, "greater", "MAX")):
        if bad:
            ms = MIN_SEQUENCE_DELAY_MS if limit == "MIN" else MAX_SEQUENCE_DELAY_MS
            raise Fail(13, f"ERROR: Sequance delay ({delay}ms) was {word} than {limit}_SEQUENCE_DELAY ({ms}ms).\n")


def _rseq_pulses(outs: Sequence[int]) -> Callable[[int, int], tuple[int, ...]]:
    def pulse(rep: int, k: int) -> tuple[int, ...]:
        return tuple(t for t, m in enumerate(outs)
                     if (m > 0 and k % m == 0) or (m == -1 and k == 0) or (m == -2 and rep == 0 and k == 0))
    return pulse


def run_sequence_v1(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    """The older dialect: trigger modes as ``rseq`` arguments, an index report."""
    if not args:
        raise Fail(2)
    delay, repeats = uint(s, args[0]) & 0xFFFF, (uint(s, args[1]) & 0xFFFF if len(args) > 1 else 1)
    modes = [sint(s, a) for a in args[2:]]
    n_pairs = max(s.trigger_output_count, s.trigger_input_count)
    check(s, len(modes) <= 2 * n_pairs, 2)
    outs = (modes[0::2] + [0] * n_pairs)[: s.trigger_output_count]
    check(s, repeats >= 1 and all(m >= -2 for m in modes))
    if delay < MIN_SEQUENCE_DELAY_MS:
        check(s, False, 13)
        return (f"ERROR: Sequance delay ({delay}ms) was shorter than MIN_SEQUENCE_DELAY "
                f"({MIN_SEQUENCE_DELAY_MS}ms).\n")
    shown, interrupted = _play(s, s.sequence, delay, repeats, _rseq_pulses(outs), pacer)
    check(s, not interrupted, 15)
    return "seq_start:" + ".".join(str(k) for k in shown) + ":seq_end\n"


def step_sequence(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    if not s.sequence:
        check(s, False, 12)
        draw(s, [])
        return "Displayed pattern # 0 of 0\n"
    # The firmware ignores sseq's arguments and pulses by the configured output modes.
    outs = s.trigger_output_modes if s.quirks else [sint(s, a) for a in args]
    if s.sequence_index >= len(s.sequence):
        s.sequence_index = 0
    k = s.sequence_index
    pulses = tuple(t for t, m in enumerate(outs[: s.trigger_output_count])
                   if (m > 0 and k % m == 0) or (m < 0 and k == 0))
    draw(s, s.sequence[k], triggers=pulses)
    s.sequence_index += 1
    return f"Displayed pattern # {s.sequence_index} of {len(s.sequence)}\n"


def reset_sequence(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    s.sequence_index = 0
    return ""


def print_sequence(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    lines = [f"Sequence has {s.sequence_capacity}x 1 bit patterns:"]
    lines += [f"{k}: " + ".".join(str(i) for i in p) for k, p in enumerate(s.sequence)]
    return "\n".join(lines) + "\n"


def _scan(s: EmulatorState, args: list[str], pacer: Pacer, lo: float, hi: float) -> str:
    delay = uint(s, args[0]) & 0xFFFF if args else 0
    check(s, delay < SCAN_DELAY_MAX_MS)
    leds = leds_within(s, lo, hi)  # as bf / df draw them
    outs = s.trigger_output_modes

    def pulse(rep: int, k: int) -> tuple[int, ...]:  # scan semantics: -1 every LED, -2 once
        return tuple(t for t, m in enumerate(outs) if m == -1 or (m == -2 and k == 0))

    shown, interrupted = _play(s, [(i,) for i in leds], delay, 1, pulse, pacer)
    check(s, not interrupted, 15)
    last = len(s.geometry.leds) - 1
    if s.quirks:  # a delimiter after every index except the array's last LED
        text = "".join(f"{leds[k]}" + ("" if leds[k] == last else ".") for k in shown)
    else:
        text = ".".join(str(leds[k]) for k in shown)
    return f"scan_start:{text}:scan_end\n"


def scan_full(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    return _scan(s, args, pacer, 0.0, 1.0)


def scan_brightfield(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    return _scan(s, args, pacer, 0.0, s.na)


def scan_darkfield(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    return _scan(s, args, pacer, s.na, 1.0)


# -- triggers --------------------------------------------------------------------------------
def trigger(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    t = uint(s, args[0]) if args else 0
    if t >= s.trigger_output_count:
        check(s, False)
        return "ERROR - pin not configured! \n"
    draw(s, lit(s), clear=False, triggers=(t,))
    return ""


def _per_channel(s: EmulatorState, args: list[str], values: list[int], lo: int = 0) -> None:
    """``cmd.<value>`` (channel 0) or ``cmd.<channel>.<value>``, as the trigger setters take them."""
    if len(args) not in (1, 2):
        raise Fail(2)
    t, v = (0, sint(s, args[0])) if len(args) == 1 else (uint(s, args[0]), sint(s, args[1]))
    if t >= len(values) or v < lo:
        raise Fail(10)
    values[t] = v


def per_channel_setter(values: Callable[[EmulatorState], list[int]], lo: int = 0) -> Handler:
    """A handler that sets one trigger channel's entry of ``values(state)`` (``troutputmode`` & co.)."""

    def handler(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
        _per_channel(s, args, values(s), lo)
        return ""

    return handler


def set_trigger_input_timeout(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    if len(args) != 1:
        raise Fail(2)
    s.trigger_input_timeout_s = uint(s, args[0])
    return ""


def setup_trigger(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    """``trs.<i>.<in_mode>.<out_mode>.<width_us>.<delay_us>``: one trigger channel at once."""
    if len(args) != 5:
        raise Fail(2)
    t = uint(s, args[0])
    in_mode, out_mode = sint(s, args[1]), sint(s, args[2])
    width, delay = uint(s, args[3]), uint(s, args[4])
    if t >= s.trigger_output_count or min(in_mode, out_mode) < -2 or width < 1:
        raise Fail(10)
    if t < s.trigger_input_count:
        s.trigger_input_modes[t] = in_mode
    s.trigger_output_modes[t] = out_mode
    s.trigger_pulse_width_us[t], s.trigger_delay_us[t] = width, delay
    return ""


def pause(s: EmulatorState, args: list[str], pacer: Pacer) -> str:
    check(s, len(args) == 1, 2)
    pacer.wait((uint(s, args[0]) if args else 0) / 1000.0)
    return ""

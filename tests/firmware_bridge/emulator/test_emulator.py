"""The emulator's dialect, without I/O: strict behaviour, the firmware's quirks, the camera view."""

from __future__ import annotations

import threading

import pytest

from firmware_bridge.emulator import Emulator, Illumination
from firmware_bridge.emulator.parsing import atoi, strtoul
from firmware_bridge.rigs import get_profile


def test_reply_framing(thesis: Emulator) -> None:
    assert thesis.handle_line("machine") == b"Command output set to machine-readable\n-==-\n"
    assert thesis.handle_line("l.5.9") == b"-==-\n"
    assert thesis.handle_line("sb.128") == b"SB.128\n-==-\n"
    assert thesis.handle_line("frobnicate") == b"ERROR[16]: Invalid command.\n"
    assert thesis.handle_line("") == b""
    assert thesis.handle_line("pprops").endswith(b"}-==-\n")


def test_strict_emulator_checks_ranges(strict: Emulator) -> None:
    strict.handle_line("l.5")
    for line in ("l.43", "l.99999", "sb.300", "na.0", "an.60.40", "sad.0", "rseq.2.1"):
        assert b"ERROR[" in strict.handle_line(line), line
    assert strict.lit() == (5,)
    assert strict.handle_line("l.x") == b"ERROR[8]: Invalid argument.\n"
    assert strict.handle_line("l") == b"ERROR[2]: Wrong number of arguments.\n"


def test_v232_led_index_is_a_signed_16_bit_value(thesis: Emulator) -> None:
    for line in ("l.99999", "l.32768", "l.-1"):  # (uint16) -> int16 < 0: every LED
        thesis.handle_line("x")
        assert thesis.handle_line(line) == b"-==-\n" and thesis.lit() == tuple(range(43)), line
    thesis.handle_line("l.32767")  # past the position table: an undefined LED
    assert thesis.out_of_table == [32767] and len(thesis.lit()) == 1
    assert thesis.handle_line("l.010") == b"-==-\n" and thesis.lit() == (8,)  # strtoul base 0: octal
    assert thesis.handle_line("l") == b"-==-\n" and thesis.lit() == ()  # no argument lights nothing
    round257 = Emulator(get_profile("sci-round-257"))
    round257.handle_line("l.257")  # one past a 257-LED board's table: undefined on the device
    assert round257.out_of_table == [257] and len(round257.lit()) == 1


def test_v232_settings_wrap_and_na_takes_tenths(thesis: Emulator) -> None:
    assert thesis.handle_line("sb.300") == b"Current brightness value is 44.\n-==-\n"
    thesis.handle_line("machine")
    assert thesis.handle_line("na.4") == b"NA.40\n-==-\n" and thesis.na == 0.4
    assert thesis.handle_line("na.25") == b"NA.25\n-==-\n"
    assert thesis.handle_line("na.100") == b"NA.100\n-==-\n"
    for bad in ("na.0", "na.101"):
        assert thesis.handle_line(bad) == b"ERROR[10]: Invalid argument range.\n", bad
    assert thesis.na == 1.0
    assert thesis.handle_line("ac") == b"AC.1\n-==-\n" and thesis.handle_line("ac") == b"AC.1\n-==-\n"
    assert thesis.handle_line("ac.0") == b"AC.0\n-==-\n" and not thesis.autoclear


def test_v232_version_and_no_ver(thesis: Emulator) -> None:
    assert thesis.handle_line("version") == b"2.32\n-==-\n"
    assert thesis.handle_line("ver") == b"ERROR[16]: Invalid command.\n"


def test_over_current_prints_an_error_then_the_success_terminator(thesis: Emulator) -> None:
    thesis.handle_line("l.3")
    assert thesis.handle_line("smc.1") == b"-==-\n"
    reply = thesis.handle_line("ff")  # 43 LEDs x 3 channels x 85/255 x 20 mA = 0.86 A: fine
    assert reply == b"-==-\n" and len(thesis.lit()) == 43
    thesis.handle_line("sc.255")  # 2.58 A > 1 A: refused, the old pattern stays
    reply = thesis.handle_line("ff")
    assert reply == b"ERROR: Current output (2.58) exceeds maximum current output (1.00)\n-==-\n"
    assert len(thesis.lit()) == 43 and thesis.illumination().brightness["r"] == 85 / 255


def test_c_number_parsing() -> None:
    parsed = (strtoul("12abc"), strtoul("0x1f"), strtoul("017"), strtoul("-1"), strtoul("x"))
    assert parsed == (12, 31, 15, 2**32 - 1, 0)
    assert (atoi("-2"), atoi("7.5"), atoi("")) == (-2, 7, 0)


def test_brightness_combines_sb_and_sc_like_the_firmware() -> None:
    emu = Emulator(get_profile("thesis-43"))
    emu.handle_line("l.1")
    assert emu.illumination() == Illumination((1,), {"r": 85 / 255, "g": 85 / 255, "b": 85 / 255})
    emu.handle_line("sb.128")  # ceil(85/255*128) = 43
    emu.handle_line("l.1")
    assert emu.illumination().brightness["r"] == 43 / 255
    emu.handle_line("sc.255.128.0")  # (uint8)(c/255*128): 128, 64, 0
    emu.handle_line("l.1")
    assert emu.illumination().brightness == {"r": 128 / 255, "g": 64 / 255, "b": 0.0}


def test_patterns_follow_the_na_table(thesis: Emulator) -> None:
    g = thesis.geometry
    thesis.handle_line("bf")
    assert thesis.lit() == g.brightfield_indices
    thesis.handle_line("df")
    assert thesis.lit() == g.darkfield_indices
    thesis.handle_line("sad.30")  # closer array: larger NAs, fewer LEDs inside NA 0.4
    thesis.handle_line("bf")
    assert set(thesis.lit()) < set(g.brightfield_indices)


def test_v232_rseq_takes_at_most_delay_and_count(thesis: Emulator) -> None:
    for line in ("ssl.3", "ssv.1.4", "ssv.2.5.6", "ssv.0"):
        assert thesis.handle_line(line).endswith(b"-==-\n"), line
    assert thesis.handle_line("ssv.1.7") == b"ERROR[19]: Sequence is full.\n"
    assert thesis.handle_line("rseq.5.1.1.0") == b"ERROR[8]: Invalid argument.\n"  # the old trigger arguments
    assert thesis.handle_line("rseq.5.2") == b"\n-==-\n" and thesis.trigger_pulses == [0, 0]
    assert thesis.handle_line("rseq.0") == b"\n-==-\n"  # 0: as fast as the array updates
    for delay, word, limit in ((4, "shorter", "MIN_SEQUENCE_DELAY (5ms)"),
                               (2001, "greater", "MAX_SEQUENCE_DELAY (2000ms)")):
        assert thesis.handle_line(f"rseq.{delay}") == (
            f"ERROR: Sequance delay ({delay}ms) was {word} than {limit}.\nERROR[13]: "
            "Sequence period was shorter than LED update rate.\n").encode()


def test_v232_trigger_outputs_are_configured_before_the_sequence(thesis: Emulator) -> None:
    for line in ("ssl.3", "ssv.1.4", "ssv.2.5.6", "ssv.0"):
        thesis.handle_line(line)
    for line in ("troutputmode.0.1", "troutputmode.1.-2", "troutputpulsewidth.250", "troutputdelay.1.30",
                 "troutputpolarity.0", "trinputmode.1.-1", "trinputtimeout.10", "trinputpolarity.1.0"):
        assert thesis.handle_line(line) == b"-==-\n", line
    assert (thesis.trigger_pulse_width_us, thesis.trigger_delay_us, thesis.trigger_output_polarity) == (
        [250, 1000], [0, 30], [0, 1])
    assert (thesis.trigger_input_modes, thesis.trigger_input_timeout_s, thesis.trigger_input_polarity) == (
        [0, -1], 10, [1, 0])
    thesis.handle_line("rseq.5.2")  # output 0 every pattern, output 1 once at the start
    assert thesis.trigger_pulses == [6, 1]
    assert thesis.handle_line("trs.1.0.-1.500.0") == b"-==-\n"  # -1: once per repeat
    thesis.handle_line("rseq.5.2")
    assert thesis.trigger_pulses == [12, 3] and thesis.trigger_pulse_width_us[1] == 500
    assert thesis.handle_line("troutputmode.0.-3") == b"ERROR[10]: Invalid argument range.\n"
    assert thesis.handle_line("sseq.0") == b"Displayed pattern # 1 of 3\n-==-\n"  # arguments ignored
    assert thesis.lit() == (4,) and thesis.trigger_pulses[0] == 13


def test_v1_firmware_takes_trigger_modes_on_rseq() -> None:
    old = Emulator(get_profile("thesis-43"), version="1.9")
    for line in ("ssl.3", "ssv.1.4", "ssv.2.5.6", "ssv.0"):
        old.handle_line(line)
    assert old.handle_line("rseq.5.2.1.0") == b"seq_start:0.1.2.0.1.2:seq_end\n-==-\n"
    assert old.trigger_pulses == [6, 0]
    old.handle_line("rseq.5.2.-2.0.-1.0")
    assert old.trigger_pulses == [7, 2]


def test_interrupted_sequence(thesis: Emulator, strict: Emulator) -> None:
    for emu in (thesis, strict):
        emu.handle_line("ssl.5")
        for i in range(5):
            emu.handle_line(f"ssv.1.{i}")
        emu.fault_interrupt_after = 2
        assert emu.handle_line("rseq.5.1") == b"ERROR[15]: Command interrupted.\n"
        assert emu.lit() == ()  # v2.32 clears the array when it stops


def test_scan_report_has_the_firmware_trailing_delimiter(thesis: Emulator) -> None:
    assert thesis.handle_line("scb") == b"scan_start:0.1.2.3.4.11.12.19.20.27.28.35.36.:scan_end\n-==-\n"
    assert thesis.handle_line("scd").startswith(b"scan_start:5.6.")


def test_wait_for_change_and_listeners(thesis: Emulator) -> None:
    seen: list[tuple[Illumination, tuple[int, ...]]] = []
    thesis.add_listener(lambda ill, trig: seen.append((ill, trig)))
    start = thesis.change_count
    t = threading.Thread(target=thesis.handle_line, args=("l.7",))
    t.start()
    assert thesis.wait_for_change(start, timeout=5.0) != start
    t.join()
    assert seen[-1][0].leds == (7,)
    thesis.handle_line("tr.1")
    assert seen[-1][1] == (1,)


@pytest.mark.parametrize("profile", ["thesis-43", "sci-round-257"])
def test_pprops_describes_the_profile(profile: str) -> None:
    emu = Emulator(get_profile(profile))
    text = emu.handle_line("pprops").decode()
    assert f'"led_count" : {len(emu.geometry.leds)}' in text and '"interface_version" : 2.32' in text

"""The emulator's dialect, without I/O: strict behaviour, the firmware's quirks, the camera view."""

from __future__ import annotations

import threading

import pytest

from firmware_bridge.emulator import Emulator, Illumination
from firmware_bridge.emulator_commands import atoi, strtoul
from firmware_bridge.geometry import get_profile


def test_reply_framing(thesis: Emulator) -> None:
    assert thesis.handle_line("machine") == b"Command output set to machine-readable\n-==-\n"
    assert thesis.handle_line("l.5.9") == b"-==-\n"
    assert thesis.handle_line("sb.128") == b"SB.128\n-==-\n"
    assert thesis.handle_line("frobnicate") == b"ERROR[16]: Invalid command.\n"
    assert thesis.handle_line("") == b""
    assert thesis.handle_line("pprops").endswith(b"}-==-\n")


def test_strict_emulator_checks_ranges(thesis: Emulator) -> None:
    thesis.handle_line("l.5")
    for line in ("l.43", "l.99999", "sb.300", "na.0", "an.60.40", "sad.0", "rseq.2.1"):
        assert thesis.handle_line(line).startswith(b"ERROR["), line
    assert thesis.lit() == (5,)
    assert thesis.handle_line("l.x") == b"ERROR[8]: Invalid argument.\n"
    assert thesis.handle_line("l") == b"ERROR[2]: Wrong number of arguments.\n"


def test_quirks_reproduce_the_firmware(quirky: Emulator) -> None:
    quirky.handle_line("l.99999")  # (uint16) 99999 = 34463 -> int16 -31073 < 0: every LED
    assert quirky.lit() == tuple(range(43))
    quirky.handle_line("l.300")  # past the position table: an undefined LED
    assert quirky.out_of_table == [300] and len(quirky.lit()) == 1
    assert quirky.handle_line("sb.300") == b"Current brightness value is 44.\n-==-\n"
    assert quirky.handle_line("l.010") == b"-==-\n" and quirky.lit() == (8,)  # strtoul base 0: octal
    reply = quirky.handle_line("na.0")  # refused as text, echoes the old NA, then succeeds
    assert reply.startswith(b"ERROR (LedArray::setNa)") and reply.endswith(b"Current NA is 0.40.\n-==-\n")


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


def test_sequence_and_triggers(thesis: Emulator) -> None:
    for line in ("ssl.3", "ssv.1.4", "ssv.2.5.6", "ssv.0"):
        assert thesis.handle_line(line).endswith(b"-==-\n"), line
    assert thesis.handle_line("ssv.1.7") == b"ERROR[19]: Sequence is full.\n"
    assert thesis.handle_line("rseq.5.2.1.0") == b"seq_start:0.1.2.0.1.2:seq_end\n-==-\n"
    assert thesis.trigger_pulses == [6, 0]
    thesis.handle_line("rseq.5.2.-2.0.-1.0")
    assert thesis.trigger_pulses == [7, 2]
    assert thesis.handle_line("sseq.1") == b"Displayed pattern # 1 of 3\n-==-\n"
    assert thesis.lit() == (4,) and thesis.trigger_pulses[0] == 8


def test_quirk_sseq_ignores_its_trigger_arguments(quirky: Emulator) -> None:
    quirky.handle_line("sseq.1")
    assert quirky.trigger_pulses == [0, 0]


def test_interrupted_sequence(thesis: Emulator, quirky: Emulator) -> None:
    for emu in (thesis, quirky):
        emu.handle_line("ssl.5")
        for i in range(5):
            emu.handle_line(f"ssv.1.{i}")
        emu.fault_interrupt_after = 2
    assert thesis.handle_line("rseq.5.1") == b"ERROR[15]: Command interrupted.\n"
    assert quirky.handle_line("rseq.5.1") == b"seq_start:0.1:seq_end\n-==-\n"
    assert quirky.lit() == (1,)  # left on: the firmware returns without clearing


def test_scan_report_has_the_firmware_trailing_delimiter(quirky: Emulator) -> None:
    assert quirky.handle_line("scb") == b"scan_start:0.1.2.3.4.11.12.19.20.27.28.35.36.:scan_end\n-==-\n"


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

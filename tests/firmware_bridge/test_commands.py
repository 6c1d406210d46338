"""Argument validation (refused before the wire, with the valid range) and payload parsers."""

from __future__ import annotations

import dataclasses

import pytest

from firmware_bridge.commands import (
    Commands,
    parse_echo,
    parse_index_report,
    parse_na_positions,
    parse_positions,
    parse_props,
    sequence_dialect,
)
from firmware_bridge.emulator import Emulator
from firmware_bridge.errors import ArgumentRangeError, ProtocolError
from firmware_bridge.rigs import get_profile

CMDS = Commands(led_count=43, channel_count=3)


@pytest.mark.parametrize(("call", "match"), [
    (lambda: CMDS.led([43]), "valid 0..42"),
    (lambda: CMDS.led([99999]), "valid 0..42"),
    (lambda: CMDS.led([]), "non-empty"),
    (lambda: CMDS.led([1.5]), "not an integer"),
    (lambda: CMDS.brightness(300), "valid 0..255"),
    (lambda: CMDS.color([1, 2]), "3 colour channel"),
    (lambda: CMDS.na(0.0), "0.01..0.99"),
    (lambda: CMDS.na(1.2), "0.01..0.99"),
    (lambda: CMDS.annulus(0.5, 0.4), "empty"),
    (lambda: CMDS.array_distance(0), "valid 1..255 mm"),
    (lambda: CMDS.run_sequence(2), "valid 5..2000 ms"),
    (lambda: CMDS.run_sequence(2001), "valid 5..2000 ms"),
    (lambda: CMDS.validate_line("rseq.5.1.1.0"), "at most delay_ms.count"),
    (lambda: CMDS.validate_line("troutputmode.2.1"), "valid 0..1"),
    (lambda: CMDS.run_sequence(10, trigger_output=(-3,)), "valid -2..65535"),
    (lambda: CMDS.run_sequence(10, trigger_output=(1, 1, 1)), "outputs"),
    (lambda: CMDS.trigger(2), "valid 0..1"),
    (lambda: CMDS.validate_line("l.43"), "valid 0..42"),
    (lambda: CMDS.validate_line("sb.300"), "valid 0..255"),
    (lambda: CMDS.validate_line("frobnicate"), "unknown"),
    (lambda: CMDS.validate_line("ssv.2.1"), "count"),
])
def test_out_of_range_is_refused_with_the_range(call, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ArgumentRangeError, match=match):
        call()


def test_valid_commands() -> None:
    assert CMDS.led([0, 42]) == b"l.0.42\n"
    assert CMDS.na(0.4) == b"na.40\n"
    assert CMDS.annulus(0.4, 0.6) == b"an.40.60\n"
    assert CMDS.run_sequence(20, 2, (1,)) == [b"troutputmode.0.1\n", b"troutputmode.1.0\n", b"trinputmode.0.0\n",
                                              b"trinputmode.1.0\n", b"rseq.20.2\n"]
    assert CMDS.run_sequence(0)[-1] == b"rseq.0.1\n"
    old = dataclasses.replace(CMDS, dialect="v1")
    assert old.run_sequence(20, 2, (1,)) == [b"rseq.20.2.1.0\n"]
    assert old.run_sequence(20, 1, (-1, 2), (0, 1)) == [b"rseq.20.1.-1.0.2.1\n"]
    assert dataclasses.replace(old, trigger_input_count=0).run_sequence(20, 1, (1,)) == [b"rseq.20.1.1.0\n"]
    assert CMDS.trigger_setup(1, 0, -2, 1000, 5) == b"trs.1.0.-2.1000.5\n"
    assert CMDS.validate_line("troutputmode.1.-1") == b"troutputmode.1.-1\n"
    assert CMDS.validate_line("rseq.20.3") == b"rseq.20.3\n"
    assert CMDS.sequence_value([]) == b"ssv.0\n"
    assert CMDS.validate_line("ssv.2.4.5") == b"ssv.2.4.5\n"
    assert CMDS.validate_line("pprops") == b"pprops\n"


def test_sequence_dialect_follows_the_firmware_version() -> None:
    assert [sequence_dialect(v) for v in ("2.32", "2.0", "1.9", "r1.12", "")] == ["v2", "v2", "v1", "v1", "v2"]


def test_parsers_read_what_the_emulator_prints() -> None:
    emu = Emulator(get_profile("sci-round-257"))
    text = emu.handle_line("pprops").decode()
    assert text.rstrip("\n").endswith("}-==-")
    props = parse_props(text[: -len("-==-\n")])
    assert (props.led_count, props.color_channels, props.interface_version) == (257, ("r",), "2.32")
    pos = parse_positions(emu.handle_line("pledpos").decode()[:-5], 257)
    assert pos[0] == (0.0, 0.0, 50.0) and len(pos) == 257
    nas = parse_na_positions(emu.handle_line("pledposna").decode()[:-5], 257)
    assert nas[0] == (0.0, 0.0)


@pytest.mark.parametrize("text", ["no json", '{"led_count": 3}', '{"led_count": 3, "interface_version": 3.1}',
                                  '{"led_count": 3, "interface_version": "x"}', "{broken"])
def test_non_illuminate_props_are_refused(text: str) -> None:
    with pytest.raises(ProtocolError):
        parse_props(text)


def test_echo_and_index_report() -> None:
    assert parse_echo(["ERROR (LedArray::setNa): invalid NA.", "NA.40"], "NA") == (40,)
    assert parse_echo(["CO.1.2.3"], "CO") == (1, 2, 3)
    with pytest.raises(ProtocolError, match="SB"):
        parse_echo(["Current brightness value is 3."], "SB")
    assert parse_index_report(["scan_start:0.1.2.:scan_end"]) == (0, 1, 2)
    assert parse_index_report(["seq_start::seq_end"]) == ()
    with pytest.raises(ProtocolError):
        parse_index_report(["Finished sending sequence."])

"""Golden byte strings for the reply decoder, split at every offset, plus fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.codec import (
    MAX_COMMAND_BYTES,
    Garbage,
    Reply,
    ReplyDecoder,
    command_name,
    decode_all,
    encode_command,
)
from firmware_bridge.errors import ArgumentRangeError

GOLDEN: list[tuple[bytes, list[Reply | Garbage]]] = [
    (b"-==-\n", [Reply(())]),
    (b"NA.40\n-==-\n", [Reply(("NA.40",))]),
    (b'{\n    "led_count" : 43\n}-==-\n', [Reply(("{", '    "led_count" : 43', "}"))]),
    (b"ERROR[16]: Invalid command.\n", [Reply((), (16, "Invalid command."))]),
    (b"SB.44\r\n-==-\r\n", [Reply(("SB.44",))]),
    (b"-==-\nERROR[10]: Invalid argument range.\nCO.1.2.3\n-==-\n",
     [Reply(()), Reply((), (10, "Invalid argument range.")), Reply(("CO.1.2.3",))]),
    (b"\xff\xfe junk\n-==-\n", [Garbage(b"\xff\xfe junk", "non-ASCII bytes"), Reply(())]),
    (b"bell\x07\nseq_start:0.1:seq_end\n-==-\n",
     [Garbage(b"bell\x07", "control characters"), Reply(("seq_start:0.1:seq_end",))]),
    (b"ERROR (LedArray::setNa): invalid NA.\nNA.40\n-==-\n",
     [Reply(("ERROR (LedArray::setNa): invalid NA.", "NA.40"))]),
]


def _feed_split(data: bytes, cut: int) -> list[Reply | Garbage]:
    dec = ReplyDecoder()
    return dec.feed(data[:cut]) + dec.feed(data[cut:])


@pytest.mark.parametrize(("data", "expected"), GOLDEN)
def test_golden_split_at_every_offset(data: bytes, expected: list[Reply | Garbage]) -> None:
    for cut in range(len(data) + 1):
        assert _feed_split(data, cut) == expected, f"split at {cut}"


@pytest.mark.parametrize(("data", "expected"), GOLDEN)
def test_golden_byte_by_byte(data: bytes, expected: list[Reply | Garbage]) -> None:
    dec = ReplyDecoder()
    events = [ev for i in range(len(data)) for ev in dec.feed(data[i : i + 1])]
    assert events == expected
    assert dec.idle


def test_unsolicited_lines_are_taken_out() -> None:
    dec = ReplyDecoder()
    assert dec.feed(b"=== banner\n  Illuminate r2.32\npartial") == []
    assert dec.take_pending() == ["=== banner", "  Illuminate r2.32"]
    assert dec.feed(b" line-==-\n") == [Reply(("partial line",))]


def test_overlong_line_is_garbage_and_decoder_recovers() -> None:
    dec = ReplyDecoder()
    events = dec.feed(b"x" * 20000)
    assert len(events) == 1 and isinstance(events[0], Garbage)
    assert dec.feed(b"\n-==-\n")[-1] == Reply(())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=5))
def test_random_bytes_never_crash(data: bytes, cuts: list[int]) -> None:
    dec = ReplyDecoder()
    last = 0
    for c in [*sorted(cuts), len(data)]:
        for ev in dec.feed(data[last:c]):
            assert isinstance(ev, Reply | Garbage)
        last = max(last, c)
    dec.feed(b"\n-==-\n")  # whatever came before, a terminator completes a reply
    assert dec.idle


_payload = st.lists(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
                    .filter(lambda s: not s.endswith("-==-") and not s.startswith("ERROR[") and s.strip() != ""),
                    max_size=4)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_payload.map(lambda ls: Reply(tuple(ls))),
                          st.tuples(st.integers(1, 19), st.text(alphabet="abc .", max_size=20))
                          .map(lambda t: Reply((), (t[0], t[1].strip())))), max_size=5),
       st.integers(0, 1000))
def test_encoded_replies_roundtrip_any_split(replies: list[Reply], cut: int) -> None:
    wire = b""
    for r in replies:
        if r.error:
            wire += f"ERROR[{r.error[0]}]: {r.error[1]}\n".encode()
        else:
            wire += "".join(f"{ln}\n" for ln in r.lines).encode() + b"-==-\n"
    cut = cut % (len(wire) + 1)
    assert _feed_split(wire, cut) == replies


def test_encode_command() -> None:
    assert encode_command("l", 5, 9) == b"l.5.9\n"
    assert encode_command("rseq", 20, 1, "-1", "0") == b"rseq.20.1.-1.0\n"
    assert command_name("l.5.9\n") == "l"
    assert decode_all(b"-==-\n") == [Reply(())]


@pytest.mark.parametrize("bad", [("l", -1), ("l", "5.9"), ("l", ""), ("sb", True), ("l\n",)])
def test_encode_refuses_what_the_firmware_would_mangle(bad: tuple[object, ...]) -> None:
    with pytest.raises(ArgumentRangeError):
        encode_command(*bad)  # type: ignore[arg-type]


def test_encode_refuses_lines_longer_than_the_firmware_buffer() -> None:
    with pytest.raises(ArgumentRangeError, match=str(MAX_COMMAND_BYTES)):
        encode_command("l", *range(200))

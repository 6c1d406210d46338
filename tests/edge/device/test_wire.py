from __future__ import annotations

import contextlib

import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.device import wire
from edge.device.errors import WireError


def test_roundtrip_with_payloads() -> None:
    a = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    b = np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3)
    frames = wire.encode("cell", {"cell_id": "s/1/0/0"}, {"stained": a, "extra": b})
    assert frames[0] == b"cell"
    msg = wire.decode([bytes(f) for f in frames])
    assert msg.header["schema"] == wire.SCHEMA_VERSION and msg.header["cell_id"] == "s/1/0/0"
    np.testing.assert_array_equal(msg.payloads["stained"], a)
    np.testing.assert_array_equal(msg.payloads["extra"], b)


def test_golden_header_bytes() -> None:
    frames = wire.encode("event", {"event": "x"})
    assert bytes(frames[1]) == msgpack.packb(
        {"event": "x", "schema": 1, "topic": "event", "payloads": []}, use_bin_type=True)


@pytest.mark.parametrize(("frames", "needle"), [
    ([b"cell"], "at least 2 frames"),
    ([b"nope", msgpack.packb({})], "unknown topic"),
    ([b"cell", b"\xc1"], "not valid msgpack"),
    ([b"cell", msgpack.packb({"schema": 99, "topic": "cell"})], "schema"),
    ([b"cell", msgpack.packb({"schema": 1, "topic": "cell", "payloads": [
        {"name": "p", "shape": [2], "dtype": "uint8", "encoding": "raw"}]}), b"abc"], "needs 2"),
    ([b"cell", msgpack.packb({"schema": 1, "topic": "cell", "payloads": [
        {"name": "p", "shape": [1], "dtype": "object", "encoding": "raw"}]}), b"a"], "not a raw array"),
])
def test_malformed_messages_are_refused(frames: list[bytes], needle: str) -> None:
    with pytest.raises(WireError, match=needle):
        wire.decode(frames)


@given(st.lists(st.binary(max_size=64), min_size=0, max_size=4))
def test_decode_never_raises_anything_but_wire_error(frames: list[bytes]) -> None:
    with contextlib.suppress(WireError):
        wire.decode(frames)

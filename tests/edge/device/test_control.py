"""The control codec and server: malformed, oversized and unknown requests get error replies."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.client import ControlClient
from edge.device import wire
from edge.device.control import ControlServer, handle

HANDLERS = {"echo": lambda args: args, "boom": lambda args: 1 / 0}
LIMIT = 1024

def _values(nan: bool) -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats(allow_nan=nan)
        | st.text(max_size=20) | st.binary(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12)


msgpack_values = _values(nan=True)


@given(st.binary(max_size=2 * LIMIT))
def test_any_bytes_get_a_reply_never_an_exception(body: bytes) -> None:
    reply = handle(body, HANDLERS, LIMIT)
    assert set(reply) >= {"id", "ok"}
    wire.pack(reply)  # always encodable


@given(msgpack_values)
def test_any_msgpack_document_gets_a_well_formed_reply(doc: Any) -> None:
    reply = handle(msgpack.packb(doc, use_bin_type=True), HANDLERS, LIMIT)
    if not reply["ok"]:
        assert reply["error"]["code"] in ("malformed", "too_large", "unknown_command", "bad_args", "internal")


@given(st.one_of(st.integers(0, 10**6), st.text(min_size=1, max_size=10)), _values(nan=False))
def test_valid_requests_echo_their_id(rid: Any, payload: Any) -> None:
    body = wire.pack({"id": rid, "cmd": "echo", "args": {"x": payload}})
    reply = handle(body, HANDLERS, LIMIT)
    assert reply["id"] == (rid if len(body) <= LIMIT else None)
    assert reply["ok"] == (len(body) <= LIMIT)
    if reply["ok"]:
        assert reply["result"] == {"x": payload}


def test_error_codes() -> None:
    assert handle(b"\xc1", HANDLERS, LIMIT)["error"]["code"] == "malformed"
    assert handle(b"x" * (LIMIT + 1), HANDLERS, LIMIT)["error"]["code"] == "too_large"
    r = handle(wire.pack({"id": 7, "cmd": "nope"}), HANDLERS, LIMIT)
    assert (r["id"], r["error"]["code"]) == (7, "unknown_command")
    assert handle(wire.pack({"id": 1, "cmd": "echo", "args": [1]}), HANDLERS, LIMIT)["error"]["code"] == "bad_args"
    assert handle(wire.pack({"id": 1, "cmd": "boom"}), HANDLERS, LIMIT)["error"]["code"] == "internal"


@pytest.fixture
def server() -> Iterator[tuple[ControlServer, zmq.Context[Any]]]:
    ctx: zmq.Context[Any] = zmq.Context()
    srv = ControlServer(ctx, "tcp://127.0.0.1:*", HANDLERS, LIMIT)
    yield srv, ctx
    srv.close()
    ctx.term()


def serve_one(srv: ControlServer, polls: int = 5) -> None:
    """Serve until a request was answered: at most ``polls`` polls of 2 s, so a lost request fails."""
    for _ in range(polls):
        if srv.serve_once(2000):
            return
    pytest.fail(f"no request reached the control server within {2 * polls} s")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(st.binary(max_size=64), min_size=0, max_size=3))
def test_server_survives_arbitrary_multipart(server: tuple[ControlServer, zmq.Context[Any]],
                                             frames: list[bytes]) -> None:
    srv, ctx = server
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(srv.endpoint)
    try:
        dealer.send_multipart(frames or [b""])
        serve_one(srv)
        assert dealer.poll(2000)
        reply = wire.unpack(dealer.recv_multipart()[-1])  # an empty first frame is taken as a REQ envelope
        assert "ok" in reply
    finally:
        dealer.close(0)


def test_req_clients_with_delimiter_are_answered(server: tuple[ControlServer, zmq.Context[Any]]) -> None:
    srv, ctx = server
    req = ctx.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(srv.endpoint)
    req.send(wire.pack({"id": "a", "cmd": "echo", "args": {"k": 1}}))
    serve_one(srv)
    assert req.poll(2000)
    assert wire.unpack(req.recv()) == {"id": "a", "ok": True, "result": {"k": 1}}
    req.close(0)


def test_control_client_times_out(server: tuple[ControlServer, zmq.Context[Any]]) -> None:
    srv, ctx = server  # nobody serves: the call must time out with code "timeout"
    from edge.device.errors import ControlError

    with ControlClient(srv.endpoint, timeout=0.2, context=ctx) as ctl, pytest.raises(ControlError) as err:
        ctl.call("echo")
    assert err.value.code == "timeout"


def test_control_client_times_out_when_it_cannot_even_send() -> None:
    """With no connected peer a DEALER's send blocks (a daemon down with IMMEDIATE set, or a CURVE daemon
    that refused the handshake): the call still ends at its timeout, as a ``timeout`` error."""
    from edge.device.errors import ControlError

    ctx: zmq.Context[Any] = zmq.Context()
    try:
        with ControlClient("tcp://127.0.0.1:9", timeout=0.2, context=ctx) as ctl:
            ctl.sock.disconnect(ctl.endpoint)  # again, queueing nothing until a connection is up: none will be
            ctl.sock.setsockopt(zmq.IMMEDIATE, 1)
            ctl.sock.connect(ctl.endpoint)
            with pytest.raises(ControlError) as err:
                ctl.call("echo")
        assert err.value.code == "timeout" and "could not send" in err.value.message
    finally:
        ctx.term()

"""The control channel: a ROUTER socket answering msgpack requests, never crashing on bad input.

Request: a msgpack map ``{"id": int | str, "cmd": str, "args": map}`` in one frame (DEALER
clients) or after an empty delimiter frame (REQ clients). Reply, in the same envelope:
``{"id", "ok": true, "result": ...}`` or ``{"id", "ok": false, "error": {"code", "message"}}``.
Error codes: ``malformed`` (not msgpack / not a map / bad id), ``too_large``, ``unknown_command``,
``bad_args``, ``busy``, ``internal``, ``unauthorised`` (the client's key lacks the command's right,
see :mod:`edge.device.security`). A handler may return :class:`Framed`: its frames follow the
reply map in the same multipart message (``replay``).

:func:`parse_request` and :func:`handle` are pure; :class:`ControlServer` is the thin socket loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import zmq

from core.config import ConfigError
from edge.device import wire
from edge.device.errors import ControlError, WireError

if TYPE_CHECKING:
    from edge.device.security import ServerSecurity

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Framed:
    """A handler result followed by raw frames in the same reply message (``replay`` uses it)."""

    result: Any
    frames: list[bytes]


@dataclass(frozen=True)
class Request:
    id: int | str | None
    cmd: str
    args: dict[str, Any]


def parse_request(body: bytes, max_bytes: int) -> Request:
    """Decode one request; raises :class:`ControlError` with the reply's error code."""
    if len(body) > max_bytes:
        raise ControlError("too_large", f"request of {len(body)} bytes exceeds the limit of {max_bytes}")
    try:
        doc = wire.unpack(body, max_bytes)
    except WireError as exc:
        raise ControlError("malformed", f"request is not valid msgpack: {exc}") from exc
    if not isinstance(doc, dict):
        raise ControlError("malformed", f"request is a {type(doc).__name__}; expected a map {{id, cmd, args}}")
    rid = doc.get("id")
    if rid is not None and (isinstance(rid, bool) or not isinstance(rid, int | str)):
        raise ControlError("malformed", f"request id {rid!r} must be an integer or a string")
    cmd, args = doc.get("cmd"), doc.get("args", {})
    if not isinstance(cmd, str) or not cmd:
        raise ControlError("malformed", "request has no 'cmd' string")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ControlError("bad_args", f"'args' is a {type(args).__name__}; expected a map")
    return Request(rid, cmd, args)


def _request_id(body: bytes) -> int | str | None:
    """The id of a request we could not fully parse, when there is one (so the client can match)."""
    try:
        doc = wire.unpack(body)
    except WireError:
        return None
    rid = doc.get("id") if isinstance(doc, dict) else None
    return rid if isinstance(rid, int | str) and not isinstance(rid, bool) else None


def handle(body: bytes, handlers: Mapping[str, Handler], max_bytes: int) -> dict[str, Any]:
    """The reply map for one request body; never raises."""
    rid: int | str | None = None
    try:
        req = parse_request(body, max_bytes)
        rid = req.id
        fn = handlers.get(req.cmd)
        if fn is None:
            raise ControlError("unknown_command", f"unknown command {req.cmd[:64]!r}; valid: {', '.join(handlers)}")
        return {"id": rid, "ok": True, "result": fn(req.args)}
    except ControlError as exc:
        if rid is None and exc.code != "too_large":
            rid = _request_id(body)
        return {"id": rid, "ok": False, "error": {"code": exc.code, "message": exc.message}}
    except Exception as exc:  # a handler bug must not take the daemon down
        log.exception("control handler failed")
        return {"id": rid, "ok": False, "error": {"code": "internal", "message": f"{type(exc).__name__}: {exc}"}}


class ControlServer:
    """A bound ROUTER socket; :meth:`serve_once` answers what has arrived (call from one thread)."""

    def __init__(self, context: zmq.Context[Any], endpoint: str, handlers: Mapping[str, Handler],
                 max_bytes: int, security: ServerSecurity | None = None) -> None:
        self.handlers = handlers
        self.max_bytes = max_bytes
        self.security = security
        self.sock: zmq.Socket[Any] = context.socket(zmq.ROUTER)
        if security is not None:
            security.setup_socket(self.sock)
        self.sock.setsockopt(zmq.LINGER, 0)
        # a hard cap well above the reply-worthy limit: beyond it ZeroMQ drops the peer (memory guard)
        self.sock.setsockopt(zmq.MAXMSGSIZE, max(max_bytes * 16, 1 << 20))
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
        try:
            self.sock.bind(endpoint)
        except zmq.ZMQError as exc:
            self.sock.close(linger=0)  # an open socket would block the context's term() forever
            raise ConfigError(f"[control] endpoint {endpoint}: cannot bind ({exc.strerror}); "
                              "is another daemon running? choose another endpoint") from exc
        self.endpoint: str = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.requests = 0
        self.errors = 0

    def serve_once(self, timeout_ms: int) -> int:
        """Answer every request that arrives within ``timeout_ms``; returns how many."""
        n = 0
        if not self.sock.poll(timeout_ms, zmq.POLLIN):
            return 0
        while self.sock.poll(0, zmq.POLLIN):
            frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
            n += 1
            user = frames[-1].get("User-Id") if self.security is not None else None  # set by the ZAP handler
            self._answer([f.bytes for f in frames], user if isinstance(user, str) else None)
        return n

    def _answer(self, frames: list[bytes], user: str | None = None) -> None:
        self.requests += 1
        identity, rest = frames[0], frames[1:]
        envelope = [identity]
        if rest and rest[0] == b"" and len(rest) >= 2:  # REQ clients put an empty delimiter first
            envelope.append(b"")
            rest = rest[1:]
        if len(rest) != 1:
            reply: dict[str, Any] = {"id": None, "ok": False, "error": {
                "code": "malformed", "message": f"expected one request frame, found {len(rest)}"}}
        else:
            handlers = self.handlers if self.security is None else self.security.policy.handlers_for(user,
                                                                                                     self.handlers)
            reply = handle(rest[0], handlers, self.max_bytes)
        if not reply["ok"]:
            self.errors += 1
        extra: list[bytes] = []
        if isinstance(reply.get("result"), Framed):
            extra, reply["result"] = reply["result"].frames, reply["result"].result
        try:
            self.sock.send_multipart([*envelope, wire.pack(reply), *extra], zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # peer gone or its queue full: the reply is lost, the daemon lives on
            log.info("control reply not delivered: %s", exc)

    def close(self) -> None:
        self.sock.close(linger=0)

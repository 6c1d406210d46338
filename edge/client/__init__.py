"""Client library: a subscriber yielding typed messages (with gap detection) and a control client.

::

    with Subscriber("tcp://127.0.0.1:5556") as sub:
        for msg in sub.messages(timeout=5.0):
            if isinstance(msg, StainedCell): ...
        print(sub.gaps)            # {"cell": 3, ...} messages missed per topic

    # gaps filled by `replay` on the control channel; resume after cell seq 41 (a restarted UI)
    with Subscriber("tcp://127.0.0.1:5556", control="tcp://127.0.0.1:5557", start={"cell": 42}) as sub: ...

    with ControlClient("tcp://127.0.0.1:5557", timeout=2.0) as ctl:
        ctl.call("start_scan", fields=[{"field_id": 0, "stage_um": [0, 0]}])

Against a CURVE daemon (``[security]``) pass ``curve=load_client_keys("operator.key_secret", "server.key")``
to either; a key the daemon does not list gets nothing (a ``timeout`` on calls).
"""

from __future__ import annotations

import itertools
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq
from numpy.typing import NDArray

from edge.client.recovery import Resequencer
from edge.device import wire
from edge.device.errors import ControlError, WireError
from edge.device.security import ClientKeys as ClientKeys
from edge.device.security import load_client_keys as load_client_keys


@dataclass(frozen=True)
class StainedCell:
    """A ``cell`` message: ``stained`` ``(P, P, 3)`` uint8, optionally ``unstained`` brightfield, and
    any further named payloads in ``extra`` (``darkfield``, ``stained:<style>``; ``truth`` on the virtual bench)."""

    header: dict[str, Any]
    stained: NDArray[np.uint8]
    unstained: NDArray[np.uint8] | None
    extra: dict[str, NDArray[Any]] = field(default_factory=dict)

    @property
    def darkfield(self) -> NDArray[Any] | None:
        return self.extra.get("darkfield")

    @property
    def truth(self) -> NDArray[Any] | None:
        return self.extra.get("truth")

    @property
    def styles(self) -> dict[str, NDArray[Any]]:
        """The extra named stains, ``{style: (P, P, 3)}`` from payloads ``stained:<style>`` (empty for
        bundles without styles)."""
        return {k.split(":", 1)[1]: v for k, v in self.extra.items() if k.startswith("stained:")}

    @property
    def cell_id(self) -> str:
        return str(self.header["cell_id"])

    @property
    def seq(self) -> int:
        return int(self.header["seq"])


@dataclass(frozen=True)
class FieldSummary:
    header: dict[str, Any]
    payloads: dict[str, NDArray[Any]] = field(default_factory=dict)  # "stained": whole field, [field_stain] on


@dataclass(frozen=True)
class Status:
    header: dict[str, Any]


@dataclass(frozen=True)
class Event:
    header: dict[str, Any]


Received = StainedCell | FieldSummary | Status | Event


def typed(msg: wire.Message) -> Received:
    if msg.topic == "cell":
        if "stained" not in msg.payloads:
            raise WireError("cell message without a 'stained' payload")
        extra = {k: v for k, v in msg.payloads.items() if k not in ("stained", "unstained")}
        return StainedCell(msg.header, msg.payloads["stained"], msg.payloads.get("unstained"), extra)
    if msg.topic == "field":
        return FieldSummary(msg.header, dict(msg.payloads))
    kinds: dict[str, type[Status] | type[Event]] = {"status": Status, "event": Event}
    return kinds[msg.topic](msg.header)


class Subscriber:
    """SUB socket on ``endpoint``; ``topics`` to subscribe (default: all four).

    With ``control`` (the daemon's control endpoint) a gap in ``recover``'s topics is filled by
    ``replay`` before the next message is delivered, so messages come in order without duplicates
    (:mod:`edge.client.recovery`); ``start`` (``{topic: seq}``) resumes after a restart: what was
    published from ``seq`` on is fetched first; ``start_epoch`` (the headers' ``epoch``) ties it to one
    sequence space (a daemon whose spool was reset is not asked for it). ``gaps`` counts what was
    missed and not recovered, ``recovered`` what came back through ``replay``. ``curve``: keys for a
    CURVE daemon (used on both sockets).
    """

    def __init__(self, endpoint: str, topics: tuple[str, ...] = wire.TOPICS, rcvhwm: int = 10_000,
                 context: zmq.Context[Any] | None = None, *, control: str | None = None,
                 start: dict[str, int] | None = None, recover: tuple[str, ...] = ("cell", "field", "event"),
                 replay_timeout: float = 10.0, start_epoch: int | None = None,
                 curve: ClientKeys | None = None) -> None:
        self._own_ctx = context is None
        self._ctx = context or zmq.Context()
        self.sock: zmq.Socket[Any] = self._ctx.socket(zmq.SUB)
        if curve is not None:
            curve.apply(self.sock)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, rcvhwm)
        for t in topics:
            self.sock.setsockopt(zmq.SUBSCRIBE, t.encode())
        self.sock.connect(endpoint)
        self.control = (ControlClient(control, timeout=replay_timeout, context=self._ctx, curve=curve)
                        if control is not None else None)
        self.sequence = Resequencer(self.control, start, recover, start_epoch)
        self.gaps: Counter[str] = self.sequence.gaps
        self.recovered: Counter[str] = self.sequence.recovered
        self.invalid = 0
        self._ready: deque[wire.Message] = deque()
        self._caught_up = not start

    def receive(self, timeout: float) -> Received | None:
        """The next valid message, or ``None`` after ``timeout`` s; invalid messages are counted, skipped."""
        if not self._caught_up:
            self._caught_up = True
            self._ready.extend(self.sequence.catch_up())
        deadline = time.monotonic() + timeout
        while not self._ready:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000) + 1, zmq.POLLIN):
                return None
            frames = self.sock.recv_multipart(copy=False)
            try:
                msg = wire.decode([f.buffer for f in frames])
            except WireError:
                self.invalid += 1
                continue
            self._ready.extend(self.sequence.accept(msg))
        return typed(self._ready.popleft())

    def messages(self, timeout: float) -> Iterator[Received]:
        """Messages until none arrives for ``timeout`` s."""
        while (msg := self.receive(timeout)) is not None:
            yield msg

    def close(self) -> None:
        self.sock.close(linger=0)
        if self.control is not None:
            self.control.close()
        if self._own_ctx:
            self._ctx.term()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ControlClient:
    """DEALER socket to the control endpoint; every call has a timeout (s); ``curve``: keys for a
    CURVE daemon."""

    def __init__(self, endpoint: str, timeout: float = 2.0, context: zmq.Context[Any] | None = None,
                 curve: ClientKeys | None = None) -> None:
        self._own_ctx = context is None
        self._ctx = context or zmq.Context()
        self.timeout = timeout
        self.endpoint = endpoint
        self.sock: zmq.Socket[Any] = self._ctx.socket(zmq.DEALER)
        if curve is not None:
            curve.apply(self.sock)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self._ids = itertools.count(1)

    def request_raw(self, body: bytes, timeout: float | None = None) -> dict[str, Any]:
        """Send one raw frame and return the decoded reply (for tests of malformed input)."""
        limit = self.timeout if timeout is None else timeout
        deadline = self._send(body, limit)
        return self._reply_frames(None, deadline, limit)[0]

    def _send(self, body: bytes, limit: float) -> float:
        """Send within the call's ``limit`` (s) and return the call's deadline: a DEALER with no connected
        peer (the daemon down, or a handshake it refused, e.g. plain text to a CURVE daemon) would
        otherwise block for ever."""
        deadline = time.monotonic() + limit
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000) + 1, zmq.POLLOUT):
                raise ControlError("timeout", f"could not send to {self.endpoint} within {limit:.3g} s (no connection: "
                                              "is the daemon running, and are the CURVE keys the ones it expects?)")
            try:
                self.sock.send(body, zmq.NOBLOCK)
                return deadline
            except zmq.Again:  # the peer went between poll and send (e.g. a handshake just refused): poll again
                continue

    def call(self, cmd: str, timeout: float | None = None, **args: Any) -> Any:
        """Run ``cmd``; returns its result or raises :class:`ControlError` (``code`` from the daemon,
        or ``timeout``)."""
        return self.call_framed(cmd, timeout, **args)[0]

    def call_framed(self, cmd: str, timeout: float | None = None, **args: Any) -> tuple[Any, list[bytes]]:
        """:meth:`call`, also returning the frames that followed the reply map (``replay``'s messages)."""
        rid = next(self._ids)
        limit = self.timeout if timeout is None else timeout
        deadline = self._send(wire.pack({"id": rid, "cmd": cmd, "args": args}), limit)
        reply, frames = self._reply_frames(rid, deadline, limit)
        if not reply.get("ok"):
            err = reply.get("error") or {}
            raise ControlError(str(err.get("code", "unknown")), str(err.get("message", reply)))
        return reply.get("result"), frames

    def _reply_frames(self, rid: int | None, deadline: float, limit: float) -> tuple[dict[str, Any], list[bytes]]:
        """The reply to request ``rid`` (None: the next one) by ``deadline`` (the call's, sending included)."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000) + 1, zmq.POLLIN):
                raise ControlError("timeout", f"no reply from {self.endpoint} within {limit:.3g} s")
            first, *rest = self.sock.recv_multipart()
            reply = wire.unpack(first)
            if not isinstance(reply, dict):
                raise ControlError("malformed", f"reply is not a map: {reply!r}")
            if rid is None or reply.get("id") == rid:
                return reply, rest  # replies to earlier, timed-out requests are skipped

    def close(self) -> None:
        self.sock.close(linger=0)
        if self._own_ctx:
            self._ctx.term()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

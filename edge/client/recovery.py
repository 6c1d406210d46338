"""Gap recovery for :class:`edge.client.Subscriber`: per sequence space, deliver in order, fill gaps by ``replay``.

A sequence space is ``(daemon_id, epoch, topic)`` (the header keys). For each message of it,
:meth:`Resequencer.accept` returns what to deliver now, in order and without duplicates:

* the first message of a topic, with a resume point ``start[topic]`` given: older ones are duplicates,
  a later one is a gap from ``start``;
* ``seq == expected``: the message;
* ``seq > expected``: the missed ``expected .. seq - 1`` fetched with ``replay`` (paged), then the message;
  what the daemon no longer holds is counted in ``gaps`` (lost), what came back in ``recovered``;
* ``seq < expected``: a duplicate (already delivered from a replay), dropped and counted;
* a ``status`` message: its ``publisher.next_seq`` reveals messages missed at the end of a burst
  (no later message of their topic came); they are fetched and delivered before the status.

:func:`fetch` is the client side of ``replay`` (the README's wire section describes the frames).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Protocol

from edge.device import wire
from edge.device.errors import ControlError, WireError

log = logging.getLogger(__name__)


class FramedCaller(Protocol):
    def call_framed(self, cmd: str, timeout: float | None = None, **args: Any) -> tuple[Any, list[bytes]]: ...


def fetch(ctl: FramedCaller, topic: str, first: int, last: int | None = None, epoch: int | None = None
          ) -> tuple[list[wire.Message], int]:
    """Every spooled ``topic`` message from ``first`` to ``last`` (None: the newest), asking page by page;
    returns them in order and how many of the range the daemon did not hold. Raises :class:`ControlError`."""
    out: list[wire.Message] = []
    missing = 0
    nxt: int | None = first
    while nxt is not None:
        args: dict[str, Any] = {"topic": topic, "first": nxt}
        if last is not None:
            args["last"] = last
        if epoch is not None:
            args["epoch"] = epoch
        result, frames = ctl.call_framed("replay", **args)
        counts = result.get("frames", []) if isinstance(result, dict) else None
        if not isinstance(counts, list) or sum(counts) != len(frames):
            raise WireError(f"replay reply lists frames {counts!r} but {len(frames)} frame(s) followed")
        at = 0
        for k in counts:
            out.append(wire.decode(frames[at:at + k]))
            at += k
        missing += int(result.get("missing", 0))
        last = int(result["last"]) if last is None else last  # later pages: the same end
        nxt = result.get("next")
    return out, missing


Key = tuple[str, Any, str]


class Resequencer:
    """The per-sequence-space bookkeeping of a subscriber; ``ctl`` None = detect gaps, never fetch."""

    def __init__(self, ctl: FramedCaller | None, start: dict[str, int] | None = None,
                 recover: tuple[str, ...] = ("cell", "field", "event"), start_epoch: int | None = None) -> None:
        self.ctl = ctl
        self.start = dict(start or {})
        #: the sequence space ``start`` belongs to; None = whichever comes first
        self.start_epoch = start_epoch
        self.recover = recover
        self._next: dict[Key, int] = {}
        self.gaps: Counter[str] = Counter()  # messages missed and not recovered
        self.recovered: Counter[str] = Counter()
        self.duplicates: Counter[str] = Counter()
        self.replay_errors: Counter[str] = Counter()
        self.last_error = ""

    def catch_up(self) -> list[wire.Message]:
        """For every topic with a resume point: what was published since (the spool's newest included)."""
        out: list[wire.Message] = []
        if self.ctl is None:
            return out
        for topic, first in list(self.start.items()):
            if topic not in self.recover:
                continue
            msgs = self._fetch(topic, first, None, self.start_epoch)
            if msgs:
                h = msgs[-1].header
                self._next[(str(h.get("daemon_id")), h.get("epoch"), topic)] = int(h["seq"]) + 1
                del self.start[topic]
                out += msgs
        return out

    def accept(self, msg: wire.Message) -> list[wire.Message]:
        out = self._accept(msg)
        return [*out[:-1], *self._tail(msg.header), out[-1]] if out and msg.topic == "status" else out

    def _accept(self, msg: wire.Message) -> list[wire.Message]:
        topic, h = msg.topic, msg.header
        key: Key = (str(h.get("daemon_id")), h.get("epoch"), topic)
        seq = int(h.get("seq", -1))
        expected = self._next.get(key)
        if expected is None and (self.start_epoch is None or h.get("epoch") == self.start_epoch):
            expected = self.start.pop(topic, None)
        if expected is None:
            self._next[key] = seq + 1
            return [msg]
        if seq < expected:
            self.duplicates[topic] += 1
            return []
        out: list[wire.Message] = []
        if seq > expected:
            if self.ctl is not None and topic in self.recover:
                out = [m for m in self._fetch(topic, expected, seq - 1, h.get("epoch"))
                       if expected <= int(m.header["seq"]) < seq]
            self.gaps[topic] += seq - expected - len(out)
        self._next[key] = seq + 1
        return [*out, msg]

    def _tail(self, status: dict[str, Any]) -> list[wire.Message]:
        """Messages missed at the end of a burst: a ``status`` says how many of each topic were published
        before it (``publisher.next_seq``), and those arrived before it on the same connection."""
        pub = status.get("publisher")
        published = pub.get("next_seq") if isinstance(pub, dict) else None
        if not isinstance(published, dict) or self.ctl is None:
            return []
        out: list[wire.Message] = []
        for topic in self.recover:
            key: Key = (str(status.get("daemon_id")), status.get("epoch"), topic)
            expected, end = self._next.get(key), published.get(topic)
            if expected is not None and isinstance(end, int) and end > expected:
                got = [m for m in self._fetch(topic, expected, end - 1, status.get("epoch"))
                       if expected <= int(m.header["seq"]) < end]
                self.gaps[topic] += end - expected - len(got)
                self._next[key] = end
                out += got
        return out

    def _fetch(self, topic: str, first: int, last: int | None, epoch: int | None) -> list[wire.Message]:
        assert self.ctl is not None  # checked by the callers
        try:
            msgs, _missing = fetch(self.ctl, topic, first, last, epoch)
        except (ControlError, WireError) as exc:
            self.replay_errors[topic] += 1
            self.last_error = f"replay {topic} from {first} to {'the newest' if last is None else last}: {exc}"
            log.warning("%s", self.last_error)
            return []
        out, seen = [], first - 1
        for m in msgs:  # in order, no duplicates, whatever the daemon sent
            s = int(m.header["seq"])
            if s > seen:
                out.append(m)
                seen = s
        self.recovered[topic] += len(out)
        return out

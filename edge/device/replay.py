"""The control command ``replay``: spooled messages sent again, in the reply on the requester's connection.

Request args: ``topic`` (str), ``first`` (int >= 0), optional ``last`` (int, inclusive; default the
newest published), optional ``epoch`` (the header's ``epoch``: refused if the spool's differs) and
``max_messages``. The reply is one multipart message: frame 0 the usual reply map, whose ``result``
is ``{topic, epoch, first, last, count, frames, missing, next, held, next_seq}``, then ``count``
messages of ``frames[i]`` frames each, framed exactly as on the PUB socket (topic, header,
payloads). ``next`` is the first sequence number not yet sent when the reply was cut at the page
limit (ask again from there), else nil; ``missing`` counts the sequence numbers in ``first ..
last`` (up to ``next``) that are not in the spool (evicted, or never spooled).

Errors: ``no_spool`` (the daemon runs without one), ``not_spooled`` (a topic the spool does not
keep), ``not_in_spool`` (nothing of the range is held, or another epoch; the message names what is),
``bad_args``.
"""

from __future__ import annotations

from typing import Any

from edge.device import wire
from edge.device.control import Framed
from edge.device.errors import ControlError
from edge.device.opsconfig import SpoolConfig
from edge.device.spool import Spool

ARGS = {"topic", "first", "last", "epoch", "max_messages"}


def _int(args: dict[str, Any], key: str, default: int | None = None) -> int | None:
    v = args.get(key, default)
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**62):
        raise ControlError("bad_args", f"replay: {key} must be an integer in [0, 2^62), found {v!r}")
    return v


def replay(spool: Spool | None, config: SpoolConfig, args: dict[str, Any]) -> Framed:
    """The ``replay`` reply for ``args`` (see the module docstring); raises :class:`ControlError`."""
    unknown = set(args) - ARGS
    if unknown:
        raise ControlError("bad_args", f"replay: unknown argument(s) {sorted(map(str, unknown))}; valid: "
                                       f"{', '.join(sorted(ARGS))}")
    topic = args.get("topic")
    if topic not in wire.TOPICS:
        raise ControlError("bad_args", f"replay: topic must be one of {', '.join(wire.TOPICS)}, found {topic!r}")
    first = _int(args, "first")
    if first is None:
        raise ControlError("bad_args", "replay: 'first' (the first sequence number wanted) is required")
    epoch = _int(args, "epoch")
    limit = _int(args, "max_messages", config.replay_max_messages) or 1
    if spool is None or not spool.available:
        why = spool.open_error if spool else "[spool] path is empty (set a file, or ':memory:')"
        raise ControlError("no_spool", f"replay: the daemon runs without a spool: {why}")
    if topic not in config.topics:
        raise ControlError("not_spooled", f"replay: topic {topic!r} is not spooled; spooled: "
                                          f"{', '.join(config.topics)} ([spool] topics)")
    held = spool.held(topic)
    next_seq = spool.next_seqs().get(topic, 0)
    what = f"{topic} {held[0]}..{held[1]}" if held else f"no {topic} message"
    where = f"the spool (epoch {spool.epoch}) holds {what}; the next {topic} to be published is seq {next_seq}"
    if epoch is not None and epoch != spool.epoch:
        raise ControlError("not_in_spool", f"replay: epoch {epoch} is gone (the spool was reset); {where}")
    asked = _int(args, "last")
    last = next_seq - 1 if asked is None else asked  # -1 when nothing of the topic was published yet
    if last >= next_seq:
        raise ControlError("not_in_spool", f"replay: {topic} {first}..{last} not published yet; {where}")
    result: dict[str, Any] = {"topic": topic, "epoch": spool.epoch, "first": first, "last": last, "count": 0,
                              "frames": [], "missing": 0, "next": None, "held": list(held) if held else None,
                              "next_seq": next_seq}
    if first > last:
        return Framed(result, [])  # nothing asked (a late joiner that missed nothing)
    if held is None or last < held[0] or first > held[1]:
        raise ControlError("not_in_spool", f"replay: {topic} {first}..{last} is not in the spool; {where}")
    rows = spool.read(topic, first, last, min(limit, config.replay_max_messages),
                      int(config.replay_max_mb * 2**20))
    end = last
    if rows and _cut(rows, spool, topic, last):
        end = rows[-1][0]
        result["next"] = end + 1
    frames: list[bytes] = []
    for _seq, header, payloads in rows:
        frames += [topic.encode("ascii"), header, *payloads]
        result["frames"].append(2 + len(payloads))
    result.update(count=len(rows), missing=end - first + 1 - len(rows))
    return Framed(result, frames)


def _cut(rows: list[tuple[int, bytes, list[bytes]]], spool: Spool, topic: str, last: int) -> bool:
    """True when the page stopped before ``last`` although more of the range is held."""
    newest = rows[-1][0]
    return newest < last and bool(spool.read(topic, newest + 1, last, 1, 1))

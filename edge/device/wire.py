"""The wire format of the daemon's ZeroMQ sockets (pure codec; the README's "Wire format" section).

PUB messages are multipart ``[topic, header, payload_0, ..., payload_k]``:

* ``topic`` — ASCII ``cell``, ``field``, ``status`` or ``event``;
* ``header`` — a msgpack map with ``schema`` (= :data:`SCHEMA_VERSION`), ``topic``, ``daemon_id``,
  ``epoch`` (the sequence space: :mod:`edge.device.spool`), ``seq`` (per topic, from 0, +1 per
  message sent *or dropped*; continues across restarts with a file spool) and ``payloads``: one descriptor
  ``{"name", "shape", "dtype", "order", "encoding"}`` per following frame;
* payload frames — raw C-ordered array bytes (``encoding = "raw"``), little-endian, sent without
  copying.

Control messages are single msgpack maps: requests ``{id, cmd, args}``, replies
``{id, ok, result}`` or ``{id, ok: false, error: {code, message}}``; a ``replay`` reply is followed,
in the same multipart message, by the replayed PUB messages' frames (:mod:`edge.device.replay`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np
from numpy.typing import NDArray

from edge.device.errors import WireError

SCHEMA_VERSION = 1
TOPICS: tuple[str, ...] = ("cell", "field", "status", "event")
#: dtypes a payload may have (little-endian); anything else is refused.
DTYPES: dict[str, np.dtype[Any]] = {"uint8": np.dtype("<u1"), "uint16": np.dtype("<u2"), "float32": np.dtype("<f4")}
MAX_HEADER_BYTES = 1 << 20


@dataclass(frozen=True)
class Message:
    topic: str
    header: dict[str, Any]
    payloads: dict[str, NDArray[Any]]


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes, max_bytes: int = MAX_HEADER_BYTES) -> Any:
    """Strict msgpack decoding (no ext types, string keys); raises :class:`WireError`."""
    if len(data) > max_bytes:
        raise WireError(f"message of {len(data)} bytes exceeds the limit of {max_bytes}")
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True,
                               ext_hook=_no_ext)
    except WireError:
        raise
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise WireError(f"not valid msgpack: {type(exc).__name__}: {exc}") from exc


def _no_ext(code: int, data: bytes) -> Any:
    raise WireError(f"msgpack extension type {code} is not part of the wire format")


def encode(topic: str, header: dict[str, Any], payloads: dict[str, NDArray[Any]] | None = None
           ) -> list[bytes | memoryview]:
    """Frames of one PUB message; array payloads are passed as buffers (zero-copy with ``copy=False``)."""
    if topic not in TOPICS:
        raise WireError(f"unknown topic {topic!r}; valid: {', '.join(TOPICS)}")
    frames: list[bytes | memoryview] = [topic.encode("ascii")]
    descriptors = []
    buffers: list[memoryview] = []
    for name, arr in (payloads or {}).items():
        dtype = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        kind = next((k for k, d in DTYPES.items() if d == dtype), None)
        if kind is None:
            raise WireError(f"payload {name!r} has dtype {arr.dtype}; allowed: {', '.join(DTYPES)}")
        arr = np.ascontiguousarray(arr, dtype=DTYPES[kind])
        descriptors.append({"name": name, "shape": list(arr.shape), "dtype": kind, "order": "C", "encoding": "raw"})
        buffers.append(memoryview(arr.data).cast("B"))
    full = {**header, "schema": SCHEMA_VERSION, "topic": topic, "payloads": descriptors}
    frames.append(pack(full))
    frames.extend(buffers)
    return frames


def decode(frames: list[bytes] | list[memoryview]) -> Message:
    """Parse and validate one PUB message; raises :class:`WireError` naming what is wrong."""
    if len(frames) < 2:
        raise WireError(f"expected at least 2 frames (topic, header), found {len(frames)}")
    try:
        topic = bytes(frames[0]).decode("ascii")
    except UnicodeDecodeError as exc:
        raise WireError("topic frame is not ASCII") from exc
    if topic not in TOPICS:
        raise WireError(f"unknown topic {topic!r}")
    header = unpack(bytes(frames[1]))
    if not isinstance(header, dict):
        raise WireError(f"header is a {type(header).__name__}, expected a map")
    if header.get("schema") != SCHEMA_VERSION:
        raise WireError(f"header schema {header.get('schema')!r}; this client reads schema {SCHEMA_VERSION}")
    if header.get("topic") != topic:
        raise WireError(f"header topic {header.get('topic')!r} differs from the topic frame {topic!r}")
    descs = header.get("payloads", [])
    if not isinstance(descs, list) or len(descs) != len(frames) - 2:
        raise WireError(f"header lists {len(descs) if isinstance(descs, list) else '?'} payloads, "
                        f"{len(frames) - 2} frames follow")
    payloads = {}
    for desc, frame in zip(descs, frames[2:], strict=True):
        payloads[str(desc.get("name"))] = _array(desc, frame)
    return Message(topic, header, payloads)


def _array(desc: Any, frame: Any) -> NDArray[Any]:
    if not isinstance(desc, dict) or desc.get("encoding") != "raw" or desc.get("dtype") not in DTYPES:
        raise WireError(f"payload descriptor {desc!r} is not a raw array of {', '.join(DTYPES)}")
    shape = desc.get("shape")
    if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise WireError(f"payload {desc.get('name')!r}: shape {shape!r} is not a list of non-negative ints")
    dtype = DTYPES[desc["dtype"]]
    want = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buf = memoryview(frame)
    if buf.nbytes != want:
        raise WireError(f"payload {desc.get('name')!r}: {buf.nbytes} bytes, shape {shape} {desc['dtype']} needs {want}")
    return np.frombuffer(buf, dtype=dtype).reshape(shape)

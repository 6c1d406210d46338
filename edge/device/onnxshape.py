"""Free the spatial axes of an ONNX model's graph inputs and outputs, without the ``onnx`` package.

Bundles are exported with static patch axes ``(batch, C, P, P)``; the generators are fully
convolutional, so the same graph runs on any ``H × W`` once the declared sizes are symbolic.
The device install has ONNX Runtime but not ``onnx``, so :func:`free_spatial_dims` edits the
protobuf wire format directly: in ``ModelProto.graph`` (field 7), every 4-D ``input`` (11) and
``output`` (12) gets ``dim_param`` ``"height"`` / ``"width"`` on axes 2 and 3, and ``value_info``
(13, optional shape hints) is dropped so no stale static shape contradicts the new one. Every other
byte is copied unchanged (the weights are never decoded).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from edge.device.errors import BackendError

_LEN = 2  # protobuf wire type of length-delimited fields
_SPATIAL = (b"height", b"width")


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise BackendError("ONNX model: truncated or malformed protobuf varint")
        b = buf[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        if not b & 0x80:
            return value, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _fields(buf: bytes) -> Iterator[tuple[int, int, bytes, bytes]]:
    """``(field number, wire type, payload, raw bytes of the whole field)`` for each field of a message."""
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(buf, pos)
            payload = b""
        elif wire == 1:
            payload, pos = buf[pos:pos + 8], pos + 8
        elif wire == _LEN:
            n, pos = _varint(buf, pos)
            payload, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            payload, pos = buf[pos:pos + 4], pos + 4
        else:
            raise BackendError(f"ONNX model: unsupported protobuf wire type {wire} (field {number})")
        if pos > len(buf):
            raise BackendError("ONNX model: truncated protobuf message")
        yield number, wire, payload, buf[start:pos]


def _field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | _LEN) + _encode_varint(len(payload)) + payload


def _rewrite(buf: bytes, edits: dict[int, Callable[[bytes], bytes | None]]) -> bytes:
    """``buf`` with the length-delimited fields named in ``edits`` replaced (``None`` drops the field)."""
    out = bytearray()
    for number, wire, payload, raw in _fields(buf):
        if wire == _LEN and number in edits:
            new = edits[number](payload)
            if new is not None:
                out += _field(number, new)
        else:
            out += raw
    return bytes(out)


def _shape(buf: bytes) -> bytes:
    dims = [payload for number, _, payload, _ in _fields(buf) if number == 1]
    if len(dims) != 4:
        return buf
    dims[2:] = [_field(2, name) for name in _SPATIAL]  # Dimension.dim_param
    rest = b"".join(raw for number, _, _, raw in _fields(buf) if number != 1)
    return b"".join(_field(1, d) for d in dims) + rest


def _tensor(buf: bytes) -> bytes:
    return _rewrite(buf, {2: _shape})  # TypeProto.Tensor.shape


def _type(buf: bytes) -> bytes:
    return _rewrite(buf, {1: _tensor})  # TypeProto.tensor_type


def _value_info(buf: bytes) -> bytes:
    return _rewrite(buf, {2: _type})  # ValueInfoProto.type


def _graph(buf: bytes) -> bytes:
    return _rewrite(buf, {11: _value_info, 12: _value_info, 13: lambda _: None})


def free_spatial_dims(model: bytes) -> bytes:
    """``model`` (serialised ONNX) with symbolic height / width on its 4-D graph inputs and outputs."""
    if not model:
        raise BackendError("ONNX model: empty file")
    graphs = [number for number, wire, _, _ in _fields(model) if number == 7 and wire == _LEN]
    if len(graphs) != 1:
        raise BackendError(f"ONNX model: expected one graph (ModelProto field 7), found {len(graphs)}; "
                           "is this an ONNX file?")
    return _rewrite(model, {7: _graph})


__all__ = ["free_spatial_dims"]

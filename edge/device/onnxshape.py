"""Edits of an ONNX model's graph without the ``onnx`` package: free spatial axes, a raw-input prefix.

Bundles are exported with static patch axes ``(batch, C, P, P)``; the generators are fully
convolutional, so the same graph runs on any ``H × W`` once the declared sizes are symbolic.
The device install has ONNX Runtime but not ``onnx``, so :func:`free_spatial_dims` edits the
protobuf wire format directly: in ``ModelProto.graph`` (field 7), every 4-D ``input`` (11) and
``output`` (12) gets ``dim_param`` ``"height"`` / ``"width"`` on axes 2 and 3, and ``value_info``
(13, optional shape hints) is dropped so no stale static shape contradicts the new one. Every other
byte is copied unchanged (the weights are never decoded).

:func:`raw_input_graph` moves the per-plane normalisation of camera counts into the graph: the
first input becomes ``uint16`` and ``Cast → Sub(offset) → Mul(1 / scale) → Clip(0, 1)`` per channel
feeds the tensor the model read before, so the runtime normalises on its own threads (and OpenVINO
fuses the chain into one pass) instead of the daemon's processing thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from numpy.typing import NDArray

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


_FLOAT, _UINT16 = 1, 4  # TensorProto.DataType
#: The raw-input graph's input name; every name the prefix adds starts with it.
RAW_INPUT = "raw_input"
_RAW = RAW_INPUT
_MIN_OPSET = 11  # Clip with min / max as inputs


def _varint_field(number: int, value: int) -> bytes:
    return _encode_varint(number << 3) + _encode_varint(value)


def _floats(name: str, values: NDArray[np.float32], dims: tuple[int, ...]) -> bytes:
    """A float32 ``TensorProto`` (dims 1, data_type 2, name 8, raw_data 9: little-endian)."""
    head = b"".join(_varint_field(1, d) for d in dims) + _varint_field(2, _FLOAT)
    return head + _field(8, name.encode()) + _field(9, np.asarray(values, "<f4").tobytes())


def _node(op: str, inputs: list[str], output: str, attribute: bytes = b"") -> bytes:
    """A ``NodeProto`` (input 1, output 2, name 3, op_type 4, attribute 5)."""
    ins = b"".join(_field(1, n.encode()) for n in inputs)
    return ins + _field(2, output.encode()) + _field(3, output.encode()) + _field(4, op.encode()) + attribute


def _cast_to_float() -> bytes:
    """``Cast``'s attribute ``to = FLOAT`` (AttributeProto: name 1, i 3, type 20 = INT)."""
    return _field(5, _field(1, b"to") + _varint_field(3, _FLOAT) + _varint_field(20, 2))


def _prefix(feeds: str, channels: int, offset: NDArray[np.float32], scale: NDArray[np.float32]) -> tuple[
        bytes, bytes]:
    """The prefix's nodes and initializers (GraphProto fields 1 and 5) from ``raw_input`` to ``feeds``.

    ``x = clip((float(raw) − offset) · (1 / scale), 0, 1)``, the operations and rounding of
    :func:`edge.device.crops.normalise` (its reciprocal taken in float32 too)."""
    inv = np.float32(1.0) / scale
    nodes = [_node("Cast", [_RAW], f"{_RAW}.f32", _cast_to_float()),
             _node("Sub", [f"{_RAW}.f32", f"{_RAW}.offset"], f"{_RAW}.sub"),
             _node("Mul", [f"{_RAW}.sub", f"{_RAW}.inv_scale"], f"{_RAW}.scaled"),
             _node("Clip", [f"{_RAW}.scaled", f"{_RAW}.lo", f"{_RAW}.hi"], feeds)]
    inits = [_floats(f"{_RAW}.offset", offset, (1, channels, 1, 1)),
             _floats(f"{_RAW}.inv_scale", inv, (1, channels, 1, 1)),
             _floats(f"{_RAW}.lo", np.zeros(1, np.float32), ()), _floats(f"{_RAW}.hi", np.ones(1, np.float32), ())]
    return b"".join(_field(1, n) for n in nodes), b"".join(_field(5, t) for t in inits)


def _field_value(buf: bytes, number: int) -> bytes | int | None:
    """The first field ``number`` of a message: its payload (length-delimited) or its value (varint)."""
    for n, wire, payload, raw in _fields(buf):
        if n == number:
            return payload if wire == _LEN else _varint(raw, len(_encode_varint(n << 3)))[0]
    return None


def _default_opset(model: bytes) -> int:
    """The default-domain (``ai.onnx``) opset version (ModelProto.opset_import 8: domain 1, version 2)."""
    for number, wire, payload, _ in _fields(model):
        if number == 8 and wire == _LEN and not _field_value(payload, 1):
            version = _field_value(payload, 2)
            return version if isinstance(version, int) else 0
    return 0


def _raw_value_info(info: bytes) -> bytes:
    """The graph input ``info`` renamed to ``raw_input`` with element type ``uint16`` (shape unchanged)."""
    type_ = _field_value(info, 2)  # ValueInfoProto.type → TypeProto.tensor_type
    tensor = _field_value(type_, 1) if isinstance(type_, bytes) else None
    if not isinstance(tensor, bytes) or _field_value(tensor, 1) != _FLOAT:
        raise BackendError("ONNX model: the first graph input is not a float32 tensor; a raw-input prefix "
                           "feeds float32 only (keep the float input path for this model)")
    rest = b"".join(raw for n, _, _, raw in _fields(tensor) if n != 1)
    return _field(1, _RAW.encode()) + _field(2, _field(1, _varint_field(1, _UINT16) + rest))


def raw_normalisation(offset: NDArray[np.float32], scale: NDArray[np.float32]
                      ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """A raw-input prefix's ``offset`` and ``scale`` as float32 ``(C,)``, checked (pure)."""
    offset, scale = np.asarray(offset, np.float32), np.asarray(scale, np.float32)
    if offset.ndim != 1 or offset.shape != scale.shape or not np.all(scale > 0):
        raise BackendError(f"raw input: expected offset and scale of one shape (C,) with scale > 0, found "
                           f"{offset.shape} and {scale.shape} (least scale {scale.min() if scale.size else None})")
    return offset, scale


def raw_input_graph(model: bytes, offset: NDArray[np.float32], scale: NDArray[np.float32]) -> bytes:
    """``model`` (serialised ONNX, first input float32 ``(B, C, H, W)``) taking ``uint16`` camera counts
    ``(B, C, H, W)`` as input ``raw_input`` instead, normalised in the graph per channel (pure).

    ``offset`` and ``scale`` are ``(C,)`` (one per input channel, image-major like the input). The
    graph's other inputs, nodes and weights are copied unchanged."""
    offset, scale = raw_normalisation(offset, scale)
    if (opset := _default_opset(model)) < _MIN_OPSET:
        raise BackendError(f"ONNX model: opset {opset}; a raw-input prefix needs opset >= {_MIN_OPSET} (Clip "
                           "with min / max inputs); keep the float input path or re-export the model")
    if _RAW.encode() in model:
        raise BackendError(f"ONNX model: already names a tensor {_RAW!r}; it has a raw-input prefix already?")
    graphs = [payload for number, wire, payload, _ in _fields(model) if number == 7 and wire == _LEN]
    if len(graphs) != 1:
        raise BackendError(f"ONNX model: expected one graph (ModelProto field 7), found {len(graphs)}")
    inputs = [payload for number, _, payload, _ in _fields(graphs[0]) if number == 11]
    if not inputs:
        raise BackendError("ONNX model: the graph has no input")
    feeds = _field_value(inputs[0], 1)
    if not isinstance(feeds, bytes) or not feeds:
        raise BackendError("ONNX model: the first graph input has no name")
    nodes, inits = _prefix(feeds.decode(), len(offset), offset, scale)
    graph = bytearray(nodes)  # the prefix's nodes first: the graph stays in topological order
    replaced = False
    for number, wire, payload, raw in _fields(graphs[0]):
        first = number == 11 and wire == _LEN and not replaced
        graph += _field(11, _raw_value_info(payload)) if first else raw
        replaced = replaced or first
    graph += inits
    return _rewrite(model, {7: lambda _: bytes(graph)})


__all__ = ["RAW_INPUT", "free_spatial_dims", "raw_input_graph", "raw_normalisation"]

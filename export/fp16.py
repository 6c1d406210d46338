"""fp32 ONNX → mixed fp16 ONNX, made on the host (TensorRT ≥ 11 builds fp16 only from such a graph).

``onnx`` ships no float16 converter any more and ``onnxconverter-common`` is not a dependency, so
the conversion is done here on the graph:

* a node runs in fp16 if its op is in :data:`FP16_OPS` (convolutions, elementwise, activations,
  concatenation, batch norm) and none of its outputs reached ``margin × 65504`` on the calibration
  inputs; every other node stays fp32 (reductions, exponentials, softmax, norms: the ops whose
  intermediate sums overflow fp16 — by default anything we have not vetted);
* float initializers feeding fp16 nodes get an fp16 copy; ``Cast`` nodes are inserted wherever a
  tensor crosses between precisions;
* the graph's input and output stay float32, so every backend sees the same interface.

The names of the nodes kept in fp32 go into the manifest (``precision.fp32_nodes``): TensorRT 10.x
pins the same layers to fp32 when it builds fp16 from the fp32 graph.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from edge.device.backends.onnxruntime import session_options
from export.errors import ExportError
from export.onnx_export import finalize, prepare

log = logging.getLogger(__name__)

FP16_MAX = 65504.0
#: Ops vetted to run in fp16 for our generators (values stay O(1..100) after the input centring).
FP16_OPS = frozenset({"Conv", "ConvTranspose", "Add", "Sub", "Mul", "Concat", "LeakyRelu", "Relu", "Sigmoid",
                      "Tanh", "Clip", "BatchNormalization", "Identity", "MaxPool", "AveragePool", "Pad", "Slice"})
FLOAT = TensorProto.FLOAT
HALF = TensorProto.FLOAT16


@dataclass(frozen=True)
class Fp16Result:
    """The converted model and why each fp32 node stayed fp32 (``{node name: reason}``)."""

    model: onnx.ModelProto
    fp32_nodes: dict[str, str] = field(default_factory=dict)


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.input, *g.output, *g.value_info]}
    types.update({t.name: t.data_type for t in g.initializer})
    return types


def activation_ranges(model: onnx.ModelProto, inputs: Iterable[NDArray[np.float32]]) -> dict[str, float]:
    """Largest |value| (inf if non-finite) of every float tensor a node produces, over ``inputs`` batches."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    types = _elem_types(probe)
    known = {o.name for o in probe.graph.output}
    names = [o for n in probe.graph.node for o in n.output if o and types.get(o) == FLOAT and o not in known]
    probe.graph.output.extend(helper.make_tensor_value_info(n, FLOAT, None) for n in names)
    session = ort.InferenceSession(probe.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    feed = session.get_inputs()[0].name
    ranges: dict[str, float] = {}
    for batch in inputs:
        for name, value in zip(outputs, session.run(outputs, {feed: batch}), strict=True):
            v = np.asarray(value)
            peak = float(np.abs(v).max()) if np.all(np.isfinite(v)) else float("inf")
            ranges[name] = max(ranges.get(name, 0.0), peak)
    return ranges


def choose_fp32_nodes(model: onnx.ModelProto, ranges: dict[str, float], margin: float = 0.25,
                      keep_nodes: Iterable[str] = ()) -> dict[str, str]:
    """Nodes that must stay fp32, with the reason: unvetted op, asked for, or an output near fp16 overflow."""
    limit = margin * FP16_MAX
    keep = set(keep_nodes)
    reasons = {}
    for node in model.graph.node:
        peak = max((ranges.get(o, 0.0) for o in node.output), default=0.0)
        if node.name in keep:
            reasons[node.name] = "asked for"
        elif node.op_type not in FP16_OPS:
            reasons[node.name] = f"op {node.op_type} not vetted for fp16"
        elif peak > limit:
            reasons[node.name] = f"output reaches {peak:.4g} > {limit:.4g} (fp16 overflow risk)"
    return reasons


def convert(model: onnx.ModelProto, fp32_nodes: Iterable[str], opset: int) -> onnx.ModelProto:
    """Rewrite a prepared fp32 graph to fp16 except ``fp32_nodes``; inputs and outputs stay float32."""
    src = model.graph
    types = _elem_types(model)
    keep = set(fp32_nodes)
    inits = {t.name: t for t in src.initializer}
    graph_outputs = {o.name for o in src.output}
    current = {i.name: FLOAT for i in src.input}
    nodes: list[onnx.NodeProto] = []
    half_inits: dict[str, TensorProto] = {}
    casts: dict[tuple[str, int], str] = {}

    def as_type(name: str, target: int) -> str:
        if name in inits:
            if target == FLOAT:
                return name
            if name not in half_inits:
                arr = numpy_helper.to_array(inits[name]).astype(np.float16)
                half_inits[name] = numpy_helper.from_array(arr, f"{name}__fp16")
            return half_inits[name].name
        if current.get(name, FLOAT) == target:
            return name
        if (name, target) not in casts:
            out = f"{name}__to_{'fp16' if target == HALF else 'fp32'}"
            nodes.append(helper.make_node("Cast", [name], [out], name=f"Cast_{out}", to=target))
            casts[(name, target)] = out
        return casts[(name, target)]

    for node in src.node:
        target = FLOAT if node.name in keep else HALF
        new = onnx.NodeProto()
        new.CopyFrom(node)
        for i, name in enumerate(node.input):
            if name and types.get(name) == FLOAT:
                new.input[i] = as_type(name, target)
        back = []
        for i, name in enumerate(node.output):
            if not name or types.get(name) != FLOAT:
                continue
            current[name] = target
            if target == HALF and name in graph_outputs:
                new.output[i] = f"{name}__fp16"
                back.append(helper.make_node("Cast", [new.output[i]], [name], name=f"Cast_{name}_out", to=FLOAT))
                current[name] = FLOAT
        nodes.append(new)
        nodes.extend(back)
    used = {i for n in nodes for i in n.input}
    initializers = [t for t in src.initializer if t.name in used] + [t for t in half_inits.values() if t.name in used]
    graph = helper.make_graph(nodes, src.name, list(src.input), list(src.output), initializers)
    out = helper.make_model(graph, opset_imports=list(model.opset_import))
    return finalize(out, opset)


def to_fp16(model: onnx.ModelProto, calibration: Iterable[NDArray[np.float32]], opset: int,
            margin: float = 0.25, keep_nodes: Iterable[str] = ()) -> Fp16Result:
    """Convert ``model`` to mixed fp16, keeping in fp32 the nodes :func:`choose_fp32_nodes` picks."""
    if not 0.0 < margin <= 1.0:
        raise ExportError(f"fp16 margin {margin}: expected a fraction of the fp16 range in (0, 1]")
    prepared = prepare(model)
    ranges = activation_ranges(prepared, calibration)
    reasons = choose_fp32_nodes(prepared, ranges, margin, keep_nodes)
    for name, why in reasons.items():
        log.info("fp16: keeping %s in fp32 (%s)", name, why)
    return Fp16Result(convert(prepared, reasons, opset), reasons)

"""Checkpoint → ONNX (fp32), with the IR version the installed ONNX Runtime reads and a parity check.

The graph has one input ``stack`` ``(batch, I·C, P, P)`` float32 in [0, 1] and one output
``stained`` ``(batch, 3, P, P)`` float32 in [0, 1]; the batch axis is dynamic. ``onnx`` may write a
newer IR version than ``onnxruntime`` reads, so the model's ``ir_version`` is set to the lowest IR that
supports the opset (the widest compatibility with older device runtimes) after checking that the
installed ONNX Runtime loads it.
"""

from __future__ import annotations

import functools
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from numpy.typing import NDArray
from torch import nn

from edge.device.backends.onnxruntime import OnnxRuntimeBackend
from export.errors import ExportError, ParityError
from trainer.checkpoint import generator_from_checkpoint, load_checkpoint

log = logging.getLogger(__name__)

INPUT_NAME = "stack"
OUTPUT_NAME = "stained"
DEFAULT_OPSET = 17
FP32_MAX_ABS = 1e-4  # parity of ONNX Runtime fp32 vs PyTorch on [0, 1] outputs


def load_generator(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """The generator of a trainer checkpoint (eval mode, CPU) and the checkpoint dict."""
    ckpt = load_checkpoint(Path(path))
    return generator_from_checkpoint(ckpt), ckpt


def ir_version_for_opset(opset: int) -> int:
    """The lowest ONNX IR version that carries default-domain opset ``opset``."""
    for row in onnx.helper.VERSION_TABLE:  # (release, ir, opset, ml opset[, training opset])
        ir, op = row[1], row[2]
        if op >= opset:
            return int(ir)
    raise ExportError(f"opset {opset} is newer than this onnx ({onnx.__version__}) knows")


@functools.cache
def ort_max_ir_version() -> int:
    """The highest IR version the installed ONNX Runtime loads (probed with a one-node model)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from edge.device.backends.onnxruntime import session_options

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    for ir in range(onnx.IR_VERSION, 6, -1):
        model.ir_version = ir
        try:
            ort.InferenceSession(model.SerializeToString(), session_options(1), providers=["CPUExecutionProvider"])
        except Exception:  # ORT raises its own InvalidGraph / Fail types for "unsupported model IR version"
            continue
        return ir
    raise ExportError("the installed onnxruntime loads no IR version >= 7")


def export_onnx(model: nn.Module, in_channels: int, patch_size: int, opset: int = DEFAULT_OPSET,
                names: tuple[str, str] = (INPUT_NAME, OUTPUT_NAME)) -> onnx.ModelProto:
    """Trace ``model`` to ONNX with a dynamic batch axis, set a compatible IR version and run the full check.

    ``names``: the graph's input and output names (a style model: ``("rgb", "styled")``)."""
    if opset < 17:
        raise ExportError(f"opset {opset}: the bundle format needs opset >= 17")
    model = model.eval()
    dummy = torch.rand(2, in_channels, patch_size, patch_size)
    with tempfile.TemporaryDirectory(prefix="stainless-onnx-") as tmp, warnings.catch_warnings():
        # torch's TorchScript exporter is deprecated in favour of the dynamo one, which needs onnxscript
        # (not a dependency); its output for these conv nets is identical.
        warnings.simplefilter("ignore", DeprecationWarning)
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(model, (dummy,), path, dynamo=False, opset_version=opset, input_names=[names[0]],
                          output_names=[names[1]], do_constant_folding=True,
                          dynamic_axes={names[0]: {0: "batch"}, names[1]: {0: "batch"}})
        proto = onnx.load(str(path))
    return finalize(prepare(proto), opset)


def _name_nodes(graph: onnx.GraphProto) -> None:
    seen: set[str] = set()
    for i, node in enumerate(graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)


def _constants_to_initializers(graph: onnx.GraphProto) -> None:
    keep = []
    for node in graph.node:
        value = next((a for a in node.attribute if a.name == "value"), None)
        if node.op_type == "Constant" and value is not None:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(value.t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)


def _bypass_initializer_identities(graph: onnx.GraphProto) -> None:
    """Drop ``Identity(initializer)`` nodes (the exporter's weight sharing): quantisers and TensorRT want
    weights and biases to be initializers of the Conv itself."""
    inits = {t.name for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    alias = {n.output[0]: n.input[0] for n in graph.node
             if n.op_type == "Identity" and n.input[0] in inits and n.output[0] not in outputs}
    keep = [n for n in graph.node if not (n.op_type == "Identity" and n.output and n.output[0] in alias)]
    for node in keep:
        for i, name in enumerate(node.input):
            node.input[i] = alias.get(name, name)
    del graph.node[:]
    graph.node.extend(keep)


def prepare(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy with unique node names, ``Constant`` nodes turned into initializers and no initializer aliases."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    _constants_to_initializers(out.graph)
    _bypass_initializer_identities(out.graph)
    _name_nodes(out.graph)
    return out


def finalize(proto: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """Set the IR version for ``opset`` (refusing one ONNX Runtime cannot read) and run the full checker."""
    ir = ir_version_for_opset(opset)
    max_ir = ort_max_ir_version()
    if ir > max_ir:
        raise ExportError(f"opset {opset} needs IR version {ir}; the installed onnxruntime reads <= {max_ir}: "
                          "lower the opset or upgrade onnxruntime")
    proto.ir_version = ir
    proto.producer_name = "stainless-export"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"exported ONNX fails onnx.checker: {exc}") from exc
    return proto


@dataclass(frozen=True)
class Parity:
    """Absolute error of one model against a reference on the same inputs (outputs in [0, 1])."""

    label: str
    max_abs: float
    median_abs: float
    p99_abs: float
    n_values: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def parity(label: str, got: NDArray[Any], want: NDArray[Any]) -> Parity:
    err = np.abs(got.astype(np.float64) - want.astype(np.float64)).ravel()
    return Parity(label, float(err.max()), float(np.median(err)), float(np.percentile(err, 99)), int(err.size))


def torch_outputs(model: nn.Module, inputs: NDArray[np.float32]) -> NDArray[np.float32]:
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(inputs))).numpy().astype(np.float32)


def onnx_outputs(proto: onnx.ModelProto | bytes, inputs: NDArray[np.float32], batch: int = 8) -> NDArray[np.float32]:
    """Run a model in ONNX Runtime (CPU) on ``inputs`` in batches of ``batch``."""
    data = proto if isinstance(proto, bytes) else proto.SerializeToString()
    backend = OnnxRuntimeBackend(data, label="exported model")
    try:
        return np.concatenate([backend.infer(inputs[i:i + batch]) for i in range(0, len(inputs), batch)])
    finally:
        backend.close()


def check_fp32_parity(model: nn.Module, proto: onnx.ModelProto, inputs: NDArray[np.float32],
                      max_abs: float = FP32_MAX_ABS) -> Parity:
    """ONNX Runtime vs PyTorch on ``inputs``; :class:`ParityError` beyond ``max_abs``."""
    result = parity("fp32 onnxruntime vs torch", onnx_outputs(proto, inputs), torch_outputs(model, inputs))
    if result.max_abs > max_abs:
        raise ParityError(f"ONNX fp32 differs from PyTorch by up to {result.max_abs:.3g} (allowed {max_abs:g}); "
                          "the export is wrong — report the model config")
    log.info("fp32 parity: max abs %.3g over %d values", result.max_abs, result.n_values)
    return result


def save_model(proto: onnx.ModelProto, path: Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(proto.SerializeToString())

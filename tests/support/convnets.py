"""Small fully convolutional ONNX models built with ``onnx.helper`` (no torch): tiling references."""

from __future__ import annotations

import numpy as np


def conv_chain(layers: int, channels: int = 4, patch: int | None = None, dilation: int = 1) -> bytes:
    """``layers`` 3x3 convolutions (zero padding, LeakyReLU between, sigmoid at the end) as ONNX.

    Its receptive-field radius is ``layers * dilation`` px; ``patch`` None gives free spatial axes.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    nodes, inits, src, feats = [], [], "x", channels
    for i in range(layers):
        out_ch = 3 if i == layers - 1 else 8
        w = (rng.standard_normal((out_ch, feats, 3, 3)) * (1.0 / np.sqrt(9 * feats))).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(np.zeros(out_ch, np.float32), f"b{i}")]
        nodes.append(helper.make_node("Conv", [src, f"w{i}", f"b{i}"], [f"c{i}"], pads=[dilation] * 4,
                                      dilations=[dilation, dilation]))
        act = "Sigmoid" if i == layers - 1 else "LeakyRelu"
        nodes.append(helper.make_node(act, [f"c{i}"], ["y" if i == layers - 1 else f"a{i}"]))
        src, feats = f"a{i}", out_ch
    hw: list[str | int] = ["height", "width"] if patch is None else [patch, patch]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                             ["batch", channels, *hw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, *hw])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()

"""The ONNX Runtime session of a shipped white-cell model (the finder and its second check)."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from trainer.errors import TrainerError


def onnx_session(p: Path, missing: str) -> ort.InferenceSession:
    """A one-thread CPU ONNX Runtime session of the model at ``p``; ``missing`` is the error when there
    is no such file."""
    if not p.is_file():
        raise TrainerError(missing)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise TrainerError(f"{p}: not a loadable ONNX model ({exc})") from exc

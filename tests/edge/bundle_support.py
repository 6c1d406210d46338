"""Helpers for the bundle tests: the stored golden bundle, and rewriting it member by member."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.device.bundle import read_members, sha256
from edge.device.manifest import MANIFEST_NAME, SIGNATURE_NAME, canonical_json, signature_blob

DATA = Path(__file__).parents[1] / "data" / "export"
GOLDEN_BUNDLE = DATA / "tiny-1.0.0.stainless"
GOLDEN_PUB = DATA / "tiny.pub"


def golden_members() -> dict[str, bytes]:
    return read_members(GOLDEN_BUNDLE)


def manifest_doc(members: dict[str, bytes]) -> dict[str, Any]:
    return json.loads(members[MANIFEST_NAME])


def write_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def resign(path: Path, members: dict[str, bytes], doc: dict[str, Any], key: Ed25519PrivateKey,
           rehash: bool = True) -> Path:
    """Write ``members`` with manifest ``doc`` (hashes recomputed unless ``rehash`` is off), signed by ``key``."""
    members = dict(members)
    if rehash:
        doc = {**doc, "files": {n: sha256(members[n]) for n in doc["files"]}}
    members[MANIFEST_NAME] = json.dumps(doc).encode()
    members[SIGNATURE_NAME] = signature_blob(key.sign(canonical_json(doc)), key.public_key())
    return write_tar(path, members)


def colour_onnx(matrix: Any, patch: int) -> bytes:
    """A torch-free style model: ``clip(M @ rgb, 0, 1)`` per pixel (a 1x1 conv), input ``rgb``, output ``styled``
    ``(batch, 3, patch, patch)``; a NaN matrix entry makes it emit NaN."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = np.asarray(matrix, np.float32).reshape(3, 3, 1, 1)
    lo, hi = numpy_helper.from_array(np.float32(0.0), "lo"), numpy_helper.from_array(np.float32(1.0), "hi")
    nodes = [helper.make_node("Conv", ["rgb", "w"], ["z"]), helper.make_node("Clip", ["z", "lo", "hi"], ["styled"])]
    graph = helper.make_graph(
        nodes, "style", [helper.make_tensor_value_info("rgb", TensorProto.FLOAT, ["batch", 3, patch, patch])],
        [helper.make_tensor_value_info("styled", TensorProto.FLOAT, ["batch", 3, patch, patch])],
        [numpy_helper.from_array(w, "w"), lo, hi])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def bench_bundle(path: Path, model: Path, key: Ed25519PrivateKey, styles: dict[str, Any]) -> Path:
    """A signed ``full-nohe`` bundle of the bench's tiny ONNX ``model`` (fp32 only) with ``styles``
    (name → 3x3 colour matrix, see :func:`colour_onnx`), golden outputs from ONNX Runtime."""
    import numpy as np

    from edge.device.backends.onnxruntime import OnnxRuntimeBackend
    from firmware_bridge.recipes import resolve_recipe
    from firmware_bridge.rigs import get_profile

    def run(data: bytes, x: Any) -> Any:
        backend = OnnxRuntimeBackend(data)
        try:
            return backend.infer(x)
        finally:
            backend.close()

    members = golden_members()
    doc = manifest_doc(members)
    recipe = resolve_recipe("full-nohe", get_profile("thesis-43"))
    data = model.read_bytes()
    backend = OnnxRuntimeBackend(data)
    c, p = backend.in_channels, backend.patch_size
    backend.close()
    x = np.random.default_rng(0).uniform(0, 1, (2, c, p, p)).astype(np.float32)
    y = run(data, x)
    out = {"model.fp32.onnx": data, "golden/input_000.npy": _npy(x), "golden/output_000.npy": _npy(y)}
    doc.update(recipe={"id": recipe.id, "hash": recipe.hash, "channels": list(recipe.channel_names)}, patch_size=p,
               precision={**doc["precision"], "preferred": "fp32", "models": [
                   {"precision": "fp32", "file": "model.fp32.onnx", "tolerance": {"max_abs": 1e-5, "p99_abs": 1e-5}}]},
               input={**doc["input"], "shape": ["batch", c, p, p]},
               output={**doc["output"], "shape": ["batch", 3, p, p]})
    doc["styles"] = []
    for name, matrix in styles.items():
        onnx_bytes = colour_onnx(matrix, p)
        out[f"styles/{name}.fp32.onnx"] = onnx_bytes
        out[f"golden/style-{name}_000.npy"] = _npy(np.nan_to_num(run(onnx_bytes, y)))
        doc["styles"].append({
            "name": name, "payload": f"stained:{name}", "file": f"styles/{name}.fp32.onnx", "precision": "fp32",
            "input": {"name": "rgb", "shape": ["batch", 3, p, p], "source": "output"},
            "output": {"name": "styled", "shape": ["batch", 3, p, p], "range": [0.0, 1.0]},
            "tolerance": {"max_abs": 1e-5, "p99_abs": 1e-5},
            "golden": {"input": "golden/output_000.npy", "output": f"golden/style-{name}_000.npy"}})
    doc["files"] = dict.fromkeys(out, "")
    return resign(path, out, doc, key)


def _npy(arr: Any) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr, np.float32), allow_pickle=False)
    return buf.getvalue()

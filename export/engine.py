"""``stainless-export engine``: build a TensorRT engine from a bundle on the device, then self-test it.

Thin: the bundle is verified by :func:`edge.bundle.verify_bundle`, the plan comes from
:func:`edge.backends.tensorrt.plan_engine`, the build from :func:`edge.backends.tensorrt.build_engine`,
and the engine must reproduce the golden outputs within the tolerance of the precision it was built for.
Torch-free, so it also runs from the device install.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.backends import tensorrt as trt_backend
from edge.bundle import load_npy, read_members, verify_bundle
from edge.errors import SelfTestError
from edge.manifest import GoldenResult, compare_outputs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineReport:
    engine: Path
    plan: trt_backend.EnginePlan
    golden: GoldenResult

    def to_dict(self) -> dict[str, Any]:
        return {"engine": str(self.engine), "plan": self.plan.__dict__,
                "golden": {**self.golden.__dict__, "tolerance": self.golden.tolerance.__dict__,
                           "passed": self.golden.passed}}


def build_bundle_engine(bundle: Path, precision: str, cache_dir: Path, max_batch: int | None = None,
                        public_key: Path | None = None) -> EngineReport:
    """Verify ``bundle``, build (or reuse) its ``precision`` engine in ``cache_dir`` and self-test it."""
    trt = trt_backend.require_tensorrt()  # fail first, and clearly, where TensorRT is absent
    report = verify_bundle(bundle, public_key, require_signature=public_key is not None, run_self_test=False)
    report.raise_for_failure()
    manifest = report.manifest
    if manifest is None:
        raise SelfTestError(f"{bundle}: no manifest")
    plan = trt_backend.plan_engine(manifest, precision, trt.__version__, max_batch)
    members = read_members(bundle)
    with tempfile.TemporaryDirectory(prefix="stainless-engine-") as tmp:
        onnx_path = Path(tmp) / plan.onnx_file
        onnx_path.write_bytes(members[plan.onnx_file])
        engine = trt_backend.build_engine(onnx_path, plan, (manifest.in_channels, manifest.patch_size,
                                                            manifest.patch_size), manifest.input_name,
                                          cache_dir, manifest.files[plan.onnx_file])
    backend = trt_backend.TensorRTBackend(engine, plan.sizes, manifest.input_name, manifest.output_name)
    try:
        pairs = [(load_npy(members[g.input], g.input), load_npy(members[g.output], g.output))
                 for g in manifest.golden]
        got = np.concatenate([backend.infer(x) for x, _ in pairs])
    finally:
        backend.close()
    tol = manifest.model(precision if precision in [m.precision for m in manifest.models] else "fp16").tolerance
    result = compare_outputs(got, np.concatenate([y for _, y in pairs]), tol, precision)
    if not result.passed:
        engine.unlink(missing_ok=True)  # never leave an engine that failed its self-test in the cache
        raise SelfTestError(f"engine {engine.name} fails the golden self-test: {result.describe()}")
    return EngineReport(engine, plan, result)

"""``stainless-export engine``: build a TensorRT engine from a bundle on the device, then self-test it.

Thin: the bundle is verified by :func:`edge.device.bundle.verify_bundle`, the plan comes from
:func:`edge.device.backends.tensorrt.plan_engine`, the build from :func:`edge.device.backends.tensorrt.build_engine`,
and the engine must reproduce the golden outputs within the tolerance of the precision it was built for.
Torch-free, so it also runs from the device install.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.device.backends import tensorrt as trt_backend
from edge.device.bundle import read_members, verify_bundle
from edge.device.errors import SelfTestError
from edge.device.manifest import GoldenResult

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
    trt_backend.require_tensorrt()  # fail first, and clearly, where TensorRT is absent
    report = verify_bundle(bundle, public_key, require_signature=public_key is not None, run_self_test=False)
    report.raise_for_failure()
    manifest = report.manifest
    if manifest is None:
        raise SelfTestError(f"{bundle}: no manifest")
    members = read_members(bundle)
    backend, plan, result = trt_backend.open_bundle_engine(manifest, members.__getitem__, precision, cache_dir,
                                                           max_batch)
    backend.close()
    return EngineReport(backend.engine_path, plan, result)

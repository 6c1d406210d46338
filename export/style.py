"""Stain styles in a bundle: each a small ONNX that runs on the main generator's RGB output.

A style trained by ``stainless-train fit-style`` (``style.pt``, its ``G_AB``) becomes
``styles/<name>.fp32.onnx`` with input ``rgb`` ``(batch, 3, P, P)`` and output ``styled``
``(batch, 3, P, P)``, both float32 in [0, 1]. Its golden input is the main model's golden output
(``golden/output_000.npy``: the style sees exactly what it will see on the device), its golden
output the PyTorch result (``golden/style-<name>_000.npy``). The manifest lists it under
``styles`` (see :mod:`edge.device.manifest`); the device publishes it as payload ``stained:<name>``.

Why a separate model and not a second output of the main graph: the main generator, its fp16 /
int8 variants, their golden tests and TensorRT engines stay byte-identical whether or not a lab
adds styles; a style can be added to (or replaced in) a signed bundle without the paired
checkpoint (:func:`restyle_bundle`); and bundles without styles need no new code path. The price
is one more inference call per batch on a ``(B, 3, P, P)`` tensor, small next to the generator's.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from numpy.typing import NDArray

from edge.device.bundle import sha256
from edge.device.manifest import Tolerance, compare_outputs
from edge.device.selftest import load_npy
from export.bundlefile import open_for_new_content, write_new_version
from export.errors import ExportError, ParityError
from export.onnx_export import DEFAULT_OPSET, export_onnx, onnx_outputs, parity, torch_outputs
from trainer.style.config import STYLE_NAME
from trainer.style.models import load_style_checkpoint, style_generator_from_checkpoint

log = logging.getLogger(__name__)

STYLE_NAMES = ("rgb", "styled")
STYLE_TOLERANCE = Tolerance(5e-4, 1e-4)
MAIN_GOLDEN_OUTPUT = "golden/output_000.npy"


@dataclass
class StyleReport:
    """Per style: ONNX parity against PyTorch and the member sizes."""

    parity: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: dict[str, int] = field(default_factory=dict)


def _npy(arr: NDArray[np.float32]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr, np.float32), allow_pickle=False)
    return buf.getvalue()


def parse_style_args(values: list[str]) -> dict[str, Path]:
    """``["wright-giemsa=runs/wg/style.pt", ...]`` → ``{name: path}``; a bare path takes the checkpoint's name."""
    styles: dict[str, Path] = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep:
            path, name = v, str(load_style_checkpoint(Path(v))["style"])
        if STYLE_NAME.fullmatch(name) is None or name in styles:
            raise ExportError(f"--style {v!r}: expected NAME=CHECKPOINT with a new name of [a-z0-9._-]")
        styles[name] = Path(path)
    return styles


def style_members(name: str, checkpoint: Path, golden_input: NDArray[np.float32], patch: int,
                  opset: int = DEFAULT_OPSET) -> tuple[dict[str, bytes], dict[str, Any], dict[str, Any]]:
    """Export one style: its members, its manifest entry and its parity figures."""
    ckpt = load_style_checkpoint(checkpoint)
    spec = ckpt["model"]
    if (spec["in_channels"], spec["out_channels"]) != (3, 3):
        raise ExportError(f"style {name}: a bundle style maps the generator's RGB to RGB; {checkpoint} maps "
                          f"{spec['in_channels']} → {spec['out_channels']} channels (an N-channel A domain)")
    model = style_generator_from_checkpoint(ckpt)
    with warnings.catch_warnings():  # instance norm always uses the image's own statistics, in eval mode too
        warnings.filterwarnings("ignore", message=".*(instance_norm|Constant folding).*", category=UserWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # instance norm's shape checks
        proto = export_onnx(model, 3, patch, opset, names=STYLE_NAMES)
    want = torch_outputs(model, golden_input)
    got = onnx_outputs(proto, golden_input)
    check = compare_outputs(got, want, STYLE_TOLERANCE, f"style {name}")
    if not check.passed:
        raise ParityError(f"style {name}: ONNX Runtime differs from PyTorch: {check.describe()}")
    file, golden = f"styles/{name}.fp32.onnx", f"golden/style-{name}_000.npy"
    entry = {"name": name, "payload": f"stained:{name}", "file": file, "precision": "fp32",
             "input": {"name": STYLE_NAMES[0], "shape": ["batch", 3, patch, patch], "source": "output"},
             "output": {"name": STYLE_NAMES[1], "shape": ["batch", 3, patch, patch], "range": [0.0, 1.0]},
             "tolerance": STYLE_TOLERANCE.__dict__, "golden": {"input": MAIN_GOLDEN_OUTPUT, "output": golden},
             "training": {k: ckpt.get(k) for k in ("config", "metrics", "model", "epoch", "step")}}
    members = {file: proto.SerializeToString(), golden: _npy(want)}
    return members, entry, parity(f"style {name} onnxruntime vs torch", got, want).to_dict()


def add_styles(members: dict[str, bytes], manifest: dict[str, Any], styles: dict[str, Path],
               opset: int = DEFAULT_OPSET) -> StyleReport:
    """Export ``styles`` into ``members`` and ``manifest`` (in place), replacing styles of the same name;
    the manifest's ``files`` are updated. The main model's golden output must be among ``members``."""
    if MAIN_GOLDEN_OUTPUT not in members:
        raise ExportError(f"the bundle has no {MAIN_GOLDEN_OUTPUT}; styles take the main golden output as input")
    golden_in = load_npy(members[MAIN_GOLDEN_OUTPUT], MAIN_GOLDEN_OUTPUT)
    patch = int(manifest["patch_size"])
    entries = {e["name"]: e for e in manifest.get("styles", [])}
    report = StyleReport()
    for name, path in styles.items():
        old = entries.pop(name, None)
        for member in (old["file"], old["golden"]["output"]) if old else ():
            members.pop(member, None)
            manifest["files"].pop(member, None)
        new, entry, par = style_members(name, path, golden_in, patch, opset)
        members.update(new)
        manifest["files"].update({m: sha256(b) for m, b in new.items()})
        entries[name] = entry
        report.parity[name] = par
        report.members.update({m: len(b) for m, b in new.items()})
        log.info("style %s from %s: max |onnx - torch| %.3g", name, path, par["max_abs"])
    manifest["styles"] = [entries[k] for k in sorted(entries)]
    return report


def restyle_bundle(bundle: Path, styles: dict[str, Path], version: str, key: Ed25519PrivateKey | None,
                   out: Path, public_key: Path | Ed25519PublicKey | None = None,
                   opset: int = DEFAULT_OPSET) -> tuple[Path, StyleReport]:
    """A new bundle version: ``bundle`` (verified; its signature too when ``public_key`` is given) plus
    ``styles``, re-signed with ``key``. The main models are carried over byte for byte."""

    doc, members = open_for_new_content(bundle, version, public_key)
    result = add_styles(members, doc, styles, opset)
    path = write_new_version(doc, members, version, key, out)
    return path, result

"""Does denoising the darkfield planes improve staining at short exposures? (the experiment behind
``stainless-train denoise``).

Per evaluation field the simulator gives the stack as captured at the calibrated exposures, the
noise-free darkfield planes and the same planes exposed k times shorter (gained back). The
generator (an ONNX model, by default the shipped ``models/default.stainless``) stains 64 px cells
cut from four versions of the stack — ``calibrated`` (what it was trained on), ``short`` (darkfield
planes k times shorter), ``denoised`` (those planes through the despeckling net) and
``noise-free`` (the simulator's expectation, the ceiling) — and each is scored against the
simulator's stained truth (SSIM, MAE, nucleus IoU). The planes themselves are scored too (the
seed's SSIM_input / SSIM_output against the noise-free planes).
"""

from __future__ import annotations

import logging
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from skimage.metrics import structural_similarity

from edge.device.backends.onnxruntime import OnnxRuntimeBackend
from trainer.denoise import DespeckleNet, SimField, apply_planes
from trainer.metrics import mae, ssim
from trainer.nucleus import nucleus_fidelity

log = logging.getLogger(__name__)

CONDITIONS = ("calibrated", "short", "denoised", "noise-free")


def open_generator(path: Path, threads: int = 1) -> OnnxRuntimeBackend:
    """An ONNX Runtime generator from a ``.stainless`` bundle (its fp32 model) or an ``.onnx`` file."""
    if path.suffix == ".stainless":
        with tarfile.open(path) as tar:
            member = tar.extractfile("model.fp32.onnx")
            if member is None:
                raise ValueError(f"{path}: bundle without model.fp32.onnx")
            return OnnxRuntimeBackend(member.read(), threads=threads, label=str(path))
    return OnnxRuntimeBackend(path, threads=threads, label=str(path))


def plane_ssim(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    """Mean SSIM of planes ``a`` against reference planes ``b`` ``(..., H, W)``; the data range is each
    reference plane's own (darkfield planes use a few percent of the ADC's range)."""
    fa, fb = a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:])
    return float(np.mean([structural_similarity(x, y, data_range=max(float(y.max() - y.min()), 1e-3))
                          for x, y in zip(fa, fb, strict=True)]))


def _stacks(f: SimField, denoised: NDArray[np.float32]) -> dict[str, NDArray[np.float32]]:
    out = {}
    for name, planes in (("calibrated", None), ("short", f.noisy), ("denoised", denoised), ("noise-free", f.clean)):
        s = f.stack.copy()
        if planes is not None:
            s[f.darkfield] = planes
        out[name] = s.reshape(-1, *s.shape[-2:])
    return out


def _cells(f: SimField, patch: int) -> list[tuple[int, int]]:
    h, w = f.stack.shape[-2:]
    half = patch // 2
    return [(round(y) - half, round(x) - half) for x, y in f.cells_px
            if half <= round(x) <= w - half and half <= round(y) <= h - half]


def score_field(f: SimField, net: DespeckleNet, generator: OnnxRuntimeBackend) -> dict[str, Any]:
    """Per-condition staining scores of the cells of ``f`` and the planes' SSIM (see the module doc)."""
    denoised = apply_planes(net, f.noisy)
    stacks = _stacks(f, denoised)
    p = generator.patch_size
    rows: dict[str, list[dict[str, float]]] = {c: [] for c in CONDITIONS}
    for y0, x0 in _cells(f, p):
        target = f.stained[:, y0:y0 + p, x0:x0 + p]
        batch = np.stack([stacks[c][:, y0:y0 + p, x0:x0 + p] for c in CONDITIONS])
        for c, pred in zip(CONDITIONS, generator.infer(batch), strict=True):
            nf = nucleus_fidelity(np.moveaxis(pred, 0, -1), np.moveaxis(target, 0, -1))
            rows[c].append({"ssim": ssim(pred, target), "mae": mae(pred, target), "nucleus_iou": nf["nucleus_iou"]})
    planes = {"ssim_short": plane_ssim(f.noisy, f.clean), "ssim_denoised": plane_ssim(denoised, f.clean),
              "ssim_calibrated": plane_ssim(f.stack[f.darkfield], f.clean)}
    return {"cells": rows, "planes": planes, "denoised": denoised}


def summarise(scores: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means over every cell of every field, per condition, and the planes' mean SSIM."""
    out: dict[str, Any] = {"cells": sum(len(s["cells"]["calibrated"]) for s in scores), "staining": {}}
    for c in CONDITIONS:
        rows = [r for s in scores for r in s["cells"][c]]
        out["staining"][c] = {k: float(np.mean([r[k] for r in rows])) if rows else float("nan")
                              for k in ("ssim", "mae", "nucleus_iou")}
    out["planes"] = {k: float(np.mean([s["planes"][k] for s in scores])) for k in scores[0]["planes"]}
    st = out["staining"]
    out["improves_staining"] = bool(st["denoised"]["ssim"] > st["short"]["ssim"])
    return out


def figure(f: SimField, denoised: NDArray[np.float32], generator: OnnxRuntimeBackend, path: Path) -> None:
    """A PNG: darkfield plane short | denoised | noise-free (stretched), then the stain of one cell for
    each condition and the truth."""
    import cv2

    stacks = _stacks(f, denoised)
    p = generator.patch_size
    cells = _cells(f, p) or [((f.stack.shape[-2] - p) // 2, (f.stack.shape[-1] - p) // 2)]
    y0, x0 = cells[0]
    plane = int(np.argmax(f.clean.reshape(len(f.clean) * 3, -1).mean(axis=1)))
    gain = 0.9 / max(float(np.percentile(f.clean.reshape(-1, *f.clean.shape[-2:])[plane], 99.5)), 1e-6)

    def grey(a: NDArray[np.float32]) -> NDArray[np.uint8]:
        tile = a.reshape(-1, *a.shape[-2:])[plane, y0:y0 + p, x0:x0 + p] * gain
        return np.repeat(np.clip(tile * 255, 0, 255).astype(np.uint8)[..., None], 3, axis=2)

    batch = np.stack([stacks[c][:, y0:y0 + p, x0:x0 + p] for c in CONDITIONS])
    stains = [*generator.infer(batch), f.stained[:, y0:y0 + p, x0:x0 + p]]
    rgb = [np.clip(np.moveaxis(s, 0, -1) * 255, 0, 255).astype(np.uint8) for s in stains]
    top = np.concatenate([grey(f.noisy), grey(denoised), grey(f.clean)] + [np.zeros_like(rgb[0])] * 2, axis=1)
    sheet = np.concatenate([top, np.concatenate(rgb, axis=1)], axis=0)
    sheet = cv2.resize(sheet, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")


__all__ = ["CONDITIONS", "figure", "open_generator", "plane_ssim", "score_field", "summarise"]

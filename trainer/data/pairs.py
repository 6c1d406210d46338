"""One field → training pairs: the pure part of the dataset build.

:func:`pair_field` takes the arrays of one field (PLS stack, stained re-scan, optional 100x tiles)
and their sidecars and returns the crops, targets and metadata rows, with counts of what was
rejected and why. It reads no files and never sees the simulator's truth.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trainer.data.align import fine_align, warp_window
from trainer.data.config import BuildConfig
from trainer.data.hr import match_tile, resample_tile
from trainer.data.plscheck import pls_shift
from trainer.data.registration import Registration, RegistrationError, register
from trainer.data.store import QC_FLAGS
from trainer.wbc.finder import detect

log = logging.getLogger(__name__)


class FieldRejected(Exception):
    """The whole field is skipped; ``reason`` is the short key counted in the report."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass
class FieldPairs:
    """The samples of one field and what happened on the way."""

    inputs: list[NDArray[np.uint16]] = field(default_factory=list)  # each (I, C, P, P)
    targets: list[NDArray[np.uint16]] = field(default_factory=list)  # each (C, P, P)
    targets_hr: list[NDArray[np.uint16]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)  # META_COLUMNS minus split/slide/sample_id
    cells: Counter[str] = field(default_factory=Counter)  # small_objects, found, kept, rejected:<why>, flag:<qc>
    registration: Registration | None = None
    pls_px: float = 0.0
    fine_offsets: list[float] = field(default_factory=list)  # |fine offset| per kept cell, px
    hr_scores: list[float] = field(default_factory=list)


def _bf_plane(planes: list[dict[str, Any]]) -> int:
    for i, p in enumerate(planes):
        if p.get("channel") == "bf" or p.get("led") is None:
            return i
    raise FieldRejected("no_brightfield", "the stack has no brightfield plane ('bf'): cannot register")


def _check_shapes(stack: NDArray[Any], stained: NDArray[Any], meta: dict[str, Any], smeta: dict[str, Any]) -> None:
    if stack.ndim != 4 or stained.ndim != 3 or stack.shape[1] != stained.shape[0]:
        raise FieldRejected("bad_shape", f"stack {stack.shape} / stained {stained.shape}: expected (N, C, H, W) and "
                            "(C, H, W) with the same C")
    if stack.shape[-2:] != stained.shape[-2:]:
        raise FieldRejected("size_mismatch", f"stack is {stack.shape[-1]}x{stack.shape[-2]} px, stained "
                            f"{stained.shape[-1]}x{stained.shape[-2]}")
    ps, pss = meta.get("pixel_size_um"), smeta.get("pixel_size_um")
    if not ps or not pss or abs(ps - pss) > 1e-3 * ps:
        raise FieldRejected("pixel_size_mismatch", f"unstained {ps} µm vs stained {pss} µm per px")


def _hr_target(cfg: BuildConfig, hr: tuple[NDArray[np.uint16], dict[str, Any]] | None, stained: NDArray[np.uint16],
               reg: Registration, cell: dict[str, Any], meta: dict[str, Any],
               black: float) -> tuple[NDArray[np.uint16] | None, float, bool]:
    """100x target of one crop, its match score, and whether it is trustworthy."""
    if hr is None:
        return None, 0.0, False
    tiles, hmeta = hr
    ps, hps = meta["pixel_size_um"], hmeta["pixel_size_um"]
    sx, sy = meta["stage_position_um"]
    centres = np.asarray(hmeta.get("tile_centres_stage_um", []), float).reshape(-1, 2)
    if len(centres) == 0:
        return None, 0.0, False
    d = np.hypot(centres[:, 0] - cell["x_um"], centres[:, 1] - cell["y_um"])
    k = int(np.argmin(d))
    if d[k] > 0.5 * tiles.shape[-1] * hps:
        return None, 0.0, False
    expected = ((centres[k, 0] - sx) / ps - 0.5 + cell["dx"], (centres[k, 1] - sy) / ps - 0.5 + cell["dy"])
    match = match_tile(tiles[k], stained, reg.matrix, expected, ps / hps, cfg.hr, ps,
                       hmeta["camera"]["black_level_adu"], black)
    target, cover = resample_tile(tiles[k], match, cell["x0"] + cell["dx"], cell["y0"] + cell["dy"], cfg.align.crop_px)
    return target, match.score, match.score >= cfg.hr.min_score and cover >= 0.9


def pair_field(stack: NDArray[np.uint16], meta: dict[str, Any], stained: NDArray[np.uint16], smeta: dict[str, Any],
               cfg: BuildConfig, hr: tuple[NDArray[np.uint16], dict[str, Any]] | None = None,
               want_hr: bool = False) -> FieldPairs:
    """Pairs of one field. ``stack`` ``(N, C, H, W)`` + ``unstained.json``; ``stained`` ``(C, H, W)`` +
    ``stained.json``; ``hr`` = (tiles ``(T, C, h, w)``, ``hr.json``). Raises :class:`FieldRejected`."""
    _check_shapes(stack, stained, meta, smeta)
    out = FieldPairs()
    black_u, black_s = meta["camera"]["black_level_adu"], smeta["camera"]["black_level_adu"]
    bf = stack[_bf_plane(meta["planes"])]
    shift = pls_shift(stack, meta["planes"], meta["objective"]["na"], black_u)
    out.pls_px = shift.magnitude if shift else 0.0
    pls_bad = out.pls_px > cfg.pls.max_shift_px
    if pls_bad and cfg.pls.action == "reject":
        raise FieldRejected("pls_misaligned", f"brightfield shifted {out.pls_px:.2f} px against the PLS images")
    try:
        reg = register(stained, bf, cfg.registration, black_s, black_u)
    except RegistrationError as exc:
        raise FieldRejected("registration_failed", str(exc)) from exc
    out.registration = reg
    ps = meta["pixel_size_um"]
    size, r = cfg.align.crop_px, cfg.align.search_px
    h, w = bf.shape[-2:]
    for cand in detect(stained, ps, cfg.wbc, black_s):
        if cand.reason == "too_small":  # platelets, precipitate, rim fragments: not cells
            out.cells["small_objects"] += 1
            continue
        out.cells["found"] += 1
        if cand.reason:
            out.cells[f"rejected:{cand.reason}"] += 1
            continue
        xu, yu = reg.to_unstained(np.array([[cand.x, cand.y]]))[0]
        x0, y0 = round(xu) - size // 2, round(yu) - size // 2
        corners = reg.to_stained(np.array([[x0 - r, y0 - r], [x0 + size + r, y0 + size + r],
                                           [x0 - r, y0 + size + r], [x0 + size + r, y0 - r]], float))
        inside = x0 - r >= 0 and y0 - r >= 0 and x0 + size + r <= w and y0 + size + r <= h
        if not inside or corners.min() < 0 or np.any(corners.max(axis=0) > [w - 1, h - 1]):
            out.cells["rejected:near_border"] += 1
            continue
        fine = fine_align(stained, bf, reg.matrix, x0, y0, size, r, cfg.align.subpixel, black_s, black_u,
                          cfg.align.min_gain)
        flags = QC_FLAGS["pls_misaligned"] if pls_bad else 0
        if fine.ssim < cfg.align.min_ssim:
            flags |= QC_FLAGS["low_alignment"]
        cx, cy = xu - fine.dx, yu - fine.dy
        cell = {"x0": x0, "y0": y0, "dx": fine.dx, "dy": fine.dy,
                "x_um": meta["stage_position_um"][0] + (cx + 0.5) * ps,
                "y_um": meta["stage_position_um"][1] + (cy + 0.5) * ps}
        if want_hr:
            target_hr, score, ok = _hr_target(cfg, hr, stained, reg, cell, meta, black_s)
            out.targets_hr.append(target_hr if target_hr is not None else np.zeros((stained.shape[0], size, size),
                                                                                     np.uint16))
            out.hr_scores.append(score)
            flags |= 0 if ok else QC_FLAGS["hr_mismatch"]
        out.inputs.append(np.ascontiguousarray(stack[:, :, y0:y0 + size, x0:x0 + size]))
        out.targets.append(warp_window(stained, reg.matrix, x0 + fine.dx, y0 + fine.dy, size))
        out.fine_offsets.append(float(np.hypot(fine.dx, fine.dy)))
        out.rows.append({"field": int(meta.get("field", -1)), "x_um": cell["x_um"], "y_um": cell["y_um"],
                         "cell_type": "", "registration_score": reg.score, "alignment_score": fine.ssim,
                         "pls_misalignment_px": out.pls_px, "qc_flags": flags, "crop_xy": (x0, y0),
                         "fine_offset": (fine.dx, fine.dy)})
        out.cells["kept"] += 1
        for name, bit in QC_FLAGS.items():
            if flags & bit:
                out.cells[f"flag:{name}"] += 1
    return out

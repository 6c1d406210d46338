"""Virtual-bench measurements (imports :mod:`sim`; never used on the device).

* :func:`evaluate_detector` — recall and precision of the default detector against the
  simulator's truth. White cells cut by the field border whose centre lies outside the field are
  not in the truth; detections on them count neither way ("don't care", as in detection benchmarks).
* :func:`calibrate_fidelity` — fidelity scores of the true stain (the simulator's stained
  rendering of the same smear, registered) against the same stain with each cell's nucleus
  removed (painted with the cell's cytoplasm colour); picks the thresholds that separate them best.
* :class:`StainedTruth` — the daemon's ``[virtual_bench] send_truth``: that same registered stained
  rendering, cropped around every detected cell and published beside the virtual stain.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

import numpy as np

from core.camera import Exposure
from core.measures import chi2_distance, ssim
from edge.device.cell_jobs import FieldResult, energy_maps
from edge.device.config import DetectorConfig, FidelityConfig
from edge.device.crops import Normalisation, crop, normalise, to_rgb8_hwc
from edge.device.detect import detect_cells, match_detections, match_pairs
from edge.device.fidelity import lbp_histogram, structure_maps
from edge.device.model import LoadedModel
from edge.device.stack import FieldRequest, Stack, plane_layout
from sim.maps import STRUCTURES
from sim.sample import wbc_truth
from sim.scan import ScanConfig, Simulator

MATCH_RADIUS_UM = 5.0
SSIM_MAX_FPR = 0.05
_WBC_PARTS = (STRUCTURES["nucleus"], STRUCTURES["cytoplasm"], STRUCTURES["granule"])


def _stack(sim: Simulator, data: Any) -> Stack:
    table = {c.name: Exposure(e.exposure_ms, e.gain) for c, e in zip(sim.recipe.channels, sim.exposures, strict=True)}
    cam = sim.microscope.config.camera
    return Stack(FieldRequest("bench", data.index, (0.0, 0.0)), data.stack, plane_layout(sim.recipe, table),
                 sim.microscope.channels, sim.microscope.pixel_um, float(cam.black_level_adu), cam.max_adu, 0.0, 0.0)


def evaluate_detector(fields: int = 12, size_px: int = 256, seed: int = 11, wbc_per_mm2: float = 1500.0,
                      config: DetectorConfig | None = None) -> dict[str, Any]:
    cfg = config or DetectorConfig()
    sim = Simulator(ScanConfig(recipe="full-nohe", fields=fields, seed=seed, field_size_px=(size_px, size_px),
                               smear={"wbc_per_mm2": wbc_per_mm2}))
    tp = fp = fn = ignored = 0
    for i in range(fields):
        data = sim.simulate_field(i)
        stack = _stack(sim, data)
        high, total = energy_maps(stack, cfg)
        dets = detect_cells(high, total, stack.pixel_um, cfg)
        truth = [tuple(w["center_px"]) for w in data.truth["wbcs"]]
        radius = MATCH_RADIUS_UM / stack.pixel_um
        structure = data.labels[0]
        kept = []
        for d in dets:
            near = any(math.dist(d.center_px, t) <= radius for t in truth)
            x, y = (min(int(v), size_px - 1) for v in d.center_px)
            if not near and structure[y, x] in _WBC_PARTS:
                ignored += 1  # a white cell whose centre is outside the field
                continue
            kept.append(d.center_px)
        m = match_detections(kept, truth, radius)
        tp, fp, fn = tp + m.true_positives, fp + m.false_positives, fn + m.false_negatives
    return {"fields": fields, "field_px": size_px, "wbc_per_mm2": wbc_per_mm2, "truth_cells": tp + fn,
            "true_positives": tp, "false_positives": fp, "false_negatives": fn, "ignored_border_cells": ignored,
            "recall": round(tp / max(tp + fn, 1), 4), "precision": round(tp / max(tp + fp, 1), 4),
            "match_radius_um": MATCH_RADIUS_UM, "detector": dataclasses.asdict(cfg)}


def true_white_cells(sim: Simulator, index: int) -> list[dict[str, Any]]:
    """Every white cell of field ``index``'s smear (``wbc_truth`` entries plus ``center_px``), also
    those centred in the margin beyond the field, whose cut-off part a detector may find; ``inside``
    says whether the centre lies on the field, i.e. whether the cell counts as present."""
    smear = sim.smear(index)
    px = sim.microscope.pixel_um
    fw, fh = sim.field_size_um
    return [dict(w, center_px=[w["center_um"][0] / px - 0.5, w["center_um"][1] / px - 0.5],
                 inside=0 <= w["center_um"][0] < fw and 0 <= w["center_um"][1] < fh) for w in wbc_truth(smear)]


def _stained_and_labels(sim: Simulator, index: int) -> tuple[Any, Any, Any]:
    from sim.rasterize import rasterize

    rgb, stained = sim.stained_truth(index)
    w, h = sim.config.field_size_px
    labels = rasterize(stained, sim.microscope.pixel_um, (h, w))
    return rgb, labels.structure, labels.instance


class StainedTruth:
    """Virtual bench only: what the stain of each detected cell should look like.

    :meth:`annotate` renders the field's registered stained truth once (:meth:`Simulator.stained_truth`)
    and gives every cell job a ``truth`` payload ``(P, P, 3)`` uint8 — normalised like the model's
    training targets, ``(adu − black) / (max_adu − black)`` — and the header key ``truth_type``: the
    type of the true white cell it was matched to one-to-one within :data:`MATCH_RADIUS_UM` (also a
    cell centred beyond the field edge, cut by it), or ``None`` (a false detection). The field gets
    ``truth_cells`` (white cells centred on the field) and ``truth_found`` (of those, matched).
    """

    def __init__(self, config: ScanConfig) -> None:
        self.sim = Simulator(config)  # its own: the camera's simulator belongs to the acquisition thread
        cam = self.sim.microscope.config.camera
        self.black, self.max_adu = float(cam.black_level_adu), float(cam.max_adu)

    def annotate(self, result: FieldResult, patch: int, border: str) -> None:
        field_id = result.stack.request.field_id
        wbcs = true_white_cells(self.sim, field_id)
        pairs = match_pairs([j.detection.center_px for j in result.jobs],
                                  [tuple(w["center_px"]) for w in wbcs], MATCH_RADIUS_UM / self.sim.microscope.pixel_um)
        if result.jobs:
            rgb, _ = self.sim.stained_truth(field_id)
            for k, job in enumerate(result.jobs):
                tc, _ = crop(rgb, job.detection.center_px, patch, border, self.black)
                job.payloads["truth"] = to_rgb8_hwc(tc, self.black, self.max_adu)
                job.context["truth_type"] = wbcs[pairs[k]]["type"] if k in pairs else None
        result.context.update(truth_cells=sum(w["inside"] for w in wbcs),
                              truth_found=sum(wbcs[j]["inside"] for j in pairs.values()))


def calibrate_fidelity(fields: int = 6, size_px: int = 256, seed: int = 11, patch: int = 64,
                       model: LoadedModel | None = None) -> dict[str, Any]:
    """Suspect thresholds from injected nucleus removals on simulated fields.

    Without ``model`` the "good" stains are the simulator's true stains; with one they are the
    model's own outputs for the same cells (thresholds depend on how sharp a model stains, so each
    model needs its own). The "bad" stains are the good ones with the true nucleus painted over in
    the cell's cytoplasm colour.
    """
    recipe = "full-nohe" if model is None else model.spec.recipe.id
    sim = Simulator(ScanConfig(recipe=recipe, fields=fields, seed=seed, field_size_px=(size_px, size_px),
                               smear={"wbc_per_mm2": 1500.0}))
    det_cfg = DetectorConfig()
    good: list[tuple[float, float]] = []
    bad: list[tuple[float, float]] = []
    cam = sim.microscope.config.camera
    white = 0.8 * cam.max_adu
    norm = Normalisation.uniform(len(sim.recipe), cam.black_level_adu, cam.max_adu - cam.black_level_adu)
    for i in range(fields):
        data = sim.simulate_field(i)
        stack = _stack(sim, data)
        high, _ = energy_maps(stack, det_cfg)
        rgb, structure, instance = _stained_and_labels(sim, i)
        out = np.clip((rgb.astype(np.float32) - stack.black_level) / (white - stack.black_level), 0, 1)
        for w in data.truth["wbcs"]:
            c = tuple(w["center_px"])
            scatter, _ = crop(high, c, patch)
            if model is None:
                stain, _ = crop(out, c, patch)
            else:
                raw, _ = crop(stack.pixels, c, patch, "reflect", stack.black_level)
                stain = model.backend.infer(normalise(raw, norm)[None])[0]
            struct, _ = crop(structure, c, patch)
            inst, _ = crop(instance, c, patch)
            good.append(_pair(scatter, stain))
            removed = _remove_nucleus(stain, struct, inst)
            if removed is not None:
                bad.append(_pair(scatter, removed))
    return _thresholds(good, bad)


def _pair(scatter: Any, stain: Any) -> tuple[float, float]:
    a, b = structure_maps(scatter, stain)
    return ssim(a, b, crop=False), chi2_distance(lbp_histogram(a), lbp_histogram(b))


def _remove_nucleus(stain: Any, struct: Any, inst: Any) -> Any:
    p = stain.shape[-1]
    cell = inst[p // 2, p // 2]
    nucleus = (struct == STRUCTURES["nucleus"]) & (inst == cell)
    cyto = (struct == STRUCTURES["cytoplasm"]) & (inst == cell)
    if cell == 0 or nucleus.sum() < 10 or cyto.sum() < 10:
        return None
    out = stain.copy()
    colour = np.median(stain[:, cyto], axis=1)
    out[:, nucleus] = colour[:, None]
    return out


def _best(good: list[float], bad: list[float], higher_is_good: bool,
          max_fpr: float = 1.0) -> tuple[float, float, float]:
    """(threshold, true-positive rate on bad, false-positive rate on good) maximising Youden's J
    among thresholds whose false-positive rate is at most ``max_fpr``. Thresholds lie halfway between
    neighbouring scores, so rounding the chosen one (the config keeps 4 decimals) moves no cell across it."""
    best = (min(good + bad) - 1e-6 if higher_is_good else max(good + bad) + 1e-6, 0.0, 0.0, -1.0)
    scores = sorted(set(good) | set(bad))
    beyond = scores[-1] + 1e-6 if higher_is_good else scores[0] - 1e-6  # flags every cell
    for t in [(a + b) / 2 for a, b in itertools.pairwise(scores)] + [beyond]:
        flag_bad = [(v < t) if higher_is_good else (v > t) for v in bad]
        flag_good = [(v < t) if higher_is_good else (v > t) for v in good]
        tpr, fpr = float(np.mean(flag_bad)), float(np.mean(flag_good))
        if fpr <= max_fpr and tpr - fpr > best[3]:
            best = (t, tpr, fpr, tpr - fpr)
    return best[0], best[1], best[2]


def _auc(good: list[float], bad: list[float], higher_is_good: bool) -> float:
    g, b = np.asarray(good), np.asarray(bad)
    wins = (g[:, None] > b[None, :]).mean() + 0.5 * (g[:, None] == b[None, :]).mean()
    return float(wins if higher_is_good else 1 - wins)


def _thresholds(good: list[tuple[float, float]], bad: list[tuple[float, float]]) -> dict[str, Any]:
    gs, gc = [g[0] for g in good], [g[1] for g in good]
    bs, bc = [b[0] for b in bad], [b[1] for b in bad]
    # chi² separates well (the primary test); SSIM only adds flags at a low false-alarm rate
    ts, tpr_s, fpr_s = _best(gs, bs, True, max_fpr=SSIM_MAX_FPR)
    tc, tpr_c, fpr_c = _best(gc, bc, False)
    cfg = FidelityConfig(ssim_min=round(ts, 4), chi2_max=round(tc, 4))
    flag = lambda s, c: s < cfg.ssim_min or c > cfg.chi2_max  # noqa: E731
    return {"cells": len(good), "nucleus_removed": len(bad),
            "ssim": {"auc": round(_auc(gs, bs, True), 4), "threshold": cfg.ssim_min, "tpr": tpr_s, "fpr": fpr_s,
                     "good_median": float(np.median(gs)) if gs else None,
                     "removed_median": float(np.median(bs)) if bs else None},
            "chi2": {"auc": round(_auc(gc, bc, False), 4), "threshold": cfg.chi2_max, "tpr": tpr_c, "fpr": fpr_c,
                     "good_median": float(np.median(gc)) if gc else None,
                     "removed_median": float(np.median(bc)) if bc else None},
            "combined": {"tpr": float(np.mean([flag(*b) for b in bad])) if bad else None,
                         "fpr": float(np.mean([flag(*g) for g in good])) if good else None},
            "config": {"ssim_min": cfg.ssim_min, "chi2_max": cfg.chi2_max}}

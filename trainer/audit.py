"""``stainless-train audit``: rank samples by loss and label the likely cause of the worst ones.

The seed's error analysis of its 100 worst samples found ground-truth artefacts, unstained/stained
mismatches and PLS-vs-brightfield misalignment — by hand. Here each sample's loss is the
checkpoint's reconstruction objective (L1 + Fourier + SSIM terms with its weights); the worst are
labelled from the dataset's QC columns and the nucleus comparison:

``pls-misaligned``   QC flag, or brightfield vs oblique shift above ``max_pls_px``
``mismatch``         QC flag ``low_alignment``, or a fine-alignment score below both the audited
                     samples' 10th percentile and their median − 0.1
``target-artefact``  QC flag, or a nuclear-looking component in the target the prediction lacks
``damaged-cell``     QC flag
``hallucination``    the prediction adds a nuclear component the target lacks (a model failure)
``unexplained``      none of the above

Data problems (the first four) go to ``exclude.txt`` so that a rebuild can leave them out.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from trainer.checkpoint import load_checkpoint
from trainer.data.store import QC_FLAGS
from trainer.evaluate import Evaluation, evaluate
from trainer.report import gallery

DATA_PROBLEMS = ("pls-misaligned", "mismatch", "target-artefact", "damaged-cell")


def sample_loss(row: dict[str, Any], weights: dict[str, Any]) -> float:
    """The checkpoint's non-adversarial objective for one sample (perceptual term left out)."""
    return float(weights["l1"] * row["mae"] + (weights["fourier"] or 0.0) * row["fourier"]
                 + (weights["ssim"] or 0.0) * (1.0 - row["ssim"]))


def labels_of(row: dict[str, Any], meta: dict[str, Any], align_floor: float, max_pls_px: float) -> list[str]:
    """The likely causes of a bad sample (possibly several), in :data:`DATA_PROBLEMS` order + model ones."""
    flags, out = int(meta["qc_flags"]), []
    if flags & QC_FLAGS["pls_misaligned"] or float(meta["pls_misalignment_px"]) > max_pls_px:
        out.append("pls-misaligned")
    if flags & QC_FLAGS["low_alignment"] or float(meta["alignment_score"]) < align_floor:
        out.append("mismatch")
    if flags & QC_FLAGS["target_artefact"] or row["removed"] > 0:
        out.append("target-artefact")
    if flags & QC_FLAGS["damaged_cell"]:
        out.append("damaged-cell")
    if row["added"] > 0:
        out.append("hallucination")
    return out or ["unexplained"]


def audit(checkpoint: Path, dataset: Path, out: Path, split: str = "all", top: int = 100,
          max_pls_px: float = 1.0, ev: Evaluation | None = None) -> dict[str, Any]:
    """Write ``audit.csv`` (all samples, worst first), ``exclude.txt`` and ``gallery_worst.png`` into ``out``."""
    ev = ev or evaluate(checkpoint, dataset, split)
    weights = dict(load_checkpoint(checkpoint)["config"]["loss"])
    meta = ev.dataset.meta
    align = meta["alignment_score"][[r["index"] for r in ev.samples]].astype(np.float64)
    floor = min(float(np.percentile(align, 10)), float(np.median(align)) - 0.1)
    rows = []
    for r in ev.samples:
        m = {k: meta[k][r["index"]] for k in ("qc_flags", "alignment_score", "pls_misalignment_px")}
        rows.append({**r, **m, "loss": sample_loss(r, weights),
                     "labels": ";".join(labels_of(r, m, floor, max_pls_px))})
    rows.sort(key=lambda r: -r["loss"])
    worst = rows[:top]
    exclude = [r["sample_id"] for r in worst if any(lab in DATA_PROBLEMS for lab in r["labels"].split(";"))]
    _write(out, rows, exclude, ev, worst)
    counts: dict[str, int] = {}
    for r in worst:
        for lab in r["labels"].split(";"):
            counts[lab] = counts.get(lab, 0) + 1
    return {"samples": len(rows), "worst": len(worst), "labels_in_worst": counts, "excluded": len(exclude),
            "worst_ids": [r["sample_id"] for r in worst[:10]], "out": str(out)}


def _write(out: Path, rows: list[dict[str, Any]], exclude: list[str], ev: Evaluation,
           worst: list[dict[str, Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "audit.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["sample_id", "loss", "labels", "cell_type", "mae", "ssim", "nucleus_iou", "added",
                                    "removed", "alignment_score", "pls_misalignment_px", "qc_flags", "index"],
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    (out / "exclude.txt").write_text("".join(f"{sid}\n" for sid in exclude))
    img = gallery(ev, worst[:16])
    cv2.imwrite(str(out / "gallery_worst.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))

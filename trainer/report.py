"""The evaluation report: ``metrics.json``, ``samples.csv``, PNG galleries and an ``index.html``.

Galleries show, per row, target | prediction | unstained brightfield for random, best and worst
samples (ranked by MAE, the seed's pixel loss); flagged samples (a nuclear lobe added or erased)
get a red frame.
"""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from trainer.evaluate import SAMPLE_COLUMNS, Evaluation

_SCALE = 3
_LABEL_H = 18


def brightfield(ev: Evaluation, index: int) -> NDArray[np.float32]:
    """The unstained brightfield image ``(3, P, P)`` of a sample (the stack's first image if no ``bf``)."""
    names = list(ev.dataset.recipe.channel_names)
    k = names.index("bf") if "bf" in names else 0
    return ev.dataset.inputs(index)[3 * k:3 * k + 3]


def _tile(chw: NDArray[np.floating], flagged: bool) -> NDArray[np.uint8]:
    rgb = np.round(np.clip(np.moveaxis(chw, 0, -1), 0, 1) * 255).astype(np.uint8)
    big = cv2.resize(rgb, None, fx=_SCALE, fy=_SCALE, interpolation=cv2.INTER_NEAREST)
    if flagged:
        cv2.rectangle(big, (0, 0), (big.shape[1] - 1, big.shape[0] - 1), (255, 0, 0), 2)
    return np.pad(big, ((2, 2), (2, 2), (0, 0)), constant_values=255)


def gallery(ev: Evaluation, rows: list[dict[str, Any]]) -> NDArray[np.uint8]:
    """An RGB image: a header, then one row of target | prediction | brightfield per sample."""
    lines = []
    for r in rows:
        i = r["index"]
        tiles = [_tile(ev.dataset.target(i, hr=ev.hr), False), _tile(ev.predict(i), bool(r["flagged"])),
                 _tile(brightfield(ev, i), False)]
        lines.append(np.concatenate(tiles, axis=1))
    body = np.concatenate(lines, axis=0)
    header = np.full((_LABEL_H, body.shape[1], 3), 255, np.uint8)
    w = body.shape[1] // 3
    for k, text in enumerate(("target", "prediction", "brightfield")):
        cv2.putText(header, text, (k * w + 4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([header, body], axis=0)


def pick(samples: list[dict[str, Any]], n: int, seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """``random`` / ``best`` / ``worst`` (by MAE) samples, ``n`` each."""
    ranked = sorted(samples, key=lambda r: r["mae"])
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(samples), size=min(n, len(samples)), replace=False)
    return {"random": [samples[int(k)] for k in sorted(chosen)], "best": ranked[:n], "worst": ranked[::-1][:n]}


def _table(summary: dict[str, Any]) -> str:
    keys = ("n", "ssim", "psnr", "mae", "fourier", "lbp_chi2", "nucleus_iou", "flagged_rate", "added_per_cell",
            "removed_per_cell")
    head = "".join(f"<th>{k}</th>" for k in ("cell type", *keys))
    body = []
    for name, s in [("all", summary), *summary["by_cell_type"].items()]:
        cells = "".join(f"<td>{s[k]:.4g}</td>" for k in keys)
        body.append(f"<tr><td>{html.escape(name)}</td>{cells}</tr>")
    return f"<table border=1 cellpadding=3><tr>{head}</tr>{''.join(body)}</table>"


def write_report(ev: Evaluation, out: Path, n_gallery: int = 8, seed: int = 0) -> Path:
    """Write the report into ``out`` and return the path of ``index.html``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(ev.summary, indent=2))
    with (out / "samples.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ("index", "sample_id", "cell_type", *SAMPLE_COLUMNS, "vgg"), restval="")
        writer.writeheader()
        writer.writerows(ev.samples)
    sections = []
    for name, rows in pick(ev.samples, n_gallery, seed).items():
        cv2.imwrite(str(out / f"gallery_{name}.png"), cv2.cvtColor(gallery(ev, rows), cv2.COLOR_RGB2BGR))
        sections.append(f"<h2>{name}</h2><p>{', '.join(html.escape(r['sample_id']) for r in rows)}</p>"
                        f'<img src="gallery_{name}.png">')
    flagged = [r["sample_id"] for r in ev.samples if r["flagged"]]
    s = ev.summary
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>stainless evaluation</title></head><body>"
            f"<h1>{html.escape(s['generator'])} on {html.escape(s['dataset'])} ({html.escape(s['split'])})</h1>"
            f"<p>checkpoint {html.escape(s['checkpoint'])}, recipe {html.escape(s['recipe'])}, "
            f"target {'100x' if s['hr_target'] else '20x'}</p>{_table(s)}"
            f"<h2>flagged: nuclear lobe added or erased ({len(flagged)})</h2>"
            f"<p>{html.escape(', '.join(flagged)) or 'none'}</p>{''.join(sections)}</body></html>")
    (out / "index.html").write_text(page)
    return out / "index.html"

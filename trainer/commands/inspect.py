"""``stainless-train inspect DATASET [--out PNG] [--json]``: counts per split and a contact sheet."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from trainer.data.store import QC_FLAGS, SPLITS, Dataset, DatasetError
from trainer.errors import TrainerError

TILE = 96


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="summarise a dataset and draw a contact sheet of samples")
    p.add_argument("dataset", type=Path)
    p.add_argument("--out", type=Path, default=None, help="PNG contact sheet: brightfield, darkfield, target")
    p.add_argument("--samples", type=int, default=8, help="samples on the sheet (spread over the dataset)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def summary(ds: Dataset) -> dict[str, Any]:
    """Counts per split, per QC flag, per slide and per cell type."""
    flags = ds.meta["qc_flags"].astype(np.int64)
    return {
        "path": str(ds.path), "samples": len(ds), "recipe": ds.captured.id, "images_per_sample": len(ds.captured),
        "patch_size": ds.attrs["patch_size"], "has_hr": ds.has_hr, "source": ds.attrs.get("source"),
        "per_split": {name: int((ds.meta["split"] == v).sum()) for name, v in SPLITS.items()},
        "qc_flags": {name: int(((flags & bit) != 0).sum()) for name, bit in QC_FLAGS.items()},
        "clean": int((flags == 0).sum()),
        "slides": {str(s): int(n) for s, n in zip(*np.unique(ds.meta["slide"], return_counts=True), strict=True)},
        "cell_types": {str(s) or "unknown": int(n)
                       for s, n in zip(*np.unique(ds.meta["cell_type"], return_counts=True), strict=True)},
    }


def _to8(img: NDArray[np.float32], stretch: float = 1.0) -> NDArray[np.uint8]:
    """(C, P, P) in [0, 1] → (TILE, TILE, 3) BGR uint8."""
    x = np.clip(np.moveaxis(img, 0, -1) * stretch, 0, 1)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return cv2.resize((x[..., ::-1] * 255 + 0.5).astype(np.uint8), (TILE, TILE), interpolation=cv2.INTER_NEAREST)


def contact_sheet(ds: Dataset, out: Path, n: int) -> Path:
    """Rows of samples: brightfield, the first darkfield image (stretched), target (and 100x target)."""
    names = ds.captured.channel_names
    dark = next((i for i, c in enumerate(ds.captured.channels)
                 if c.led is not None and not ds.captured.geometry.is_brightfield(c.led)), None)
    bf = names.index("bf") if "bf" in names else 0
    n_ch = len(ds.captured.geometry.channels)
    idx = np.linspace(0, max(len(ds) - 1, 0), num=min(n, len(ds))).round().astype(int)
    rows = []
    for i in idx:
        x = ds.inputs(int(i)).reshape(len(ds.captured), n_ch, *ds.inputs(int(i)).shape[-2:])
        panels = [_to8(x[bf] / max(float(np.percentile(x[bf], 99)), 1e-6) * 0.9)]
        if dark is not None:
            panels.append(_to8(x[dark] / max(float(np.percentile(x[dark], 99.5)), 1e-6)))
        panels.append(_to8(ds.target(int(i)) / 0.8 * 0.95))
        if ds.has_hr:
            panels.append(_to8(ds.target(int(i), hr=True) / 0.8 * 0.95))
        rows.append(np.concatenate(panels, axis=1))
    if not rows:
        raise TrainerError(f"{ds.path} holds no samples; nothing to draw")
    sheet = np.concatenate(rows, axis=0)
    header = np.full((20, sheet.shape[1], 3), 255, np.uint8)
    titles = ["brightfield", "darkfield" if dark is not None else "", "target", "100x" if ds.has_hr else ""]
    for k, t in enumerate(t for t in titles if t):
        cv2.putText(header, t, (4 + k * TILE, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), np.concatenate([header, sheet], axis=0)):
        raise TrainerError(f"cannot write {out}: check the folder and the .png suffix")
    return out


def run(args: argparse.Namespace) -> int:
    try:
        ds = Dataset(args.dataset)
    except DatasetError as exc:
        raise TrainerError(str(exc)) from exc
    info = summary(ds)
    if args.out is not None:
        info["contact_sheet"] = str(contact_sheet(ds, args.out, args.samples))
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"{info['path']}: {info['samples']} samples ({info['recipe']}, {info['images_per_sample']} images, "
              f"{info['patch_size']} px); per split {info['per_split']}; clean {info['clean']}; "
              f"QC {info['qc_flags']}" + (f"; sheet {info['contact_sheet']}" if args.out else ""))
    return 0

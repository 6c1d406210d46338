"""``stainless-edge watch``: subscribe to a daemon, keep a gallery PNG, rate, latency and fidelity."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.measures import percentile
from edge.client import ClientKeys, FieldSummary, StainedCell, Subscriber
from edge.client.gallery import gallery, save_rgb, stain_ssim


@dataclass
class WatchStats:
    """Arrival rate and latency (capture end → received, ms) of cells; per field, cells found and
    (virtual bench) present; SSIM of stain vs truth per cell, by true cell type."""

    t0: float = field(default_factory=time.time)
    cells: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    fields: int = 0
    cells_found: int = 0
    cells_suspect: int = 0
    truth_cells: int | None = None
    truth_found: int = 0
    ssim_by_type: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, cell: StainedCell) -> None:
        self.cells += 1
        t_end = cell.header.get("t", {}).get("capture_end")
        if isinstance(t_end, float):
            self.latencies_ms.append((time.time() - t_end) * 1e3)
        s = stain_ssim(cell)
        if s is not None:
            self.ssim_by_type[str(cell.header.get("truth_type") or "no true cell")].append(s)

    def add_field(self, summary: FieldSummary) -> None:
        h = summary.header
        self.fields += 1
        self.cells_found += int(h.get("cells", 0))
        self.cells_suspect += int(h.get("cells_suspect", 0))
        if "truth_cells" in h:
            self.truth_cells = (self.truth_cells or 0) + int(h["truth_cells"])
            self.truth_found += int(h.get("truth_found", 0))

    def to_dict(self) -> dict[str, Any]:
        dt = max(time.time() - self.t0, 1e-9)
        lat = self.latencies_ms
        out: dict[str, Any] = {
            "cells": self.cells, "cells_per_s": round(self.cells / dt, 3),
            "latency_p50_ms": round(percentile(lat, 50), 1) if lat else float("nan"),
            "latency_p99_ms": round(percentile(lat, 99), 1) if lat else float("nan"),
            "fields": self.fields, "cells_found": self.cells_found, "cells_suspect": self.cells_suspect}
        if self.truth_cells is not None:
            out |= {"cells_present": self.truth_cells, "cells_present_found": self.truth_found}
        values = [v for vs in self.ssim_by_type.values() for v in vs]
        if values:
            out["ssim_stain_vs_truth"] = {
                "mean": round(float(np.mean(values)), 4), "n": len(values),
                "by_type": {t: {"mean": round(float(np.mean(v)), 4), "n": len(v)}
                            for t, v in sorted(self.ssim_by_type.items())}}
        return out


def watch(endpoint: str, out: Path, stop: threading.Event, *, count: int | None = None, fields: int | None = None,
          keep: int = 64, columns: int = 0, progress: Callable[[str], None] | None = None,
          control: str | None = None, curve: ClientKeys | None = None) -> dict[str, Any]:
    """Receive until ``stop`` is set or ``count`` cells / ``fields`` summaries arrived; redraw
    ``out/gallery.png`` (the last ``keep`` cells) every 8 cells and at the end; return the report.
    With ``control`` (the daemon's control endpoint) gaps are filled through ``replay``."""
    cells: list[StainedCell] = []
    stats = WatchStats()
    with Subscriber(endpoint, control=control, curve=curve) as sub:
        while (not stop.is_set() and (count is None or stats.cells < count)
               and (fields is None or stats.fields < fields)):
            msg = sub.receive(timeout=0.5)
            if msg is None:
                continue
            if isinstance(msg, StainedCell):
                stats.add(msg)
                cells = [*cells, msg][-keep:]
                if stats.cells % 8 == 0:
                    save_rgb(out / "gallery.png", gallery(cells, columns))
            elif isinstance(msg, FieldSummary):
                stats.add_field(msg)
                if progress is not None:
                    progress(f"field {msg.header['field_id']}: {msg.header['status']}, {msg.header['cells']} cells "
                             f"| {json.dumps(stats.to_dict())}")
        save_rgb(out / "gallery.png", gallery(cells, columns))
        return {**stats.to_dict(), "gaps": dict(sub.gaps), "recovered": dict(sub.recovered),
                "gallery": str(out / "gallery.png")}

"""Where a scan's time goes around the model: fill, steady state, drain (pure functions).

A scan is a run of fields submitted at once. Its wall time (submit → the last field published) splits
at the model's first and last batch into

* **fill** — submit → the first batch starts (the first fields captured and processed, the first batch
  formed);
* **steady state** — the first batch starts → the last batch ends (the model running, the processing and
  publishing of the scan's fields sharing the cores with it);
* **drain** — the last batch ends → the last field published (its fidelity, headers, sends).

so ``ratio = steady_ratio x span / wall``: the pipeline's cells/s over the backend alone's is the steady
state's ratio times the share of the wall time the model was running at all. Fill and drain are paid
once per scan; a device scanning ``N`` fields pays them once per ``N`` fields (:func:`ratio_for_scan`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class BatchTime:
    """One batch through the model: start and end (s, one clock) and its cells."""

    start: float
    end: float
    cells: int


@dataclass(frozen=True)
class ScanPhases:
    """One scan's phases (s) and cells; see the module docstring."""

    fill_s: float
    span_s: float
    drain_s: float
    after_capture_s: float  #: the last field's capture end → the last field published
    busy_s: float  #: the model's own time within the span (the sum of the batches' wall times)
    cells: int
    batches: int

    @property
    def wall_s(self) -> float:
        return self.fill_s + self.span_s + self.drain_s

    @property
    def steady_cells_per_s(self) -> float:
        return self.cells / self.span_s if self.span_s > 0 else 0.0

    @property
    def busy_fraction(self) -> float:
        """The share of the steady state the model was running (the rest it waited for a batch)."""
        return self.busy_s / self.span_s if self.span_s > 0 else 0.0


def scan_phases(t_submit: float, t_last_capture: float, t_done: float, batches: list[BatchTime]) -> ScanPhases:
    """The phases of a scan submitted at ``t_submit`` whose last field was captured at ``t_last_capture`` and
    published at ``t_done``, from its ``batches`` (in the order they ran; all times on one clock, s)."""
    if not batches:
        raise ValueError("scan_phases: a scan with no batch has no steady state; expected at least one batch "
                         "(a scan whose fields all had no cell, or a clock that recorded nothing?)")
    first, last = batches[0], batches[-1]
    if not t_submit <= first.start <= last.end <= t_done:
        raise ValueError(f"scan_phases: expected submit <= first batch start <= last batch end <= done, found "
                         f"{t_submit:.6f}, {first.start:.6f}, {last.end:.6f}, {t_done:.6f}: batches from another "
                         "scan, or times from different clocks")
    return ScanPhases(fill_s=first.start - t_submit, span_s=last.end - first.start, drain_s=t_done - last.end,
                      after_capture_s=t_done - t_last_capture, busy_s=sum(b.end - b.start for b in batches),
                      cells=sum(b.cells for b in batches), batches=len(batches))


def decompose(p: ScanPhases, alone_cells_per_s: float) -> dict[str, float]:
    """The scan's ratio pipeline / backend alone and its two factors: the steady state's ratio and the share of
    the wall time spent in the steady state (``ratio = steady_ratio * steady_share``)."""
    if alone_cells_per_s <= 0:
        raise ValueError(f"decompose: the backend alone's cells/s must be > 0, found {alone_cells_per_s}")
    wall = p.wall_s
    return {"ratio": p.cells / wall / alone_cells_per_s if wall > 0 else 0.0,
            "steady_ratio": p.steady_cells_per_s / alone_cells_per_s,
            "steady_share": p.span_s / wall if wall > 0 else 0.0}


def ratio_for_scan(steady_cells_per_s: float, alone_cells_per_s: float, fill_drain_s: float, cells: int) -> float:
    """The pipeline / backend-alone ratio of a scan of ``cells`` cells: its steady state plus one fill and drain
    of ``fill_drain_s`` (s), against the backend alone on as many cells."""
    if steady_cells_per_s <= 0 or alone_cells_per_s <= 0 or cells <= 0 or fill_drain_s < 0:
        raise ValueError(f"ratio_for_scan: expected rates > 0, cells > 0 and fill_drain_s >= 0, found "
                         f"{steady_cells_per_s}, {alone_cells_per_s}, {cells}, {fill_drain_s}")
    return cells / (cells / steady_cells_per_s + fill_drain_s) / alone_cells_per_s


def median_range(values: list[float], digits: int = 3) -> list[float]:
    """``[median, least, most]`` of ``values``, rounded (``[]`` for none): how the bench reports a spread."""
    if not values:
        return []
    return [round(float(np.median(values)), digits), round(min(values), digits), round(max(values), digits)]


#: Scan lengths (fields) :func:`scan_summary` projects the ratio for: the virtual bench's scan
#: (``deploy/configs/sim.toml``: ``[scan] autostart_fields = 8``), the bench's chunk, a 200-cell differential at
#: the bench's ~4.3 cells per field (~50), and longer scans of a slide at a real smear's density.
SCAN_FIELDS = (8, 20, 50, 200, 1000)


def scan_summary(scans: list[tuple[ScanPhases, float]], cells_per_field: float) -> dict[str, Any]:
    """Each chunk (one scan) split into fill, steady state and drain: per chunk
    and as ``[median, least, most]`` over the chunks, and the ratio a scan of ``SCAN_FIELDS`` fields of
    ``cells_per_field`` would reach with each chunk's steady state and its one fill and drain (the median
    over the chunks)."""
    rows = [{"cells": p.cells, "fill_ms": p.fill_s * 1e3, "drain_ms": p.drain_s * 1e3,
             "after_capture_ms": p.after_capture_s * 1e3, "span_s": p.span_s,
             "steady_cells_per_s": p.steady_cells_per_s, "alone_cells_per_s": alone,
             "busy_fraction": p.busy_fraction, "model_speed_ratio": p.cells / p.busy_s / alone if p.busy_s else 0.0,
             **decompose(p, alone)} for p, alone in scans]
    keys = ("ratio", "steady_ratio", "steady_share", "fill_ms", "drain_ms", "after_capture_ms", "busy_fraction",
            "model_speed_ratio", "steady_cells_per_s", "alone_cells_per_s")
    out: dict[str, Any] = {k: median_range([r[k] for r in rows]) for k in keys}
    if rows:
        out["ratio_for_scan_fields"] = {
            str(f): round(float(np.median([ratio_for_scan(p.steady_cells_per_s, alone, p.fill_s + p.drain_s,
                                                          max(1, round(f * cells_per_field)))
                                           for p, alone in scans])), 3) for f in SCAN_FIELDS}
    out["chunks"] = [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in rows]
    return out

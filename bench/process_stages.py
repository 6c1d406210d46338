"""Where the processing thread's CPU goes, per field, on the virtual bench (the per-stage table of issue 19).

Captures ``--distinct`` bench fields as ``bench/edge_pipeline.py`` does (thesis-43, 256², 600 WBC/mm²,
the bundle's recipe) and runs :func:`edge.device.cell_jobs.process_stack` on them ``--reps`` times, then
writes each cell's input into a batch-buffer row (:func:`~edge.device.cell_jobs.fill_input`) as the
processing thread does — normalised into a float32 row, or the camera counts copied into a uint16 row for a
backend that normalises them itself (``[model] raw_input``; ``--input both`` alternates the two in one
process, ``--rounds`` times in both orders, and reports each figure's median and range) — timing each
stage with this thread's CPU time (``time.thread_time``; robust to neighbours on a shared machine, unlike
wall time). Stages nest: ``qc`` holds ``qc.saturation`` and the
rest. Also the fidelity score of the publishing thread per cell, scored in batches of 8 as the daemon
does. glibc's malloc thresholds and OpenCV's threads (one: the caller) are set as the daemon sets them.

    python bench/process_stages.py [--bundle models/default.stainless] [--reps 8] [--input float|raw|both]
        [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from core import measures
from edge.bench.pipeline import BenchModel, bench_config, bench_parts
from edge.device import cell_jobs, detect, qc
from edge.device.crops import Normalisation
from edge.device.fidelity import score_batch
from edge.device.memory import tune_malloc
from edge.device.priority import opencv_in_calling_thread
from edge.device.stack import FieldRequest, Stack

#: label -> (module, function) timed where process_stack's code calls it.
STAGES: dict[str, tuple[ModuleType, str]] = {
    "energy maps": (cell_jobs, "energy_maps"),
    "qc": (cell_jobs, "run_qc"),
    "qc.saturation": (qc, "saturated_fraction_of_planes"),
    "qc.focus": (qc, "focus_score"),
    "qc.misalignment (pls_shift)": (qc, "pls_shift"),
    "qc.misalignment.plane medians (select_rows)": (measures, "select_rows"),
    "qc.empty ratio": (qc, "empty_ratio"),
    "detection": (cell_jobs, "detect_cells"),
    "detection.medians": (measures, "median"),
    "detection.difference of Gaussians": (detect, "difference_of_gaussians"),
    "detection.maximum filter": (detect, "maximum_filter"),
    "detection.regions (per peak)": (detect, "_measure"),
    "crops, payloads and jobs": (cell_jobs, "make_jobs"),
    "crops.white level": (cell_jobs, "percentile"),
    "crops.crop": (cell_jobs, "crop"),
    "cell inputs into the batch (fill_input)": (cell_jobs, "fill_input"),
    "crops.display rgb8": (cell_jobs, "to_rgb8_hwc"),
}


@contextlib.contextmanager
def _timed(totals: dict[str, float]) -> Iterator[None]:
    """Wrap every stage function with a thread-CPU timer for the duration; restore them after."""
    saved = [(mod, name, getattr(mod, name)) for mod, name in STAGES.values()]

    def timer(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            c = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                totals[label] = totals.get(label, 0.0) + time.thread_time() - c
        return timed

    try:
        for label, (mod, name) in STAGES.items():
            setattr(mod, name, timer(label, getattr(mod, name)))
        yield
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)


def capture(bundle: str, distinct: int) -> tuple[list[Stack], Normalisation, int]:
    cfg = bench_config(BenchModel(bundle=bundle), 8)
    with contextlib.ExitStack() as parts:
        _, camera, loaded, acq = bench_parts(cfg, parts)
        stacks = [acq.capture(FieldRequest("bench", i, (0.0, 0.0))) for i in range(distinct)]
        norm = Normalisation.uniform(len(loaded.spec.recipe), camera.black_level, camera.max_adu - camera.black_level)
        return stacks, norm, loaded.spec.patch_size  # as build_pipeline normalises


def measure(stacks: list[Stack], norm: Normalisation, patch: int, reps: int, raw: bool = False) -> dict[str, Any]:
    """``raw``: rows of camera counts (uint16), as for a backend that normalises; else float32 inputs."""
    cfg = bench_config(BenchModel(bundle="unused"), 8)
    tune_malloc()
    opencv_in_calling_thread()  # as build_pipeline does
    row = np.empty((len(norm.offset) * len(stacks[0].colours), patch, patch),
                   np.uint16 if raw else np.float32)  # a batch buffer's row

    def process(s: Stack) -> int:  # as the processing thread: process_stack, then each input into its row
        jobs = cell_jobs.process_stack(s, cfg.qc, cfg.detector, cfg.crops, patch).jobs
        for j in jobs:
            cell_jobs.fill_input(j, norm, row)
        return len(jobs)

    for s in stacks:  # warm-up: caches (Hanning window, blur matrices), allocator
        process(s)
    totals: dict[str, float] = {}
    cells, total = 0, 0.0
    with _timed(totals):
        for _ in range(reps):
            for s in stacks:
                c = time.thread_time()
                cells += process(s)
                total += time.thread_time() - c
    n = reps * len(stacks)
    jobs = [j for s in stacks for j in cell_jobs.process_stack(s, cfg.qc, cfg.detector, cfg.crops, patch).jobs]
    stained = np.random.default_rng(0).random((8, 3, patch, patch), dtype=np.float32)
    batches = [np.stack([j.scatter for j in jobs[i:i + 8]]) for i in range(0, len(jobs), 8)]
    c = time.thread_time()
    for _ in range(reps):
        for scatter in batches:
            score_batch(scatter, stained[:len(scatter)], cfg.fidelity)
    fidelity = (time.thread_time() - c) / max(1, len(jobs) * reps)
    return {"fields": n, "cells_per_field": round(cells / n, 2), "process_cpu_ms_per_field": round(total / n * 1e3, 2),
            "stages_cpu_ms_per_field": {k: round(totals.get(k, 0.0) / n * 1e3, 3) for k in STAGES},
            "fidelity_cpu_ms_per_cell": round(fidelity * 1e3, 3)}


def alternate(stacks: list[Stack], norm: Normalisation, patch: int, reps: int, rounds: int) -> dict[str, Any]:
    """Float and raw rows alternated ``rounds`` times (float first in even rounds, raw first in odd ones): per
    row kind, each figure's ``[median, least, most]`` over the rounds."""
    runs: dict[str, list[dict[str, Any]]] = {"float": [], "raw": []}
    for r in range(rounds):
        for kind in (("float", "raw") if r % 2 == 0 else ("raw", "float")):
            runs[kind].append(measure(stacks, norm, patch, reps, raw=kind == "raw"))

    def spread(values: list[float]) -> list[float]:
        return [round(float(np.median(values)), 3), round(min(values), 3), round(max(values), 3)]

    out: dict[str, Any] = {"rounds": rounds, "cells_per_field": runs["float"][0]["cells_per_field"]}
    for kind, rs in runs.items():
        out[kind] = {"process_cpu_ms_per_field": spread([r["process_cpu_ms_per_field"] for r in rs]),
                     "stages_cpu_ms_per_field": {k: spread([r["stages_cpu_ms_per_field"][k] for r in rs])
                                                 for k in STAGES}}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", default="models/default.stainless")
    ap.add_argument("--distinct", type=int, default=6)
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--input", choices=("float", "raw", "both"), default="float",
                    help="the batch rows: float32 inputs, uint16 camera counts, or both alternated")
    ap.add_argument("--rounds", type=int, default=3, help="with --input both: rounds, alternating the order")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    stacks, norm, patch = capture(args.bundle, args.distinct)
    if args.input == "both":
        print(json.dumps(alternate(stacks, norm, patch, args.reps, args.rounds), indent=None if args.json else 1))
        return 0
    res = measure(stacks, norm, patch, args.reps, raw=args.input == "raw")
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{res['fields']} fields, {res['cells_per_field']} cells per field; processing "
              f"{res['process_cpu_ms_per_field']} ms CPU per field; "
              f"fidelity {res['fidelity_cpu_ms_per_cell']} ms per cell")
        for k, v in res["stages_cpu_ms_per_field"].items():
            print(f"  {k:40s} {v:8.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

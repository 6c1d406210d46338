"""The backend alone with float32 inputs against camera counts normalised inside the model (``[model] raw_input``).

Captures ``--distinct`` bench fields as ``bench/edge_pipeline.py`` does, makes their cells' crops, and then
alternates two arms on the same cells in batches of ``--batch``, ``--rounds`` times in both orders:

* ``float``: each cell normalised into a float32 batch row (:func:`edge.device.cell_jobs.fill_input`, the
  processing thread's work before) and the batch run on the backend;
* ``raw``: each cell's counts copied into a uint16 row and the batch run on the backend, which normalises.

Per arm: the rows' CPU per cell (this thread), the model's wall time per cell (median batch over the cells
in the batch) and the whole process's CPU per cell during inference (every model thread). Each figure's
``[median, least, most]`` over the rounds. Does the model get slower by what processing saves?

    python bench/raw_input.py [--bundle models/default.stainless] [--backend openvino] [--precision bf16]
        [--batch 8] [--batches 40] [--rounds 4] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from edge.bench.pipeline import BenchModel, bench_config, bench_parts
from edge.device.backends import Backend
from edge.device.cell_jobs import CellJob, fill_input, process_stack
from edge.device.crops import Normalisation
from edge.device.inference import offer_raw
from edge.device.stack import FieldRequest


def arm(backend: Backend, jobs: list[CellJob], norm: Normalisation, batch: int, batches: int,
        raw: bool) -> dict[str, float]:
    """``batches`` batches of ``batch`` cells: rows filled (thread CPU), then inferred (wall, process CPU)."""
    channels, patch = jobs[0].raw.shape[0] * jobs[0].raw.shape[1], jobs[0].raw.shape[-1]
    buf = np.empty((batch, channels, patch, patch), np.uint16 if raw else np.float32)
    backend.infer(np.zeros_like(buf[:1]))  # warm-up (the buffer itself holds whatever memory held)
    fill = cpu = 0.0
    walls = []
    for b in range(batches):
        c = time.thread_time()
        for k in range(batch):
            fill_input(jobs[(b * batch + k) % len(jobs)], norm, buf[k])
        fill += time.thread_time() - c
        c, t = time.process_time(), time.perf_counter()
        backend.infer(buf)
        walls.append(time.perf_counter() - t)
        cpu += time.process_time() - c
    cells = batch * batches
    return {"fill_cpu_ms_per_cell": fill / cells * 1e3, "infer_wall_ms_per_cell": float(np.median(walls)) / batch * 1e3,
            "infer_cpu_ms_per_cell": cpu / cells * 1e3}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", default="models/default.stainless")
    ap.add_argument("--backend", default="openvino")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--distinct", type=int, default=6)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--batches", type=int, default=40, help="batches per arm and round")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    cfg = bench_config(BenchModel(bundle=args.bundle, backend=args.backend, precision=args.precision), args.batch)
    with contextlib.ExitStack() as parts:
        _, camera, loaded, acq = bench_parts(cfg, parts)
        norm = Normalisation.uniform(len(loaded.spec.recipe), camera.black_level, camera.max_adu - camera.black_level)
        if why := offer_raw(loaded.backend, norm):
            raise SystemExit(f"{loaded.backend.name} does not take camera counts: {why}")
        stacks = [acq.capture(FieldRequest("bench", i, (0.0, 0.0))) for i in range(args.distinct)]
        patch = loaded.spec.patch_size
        jobs = [j for s in stacks for j in process_stack(s, cfg.qc, cfg.detector, cfg.crops, patch).jobs]
        runs: dict[str, list[dict[str, float]]] = {"float": [], "raw": []}
        for r in range(args.rounds):
            for kind in (("float", "raw") if r % 2 == 0 else ("raw", "float")):
                runs[kind].append(arm(loaded.backend, jobs, norm, args.batch, args.batches, kind == "raw"))
        res: dict[str, Any] = {"backend": loaded.backend.name, "batch": args.batch, "rounds": args.rounds,
                               "cells_per_arm_and_round": args.batch * args.batches}
        for kind, rs in runs.items():
            res[kind] = {k: [round(float(np.median(v)), 3), round(min(v), 3), round(max(v), 3)]
                         for k in rs[0] for v in [[x[k] for x in rs]]}
    print(json.dumps(res, indent=None if args.json else 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

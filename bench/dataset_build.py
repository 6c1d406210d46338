"""Benchmark of the dataset build: fields/s and peak memory with 1 and 2 worker processes.

A simulated scan (``--fields`` fields, stained re-scan and 100x tiles) is generated once into
``--raw`` (kept and reused: generation takes far longer than the build). Each build then runs in
a fresh subprocess into a new store, so the figures do not share caches or allocations. Peak
memory is the maximum resident set of the main process and of any one worker (``ru_maxrss``);
the total a machine needs is about main + workers x worker peak. ``ratio`` is the fields/s of a
run divided by the 1-worker fields/s of the same invocation.

    python bench/dataset_build.py [--fields 50] [--field-size 256] [--workers 1,2] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sim.scan import ScanConfig, scan

_CHILD = """
import json, resource, sys, time
from pathlib import Path
from trainer.data.build import build_dataset
if __name__ == "__main__":
    t0 = time.perf_counter()
    report = build_dataset([Path(sys.argv[1])], Path(sys.argv[2]), hr=True, workers=int(sys.argv[3]))
    seconds = time.perf_counter() - t0
    kib = 1024
    print(json.dumps({"seconds": seconds, "fields": report["fields"]["processed"],
                      "samples": report["samples_total"],
                      "main_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib,
                      "worker_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib}))
"""


def ensure_scan(raw: Path, fields: int, size: int) -> None:
    """Generate (or resume) the benchmark scan."""
    cfg = ScanConfig(fields=fields, seed=50, field_size_px=(size, size), stained=True, hr=True,
                     smear={"wbc_per_mm2": 600.0})
    t0 = time.perf_counter()
    scan(cfg, raw, lambda i, n: print(f"\rgenerating field {i}/{n}", end="", file=sys.stderr))
    print(f"\rscan ready in {time.perf_counter() - t0:.0f} s: {raw}", file=sys.stderr)


def run_build(raw: Path, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "child.py"
        script.write_text(_CHILD)
        out = subprocess.run([sys.executable, str(script), str(raw), str(Path(tmp) / "d.zarr"), str(workers)],
                             capture_output=True, text=True, check=True)
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["workers"] = workers
    result["fields_per_s"] = result["fields"] / result["seconds"]
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--raw", type=Path, default=Path("out/bench/dataset_build/raw256"))
    p.add_argument("--fields", type=int, default=50)
    p.add_argument("--field-size", type=int, default=256)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--fresh", action="store_true", help="regenerate the scan")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.fresh:
        shutil.rmtree(args.raw, ignore_errors=True)
    ensure_scan(args.raw, args.fields, args.field_size)
    rows = [run_build(args.raw, int(w)) for w in args.workers.split(",")]
    base = next((r for r in rows if r["workers"] == 1), rows[0])
    for r in rows:
        r["ratio_vs_1_worker"] = round(r["fields_per_s"] / base["fields_per_s"], 2)
        for k in ("seconds", "fields_per_s", "main_peak_mb", "worker_peak_mb"):
            r[k] = round(r[k], 2)
    if args.json:
        print(json.dumps({"fields": args.fields, "field_size_px": args.field_size, "runs": rows}, indent=1))
        return 0
    cols = ["workers", "fields", "samples", "seconds", "fields_per_s", "ratio_vs_1_worker", "main_peak_mb",
            "worker_peak_mb"]
    print(" ".join(f"{c:>17}" for c in cols))
    for r in rows:
        print(" ".join(f"{r[c]:>17}" for c in cols))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

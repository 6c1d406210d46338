"""``stainless-train build-dataset RAW_DIR [RAW_DIR ...] --out DATASET.zarr [--hr] [--workers N] [--json]``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from trainer.data.build import build_dataset
from trainer.data.config import load_build_config


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build-dataset", help="pair unstained PLS stacks with stained re-scans into a zarr dataset")
    p.add_argument("raw", type=Path, nargs="+", help="raw-scan folders (one per slide)")
    p.add_argument("--out", type=Path, required=True, help="dataset to create or resume (DATASET.zarr)")
    p.add_argument("--hr", action="store_true", help="also build 100x targets from the scans' hr tiles")
    p.add_argument("--workers", type=int, default=1, help="worker processes (fields in parallel)")
    p.add_argument("--config", type=Path, default=None, help="build config TOML (defaults if omitted)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run)


class _Bar:
    """A one-line progress bar on an interactive stderr; silent otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.t0 = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        width = 30
        fill = int(width * done / max(total, 1))
        rate = done / max(time.monotonic() - self.t0, 1e-9)
        print(f"\r[{'#' * fill}{'.' * (width - fill)}] {done}/{total} fields  {rate:.2f} fields/s",
              end="\n" if done == total else "", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise ValueError(f"--workers: expected >= 1, found {args.workers}")
    cfg = load_build_config(args.config)
    report = build_dataset(args.raw, args.out, cfg, hr=args.hr, workers=args.workers, progress=_Bar(not args.json))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    f, c = report["fields"], report["cells"]
    rejected = {k.split(":", 1)[1]: v for k, v in {**f, **c}.items() if k.startswith("rejected:")}
    reg = report["registration"]["fine_offset_px"]
    print(f"{report['out']}: {report['samples_total']} samples {report['samples_per_split']}; "
          f"fields used {f.get('fields_used', 0)}/{f['processed']} (+{f.get('fields_already_done', 0)} already done); "
          f"cells found {c.get('found', 0)}, kept {c.get('kept', 0)}; rejected {rejected}; "
          f"fine offset median {reg.get('median', float('nan'))} px")
    return 0

"""Edge pipeline benchmark on the virtual bench, acquisition excluded (:mod:`edge.bench.pipeline`).

Stacks are captured once through the emulated LED array and the simulated camera, then replayed
into the daemon's processing (cell inputs written into batch buffers) → batching → inference (the
model only) → publishing (fidelity, headers, spool) path. Throughput phase (``--chunk`` fields at a
time, each chunk submitted at once as one scan, alternated with the backend alone; by default two scans
of 200 fields, as a device scans a slide: one run of many fields): per-stage p50/p99 (ms), cells/s and
fields/s, the ratio pipeline / backend alone (same inputs, batches of the pipeline's average size, same
run), each scan split into fill, steady state and drain (``scan``: the steady state's ratio, the fill
and drain per scan in ms, the ratio projected for scans of 8 to 1000 fields; :mod:`edge.bench.scanphases`),
each thread's CPU and run-queue wait per cell (``threads_ms_per_cell``) and resident memory over the run
(``rss_slope_mb_per_100_fields``: after the first fifth; ``rss_mb_at_fields``: when 10 / 20 / 50 / 100 %
of the fields were done; ``--spool ''`` leaves out the in-memory replay spool, which grows until its ``max_mb``;
``--fresh-stacks`` gives every capture a new array, as a camera does, so what the daemon keeps per
field in flight shows). Latency phase (fields paced at half the saturated
rate, `LATENCY_LOAD`): end of capture → on the wire p50 against one batch of inference + 50 ms.
``stages_ms`` includes ``fill_cpu_ms`` (a field's cell inputs into the batch buffers, processing
thread) and ``publish_cpu_ms`` (a batch's fidelity, headers and sends, publishing thread).
``stainless-edge profile`` runs the same code with a per-batch backend table and the device
description; ``bench/infer_thread.py`` splits the inference
and publishing threads' time per batch.

    python bench/edge_pipeline.py [--fields 400] [--distinct 6] [--bundle B [--precision int8] | --model PATH.onnx]
        [--backend auto|openvino|...] [--threads N] [--spool :memory:|PATH|''] [--chunk 200] [--fresh-stacks]
        [--queue-size 256] [--process-nice N] [--raw-input auto|on|off] [--fixed-batch on|off]
        [--fixed-batch-streams N] [--json]

``backend`` in the output has the backend's name, why it was chosen and ``plugin_properties``: what
its runtime runs the model with as compiled (OpenVINO: precision and performance hints, inference
threads, pinning; empty for ONNX Runtime).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.bench.pipeline import BenchModel, conv_model, run

#: Fields per scan in the throughput phase: ~860 cells at the bench's ~4.3 per field, a run long enough that
#: the scan's one fill and drain (~60 ms) weigh < 0.5 % and processing runs beside the model throughout, as in
#: a device's scan of a slide; the 20-field chunks used before flattered the steady state (README).
SCAN_FIELDS_DEFAULT = 200


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fields", type=int, default=2 * SCAN_FIELDS_DEFAULT)
    ap.add_argument("--distinct", type=int, default=6, help="distinct simulated fields captured and replayed")
    ap.add_argument("--bundle", type=Path, help="a .stainless bundle (e.g. models/default.stainless)")
    ap.add_argument("--model", type=Path, help="an ONNX taking (B, 132, P, P); default: a small conv net")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8", "bf16"),
                    help="the bundle's model to run (a precision the bundle lacks falls back to fp32)")
    ap.add_argument("--threads", type=int, default=0,
                    help="the backend's inference threads ([model] threads; 0: the runtime's default)")
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--queue-size", type=int, default=256, help="[batching] queue_size: cells waiting for the model")
    ap.add_argument("--spool", default=":memory:", help="the replay spool: ':memory:' (the default), a file, '' (off)")
    ap.add_argument("--chunk", type=int, default=SCAN_FIELDS_DEFAULT,
                    help="fields per throughput chunk, submitted at once as one scan and alternated with the "
                         "backend alone (--chunk = --fields: one scan; 20 was the default before the scan split)")
    ap.add_argument("--fresh-stacks", action="store_true",
                    help="every capture a new pixel array, as a camera's (a copy on the acquisition thread), so "
                         "resident memory shows what the daemon keeps per field in flight")
    ap.add_argument("--process-nice", type=int, default=None,
                    help="[daemon] process_nice: niceness added to the processing thread "
                         "(default: the daemon's)")
    ap.add_argument("--raw-input", choices=("auto", "on", "off"), default="auto",
                    help="[model] raw_input: the backend normalises the cells' camera counts (on: where it can; "
                         "auto: where that saves CPU) or the processing thread writes float32 inputs (off)")
    ap.add_argument("--fixed-batch", choices=("on", "off"), default="on",
                    help="[batching] fixed_batch: the model also compiled for exactly --max-batch where that is "
                         "faster (OpenVINO)")
    ap.add_argument("--fixed-batch-streams", type=int, default=0,
                    help="[batching] fixed_batch_streams: the full batch as this many equal parts at once, each on "
                         "a stream of its own (OpenVINO; 0: two where --max-batch is even on two cores or more)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    raw, fixed = args.raw_input, args.fixed_batch == "on"
    streams = args.fixed_batch_streams
    with tempfile.TemporaryDirectory() as tmp:
        if args.bundle:
            model = BenchModel(bundle=str(args.bundle), backend=args.backend, precision=args.precision,
                               threads=args.threads, raw_input=raw, fixed_batch=fixed, fixed_batch_streams=streams)
        else:
            onnx = args.model or conv_model(Path(tmp) / "bench.onnx", 132, args.patch)
            model = BenchModel(onnx=str(onnx), backend=args.backend, patch=args.patch, threads=args.threads,
                               raw_input=raw, fixed_batch=fixed, fixed_batch_streams=streams)
        res = run(model, args.fields, args.distinct, args.max_batch, chunk_fields=args.chunk, spool=args.spool,
                  fresh_stacks=args.fresh_stacks, queue_size=args.queue_size, process_nice=args.process_nice)
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            if k == "stages_ms":
                for s, q in v.items():
                    print(f"  {s:24s} p50 {q['p50']:10.2f} ms   p99 {q['p99']:10.2f} ms")
            elif k == "scan":
                print("\n".join(scan_lines(v)))
            elif k == "threads_ms_per_cell":
                print("threads, ms per cell (CPU / waiting for a core):")
                for arm, groups in v.items():
                    print(f"  {arm}: " + ", ".join(f"{n} {g['cpu_ms']:.2f} / {g['wait_ms']:.2f}"
                                                   for n, g in groups.items() if g["cpu_ms"] >= 0.01))
            else:
                print(f"{k}: {v}")
    return 0


def scan_lines(scan: dict[str, Any]) -> list[str]:
    """The ``scan`` summary as a table: each figure's median [least, most] over the chunks."""
    lines = ["each chunk as one scan: fill | steady state | drain (median [least, most] over the chunks)"]
    for key, v in scan.items():
        if key not in ("chunks", "ratio_for_scan_fields") and v:
            lines.append(f"  {key:22s} {v[0]:10.3f} [{v[1]:.3f}, {v[2]:.3f}]")
    if "ratio_for_scan_fields" in scan:
        lines.append("  ratio for a scan of N fields (steady state + one fill and drain): " +
                     ", ".join(f"{n}: {r}" for n, r in scan["ratio_for_scan_fields"].items()))
    return lines


if __name__ == "__main__":
    sys.exit(main())

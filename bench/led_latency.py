"""LED-array command latency and stack stepping time, with ratios against a same-run baseline.

    .venv/bin/python bench/led_latency.py [--url sim://thesis-43] [--n 1000] [--dwell-ms 5] [--json]

Measures, over the emulator's real pty (or any URL, e.g. a real controller):

* the round trip of ``l.<i>`` (send, wait for ``-==-``): p50 / p99 / mean;
* stepping through the ``full-nohe`` recipe host-paced (one ``l.`` per channel, waiting for each
  reply), without and with a per-image dwell standing in for the exposure;
* the same stack as a firmware sequence: upload (``ssl`` + ``ssv``) and ``rseq`` at the dwell as
  pattern period, trigger output 0 pulsing at every pattern.

Ratios are against the host-paced step-through with dwell (the baseline), measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.measures import percentile
from firmware_bridge.client import IlluminateLedArray, open_led_array
from firmware_bridge.plan import channel_leds
from firmware_bridge.recipes import resolve_recipe


def round_trips(arr: IlluminateLedArray, n: int) -> list[float]:
    """``l.<i>`` round trips (ms), cycling through every LED."""
    count = arr.props.led_count
    out = []
    for k in range(n):
        t0 = time.perf_counter()
        arr.light([k % count])
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def host_paced(arr: IlluminateLedArray, plan: list[str], dwell_s: float) -> float:
    """Seconds to step through ``plan`` one command at a time, dwelling ``dwell_s`` per image."""
    t0 = time.perf_counter()
    for line in plan:
        arr.send_line(line)
        if dwell_s:
            time.sleep(dwell_s)  # the camera's exposure would happen here
    return time.perf_counter() - t0


def firmware_sequence(arr: IlluminateLedArray, patterns: list[tuple[int, ...]], period_ms: int) -> tuple[float, float]:
    """(upload s, run s) of the stack as an ``rseq`` firmware sequence."""
    t0 = time.perf_counter()
    arr.load_sequence(patterns)
    t1 = time.perf_counter()
    arr.run_sequence(period_ms, 1, trigger_output=(1,))
    return t1 - t0, time.perf_counter() - t1


def run(url: str, n: int, dwell_ms: int, repeats: int) -> dict[str, Any]:
    with open_led_array(url) as arr:
        recipe = resolve_recipe("full-nohe", arr.geometry())
        plan = arr.plan(recipe)
        patterns = [channel_leds(c, recipe) for c in recipe.channels]
        rtt = round_trips(arr, n)
        bare = statistics.median(host_paced(arr, plan, 0.0) for _ in range(repeats))
        dwell = statistics.median(host_paced(arr, plan, dwell_ms / 1e3) for _ in range(repeats))
        seq = [firmware_sequence(arr, patterns, dwell_ms) for _ in range(repeats)]
        upload = statistics.median(s[0] for s in seq)
        play = statistics.median(s[1] for s in seq)
        arr.clear()
        rows = {
            "host-paced, dwell (baseline)": dwell,
            "host-paced, no dwell": bare,
            "firmware rseq (run only)": play,
            "firmware upload + rseq": upload + play,
        }
    return {
        "url": url, "recipe": recipe.id, "images": len(recipe), "dwell_ms": dwell_ms, "repeats": repeats,
        "l_round_trip_ms": {"p50": percentile(rtt, 50), "p99": percentile(rtt, 99),
                            "mean": statistics.fmean(rtt), "n": n},
        "stack_s": rows, "sequence_upload_s": upload,
        "ratio_vs_baseline": {k: v / dwell for k, v in rows.items()},
    }


def print_table(res: dict[str, Any]) -> None:
    rt = res["l_round_trip_ms"]
    print(f"l.<i> round trip over {res['url']} (n={rt['n']}): p50 {rt['p50']:.3f} ms, "
          f"p99 {rt['p99']:.3f} ms, mean {rt['mean']:.3f} ms")
    print(f"\n{res['recipe']} stack ({res['images']} images), dwell {res['dwell_ms']} ms, "
          f"median of {res['repeats']}")
    print(f"{'mode':<32}{'time (ms)':>12}{'vs baseline':>14}")
    for name, secs in res["stack_s"].items():
        print(f"{name:<32}{secs * 1e3:>12.2f}{res['ratio_vs_baseline'][name]:>13.3f}x")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="sim://thesis-43", help="LED array URL (default: emulator on a pty)")
    p.add_argument("--n", type=int, default=1000, help="l.<i> round trips to time")
    p.add_argument("--dwell-ms", type=int, default=5, help="per-image dwell = rseq period (ms, >= 5)")
    p.add_argument("--repeats", type=int, default=5, help="stack runs per mode (median reported)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    res = run(args.url, args.n, args.dwell_ms, args.repeats)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print_table(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())

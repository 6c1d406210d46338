"""Cost of the spool: publishing with a SQLite spool (file, WAL) vs without, and replay throughput.

The publisher sends N ``cell`` messages the size of the virtual bench's (64 px: stained, unstained,
darkfield, truth; ~49 kB with the header) to a real subscriber on loopback that drains them on a
thread; in the same run without a spool (the baseline), with ``:memory:``, and with a file, one
message per call (one spool transaction each) and in batches of 8 (``Publisher.publish_many``: one
transaction per batch, as the daemon publishes a stained batch). Then
the whole file spool is replayed through the control channel page by page. Prints µs per message,
the ratio to the baseline, the publishing thread's CPU per message, and replay MB/s.

    python bench/spool.py [--cells 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.client import ControlClient, Subscriber
from edge.client.recovery import fetch
from edge.device.control import ControlServer
from edge.device.opsconfig import PublisherConfig, SpoolConfig
from edge.device.publisher import Publisher
from edge.device.replay import replay
from edge.device.spool import Spool


def payloads(rng: np.random.Generator) -> dict[str, np.ndarray]:
    names = ("stained", "unstained", "darkfield", "truth")
    return {k: rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for k in names}


def publish_run(ctx: zmq.Context[Any], spool: Spool | None, n: int, batch: int = 1) -> tuple[float, float]:
    """µs per published message, wall and the publishing thread's CPU (robust to neighbours on a shared
    machine), with a subscriber draining on a thread, ``batch`` messages per call."""
    pub = Publisher(ctx, PublisherConfig(endpoint="tcp://127.0.0.1:*", send_hwm=100_000, linger_ms=0), "b", spool=spool)
    got = threading.Event()
    with Subscriber(pub.endpoint, topics=("cell",), context=ctx) as sub:
        assert pub.wait_for_subscribers(1, 5.0)

        def drain() -> None:
            k = 0
            while k < n and sub.receive(timeout=30.0) is not None:
                k += 1
            got.set()

        t = threading.Thread(target=drain)
        t.start()
        rng = np.random.default_rng(0)
        cells = [payloads(rng) for _ in range(8)]
        t0, c0 = time.perf_counter(), time.thread_time()
        for i in range(0, n, batch):
            pub.publish_many("cell", [({"cell_id": f"c{k}", "field_id": k // 8}, cells[k % 8])
                                      for k in range(i, min(n, i + batch))])
        dt, dc = time.perf_counter() - t0, time.thread_time() - c0
        got.wait(60)
        t.join(60)
    pub.close()
    return dt / n * 1e6, dc / n * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=2000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    ctx: zmq.Context[Any] = zmq.Context()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SpoolConfig(path=str(Path(tmp) / "spool.db"), max_mb=1024.0)
        base, base_cpu = publish_run(ctx, None, args.cells)
        runs, cpu = {}, {}
        for batch in (1, 8):
            mem = Spool(SpoolConfig(path=":memory:", max_mb=1024.0))
            runs[f"memory_batch{batch}"], cpu[f"memory_batch{batch}"] = publish_run(ctx, mem, args.cells, batch)
            mem.close()
        spool = Spool(SpoolConfig(path=str(Path(tmp) / "spool1.db"), max_mb=1024.0))
        runs["file_wal_batch1"], cpu["file_wal_batch1"] = publish_run(ctx, spool, args.cells, 1)
        spool.close()
        spool = Spool(cfg)
        runs["file_wal_batch8"], cpu["file_wal_batch8"] = publish_run(ctx, spool, args.cells, 8)
        size_mb = spool.stats()["bytes"] / 2**20
        server = ControlServer(ctx, "tcp://127.0.0.1:*", {"replay": lambda a: replay(spool, cfg, a)}, 65536)
        stop = threading.Event()

        def serve_loop() -> None:
            while not stop.is_set():
                server.serve_once(20)

        serve = threading.Thread(target=serve_loop)
        serve.start()
        with ControlClient(server.endpoint, timeout=30.0, context=ctx) as ctl:
            t0 = time.perf_counter()
            msgs, missing = fetch(ctl, "cell", 0)
            replay_s = time.perf_counter() - t0
        stop.set()
        serve.join()
        server.close()
        spool.close()
    ctx.term()
    report = {"cells": args.cells, "message_kb": round(size_mb * 1024 / args.cells, 1),
              "publish_us": {"no_spool": round(base, 1)} | {k: round(v, 1) for k, v in runs.items()},
              "ratio_vs_no_spool": {k: round(v / base, 2) for k, v in runs.items()},
              "publish_cpu_us": {"no_spool": round(base_cpu, 1)} | {k: round(v, 1) for k, v in cpu.items()},
              "replay": {"messages": len(msgs), "missing": missing, "s": round(replay_s, 3),
                         "mb_per_s": round(size_mb / replay_s, 1)}}
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

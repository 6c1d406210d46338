"""What CURVE costs: one subscriber receiving cell-sized messages, and control round trips, plain vs CURVE.

Each cell message carries three ``(64, 64, 3)`` uint8 payloads (stained, unstained, darkfield) like the
daemon's; a publisher thread sends ``--cells`` of them through :class:`edge.device.publisher.Publisher`
and one :class:`edge.client.Subscriber` receives them on loopback. Then ``--calls`` ``status``
requests go through :class:`edge.device.control.ControlServer`. Prints cells/s, MB/s and the mean
round trip (ms) for plain text and for CURVE (keys made in a temporary folder).

    python bench/curve_overhead.py [--cells 3000] [--calls 500] [--json]
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

from edge.client import ClientKeys, ControlClient, Subscriber, load_client_keys
from edge.device.control import ControlServer
from edge.device.opsconfig import PublisherConfig, SecurityConfig
from edge.device.publisher import Publisher
from edge.device.security import ServerSecurity, make_keys, open_security

PATCH = 64


def measure(ctx: zmq.Context[Any], sec: ServerSecurity | None, keys: ClientKeys | None, cells: int,
            calls: int) -> dict[str, float]:
    pub = Publisher(ctx, PublisherConfig(endpoint="tcp://127.0.0.1:*", linger_ms=0, send_hwm=cells), "bench",
                    security=sec)
    sub = Subscriber(pub.endpoint, topics=("cell",), context=ctx, curve=keys, rcvhwm=cells)
    srv = ControlServer(ctx, "tcp://127.0.0.1:*", {"status": lambda args: {"state": "idle"}}, 65536, sec)
    stop = threading.Event()
    server = threading.Thread(target=lambda: [srv.serve_once(20) for _ in iter(stop.is_set, True)])
    ctl = ControlClient(srv.endpoint, context=ctx, curve=keys, timeout=5.0)
    try:
        if not pub.wait_for_subscribers(1, 10.0):
            raise RuntimeError("the subscriber never subscribed")
        rng = np.random.default_rng(0)
        payloads = {k: rng.integers(0, 255, (PATCH, PATCH, 3), np.uint8) for k in ("stained", "unstained", "darkfield")}
        sender = threading.Thread(target=lambda: [pub.publish("cell", {"cell_id": str(i)}, payloads)
                                                  for i in range(cells)])
        t0 = time.perf_counter()
        sender.start()
        got = 0
        while got < cells and sub.receive(5.0) is not None:
            got += 1
        dt = time.perf_counter() - t0
        sender.join()
        server.start()
        ctl.call("status")  # the handshake is not part of the round trip
        t1 = time.perf_counter()
        for _ in range(calls):
            ctl.call("status")
        rtt = (time.perf_counter() - t1) / calls
    finally:
        stop.set()
        if server.is_alive():
            server.join()
        for thing in (ctl, srv, sub, pub):
            thing.close()
    return {"cells": got, "cells_per_s": round(got / dt), "MB_per_s": round(got * 3 * PATCH * PATCH * 3 / dt / 1e6, 1),
            "control_rtt_ms": round(rtt * 1e3, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", type=int, default=3000)
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        make_keys(Path(tmp) / "server", "server")
        make_keys(Path(tmp) / "clients", "bench")
        for mode in ("plain", "curve"):
            ctx: zmq.Context[Any] = zmq.Context()
            sec = open_security(ctx, SecurityConfig(f"{tmp}/server/server.key_secret", (f"{tmp}/clients",))
                                ) if mode == "curve" else None
            keys = load_client_keys(f"{tmp}/clients/bench.key_secret", f"{tmp}/server/server.key") if sec else None
            try:
                out[mode] = measure(ctx, sec, keys, args.cells, args.calls)
            finally:
                if sec is not None:
                    sec.close()
                ctx.term()
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

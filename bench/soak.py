"""Soak on the virtual bench: a daemon scanning for minutes while everything around it misbehaves.

One process: the daemon (:func:`edge.bench.daemon.build_bench_pipeline`, the shipped default model
from an install root, a file spool in a temp dir) scans continuously (``start_scan`` again whenever
fewer than two fields are queued). Around it:

* a subscriber (:class:`edge.client.Subscriber` with ``control`` and ``start``) that disconnects and
  reconnects at random, resuming where it left off (missed cells come back through ``replay``);
* the LED controller, the illuminate emulator served on TCP, vanishes mid-stack (``vanish_on``) or
  loses its cable between commands (``drop_client``) at random and comes back;
* at 25 % of the run a ``flash`` of the default model re-signed as 0.3.0 by a key the soak makes and
  trusts, at 45 % a ``rollback``, at 65 % a daemon restart (shutdown, a new pipeline on the same
  spool and endpoints: numbering continues).

One process, not a subprocess: the virtual bench's camera renders what the *in-process* emulated LED
array lights, and the soak drives that controller's faults; RSS is therefore the whole process
(daemon and subscriber). Report: cells detected (the daemons' ``cells_sent + cells_not_sent``
counters, summed over their lifetimes) vs distinct cells received, duplicates, cells announced in
field summaries but never received, stage failures and unplanned restarts, RSS, the longest gap
between published messages within a daemon's lifetime (from the headers' clocks), flash/rollback
outcomes, LED vanishings and link reconnects.

    python bench/soak.py [--minutes 30] [--seed 0] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.config import read_toml
from edge.bench.daemon import build_bench_pipeline
from edge.client import ControlClient, FieldSummary, StainedCell, Subscriber
from edge.device import slots
from edge.device.app import Pipeline
from edge.device.config import AutoScanConfig, EdgeConfig, config_from_dict
from edge.device.flash import FINAL
from edge.device.metrics import rss_mb
from edge.device.opsconfig import FlashConfig, SpoolConfig
from export.bundlefile import resign_bundle
from firmware_bridge.client import IlluminateLedArray
from firmware_bridge.emulator import Emulator
from firmware_bridge.link import LinkConfig
from firmware_bridge.rigs import get_profile

ROOT = Path(__file__).resolve().parents[1]
LINK = LinkConfig(timeout_s=2.0, backoff_initial_s=0.02, backoff_max_s=0.2, reconnect_attempts=8)


@dataclasses.dataclass(frozen=True)
class SoakPlan:
    """What happens when: times in s from the start; the subscriber's and LED's rhythms are drawn from ranges."""

    seconds: float
    seed: int = 0
    field_px: int = 256
    fields_per_scan: int = 4
    flash_at: float = 0.25
    rollback_at: float = 0.45
    restart_at: float = 0.65
    flash_version: str = "0.3.0"

    @property
    def session_s(self) -> tuple[float, float]:  # subscriber connected
        return (min(5.0, self.seconds / 20), min(40.0, self.seconds / 6))

    @property
    def offline_s(self) -> tuple[float, float]:  # subscriber away
        return (min(1.0, self.seconds / 60), min(15.0, self.seconds / 12))

    @property
    def led_every_s(self) -> tuple[float, float]:
        return (min(15.0, self.seconds / 10), min(60.0, self.seconds / 4))


def soak_config(tmp: Path, plan: SoakPlan, trusted: Path) -> EdgeConfig:
    """``deploy/configs/sim.toml`` on random loopback ports, the install root and spool in ``tmp``."""
    cfg = config_from_dict(read_toml(ROOT / "deploy" / "configs" / "sim.toml"), base_dir=ROOT)
    r = dataclasses.replace
    return cfg.replace(
        daemon=r(cfg.daemon, id="soak", log_level="WARNING"),
        virtual_bench=r(cfg.virtual_bench, seed=plan.seed, field_size_px=(plan.field_px, plan.field_px),
                        fields=64, send_truth=False),
        model=r(cfg.model, bundle=str(tmp / "models"), public_key=str(trusted)),
        flash=FlashConfig(health_cells=16, health_timeout_s=300.0),
        spool=SpoolConfig(path=str(tmp / "spool.sqlite"), max_mb=256.0),
        publisher=r(cfg.publisher, endpoint="tcp://127.0.0.1:*"),
        control=r(cfg.control, endpoint="tcp://127.0.0.1:*"),
        scan=AutoScanConfig(autostart_fields=0))


def prepare_bundles(tmp: Path) -> tuple[Path, Path]:
    """A soak signing key (its .pub trusted by the daemon), the default model re-signed by it as installed
    0.2.0 in ``tmp/models``; returns (trusted .pub, the 0.3.0 bundle to flash)."""
    key = Ed25519PrivateKey.generate()
    pub = tmp / "soak.pub"
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    shipped, demo = ROOT / "models" / "default.stainless", ROOT / "models" / "demo-key" / "stainless-signing.pub"
    base = resign_bundle(shipped, "0.2.0", key, tmp / "default-0.2.0.stainless", demo)
    newer = resign_bundle(shipped, "0.3.0", key, tmp / "default-0.3.0.stainless", demo)
    slots.install(base, tmp / "models", slots.TrustPolicy((key.public_key(),)))
    return pub, newer


class Receiver:
    """The subscriber side: sessions of random length, resuming from the last sequence numbers seen."""

    def __init__(self, plan: SoakPlan, rng: random.Random) -> None:
        self.plan, self.rng = plan, rng
        self.cells: Counter[str] = Counter()  # cell_id → times delivered
        self.seqs: dict[str, set[int]] = {"cell": set(), "field": set()}
        self.announced: set[str] = set()  # cell ids listed in field summaries
        self.versions: Counter[str] = Counter()
        self.times: list[float] = []  # publish clocks of cells (inference done) and fields (done)
        self.fields: Counter[str] = Counter()  # by status
        self.retried_fields = 0
        self.sessions = 0
        #: per counter (recovered, gaps, dropped duplicates, replay errors) and topic; a ``status`` missed
        #: while reconnecting is a gap too, but never replayed (not spooled) and harmless
        self.stats: dict[str, Counter[str]] = {}
        self.resume: dict[str, int] = {"cell": 0, "field": 0}
        self.stop = threading.Event()
        self.final: dict[str, int] | None = None  # next_seq of the last daemon: drain up to it, then end
        self.complete = threading.Event()
        self.last_error = ""

    def run(self, endpoints: dict[str, str], epoch: int) -> None:
        while not self.complete.is_set():
            length = self.rng.uniform(*self.plan.session_s)
            with Subscriber(endpoints["pub"], topics=("cell", "field", "status"), control=endpoints["control"],
                            start=dict(self.resume), start_epoch=epoch, replay_timeout=30.0) as sub:
                self.sessions += 1
                self._session(sub, time.monotonic() + length)
                for name, c in (("recovered", sub.recovered), ("gaps", sub.gaps),
                                ("duplicates_dropped", sub.sequence.duplicates),
                                ("replay_errors", sub.sequence.replay_errors)):
                    self.stats.setdefault(name, Counter()).update(c)
                if sub.sequence.last_error:
                    self.last_error = sub.sequence.last_error
            if not self.complete.is_set() and self.final is None:
                self.stop.wait(self.rng.uniform(*self.plan.offline_s))

    def _session(self, sub: Subscriber, until: float) -> None:
        while not self._done() and (self.final is not None or time.monotonic() < until):
            m = sub.receive(timeout=0.2)
            if isinstance(m, StainedCell):
                self.cells[m.cell_id] += 1
                self.versions[m.header["model"]["version"]] += 1
                self.times.append(float(m.header["t"]["inference_done"]))
                self._seen("cell", m.seq)
            elif isinstance(m, FieldSummary):
                h = m.header
                self.fields[h["status"]] += 1
                self.retried_fields += int(h.get("attempts", 1)) > 1
                self.announced.update(h.get("cell_ids", ()))
                if "t" in h:
                    self.times.append(float(h["t"]["done"]))
                self._seen("field", int(h["seq"]))

    def _seen(self, topic: str, seq: int) -> None:
        self.seqs[topic].add(seq)
        self.resume[topic] = max(self.resume[topic], seq + 1)

    def _done(self) -> bool:
        if self.final is not None and all(len(self.seqs[t]) >= n for t, n in self.final.items()):
            self.complete.set()
        return self.complete.is_set()


class Soak:
    """The daemon's lifetimes, the timeline of planned faults, and the figures."""

    def __init__(self, plan: SoakPlan, tmp: Path) -> None:
        self.plan, self.rng = plan, random.Random(plan.seed)
        self.trusted, self.newer = prepare_bundles(tmp)
        self.config = soak_config(tmp, plan, self.trusted)
        self.emu = Emulator(get_profile("thesis-43"))
        self.server = self.emu.serve_tcp()
        self.led = IlluminateLedArray(self.server.url, config=LINK, emulator=self.emu)
        self.receiver = Receiver(plan, random.Random(plan.seed + 1))
        self.lifetimes: list[dict[str, Any]] = []
        self.updates: dict[str, Any] = {}
        self.failures: list[str] = []
        self.unplanned_restarts = 0
        self.led_faults: Counter[str] = Counter()
        self.rss: list[float] = []
        self.rss_marks: dict[str, float] = {}
        self.rss_minutes: list[float] = []
        self.wall0 = time.time()
        self.t0 = time.monotonic()
        self.scans = 0
        self.field_cursor = 0

    # -- daemon lifetimes --------------------------------------------------------------------------------
    def start_daemon(self) -> Pipeline:
        pipe = build_bench_pipeline(self.config, led=self.led).start()
        if self.config.publisher.endpoint.endswith("*"):  # later lifetimes bind where subscribers look
            self.config = self.config.replace(
                publisher=dataclasses.replace(self.config.publisher, endpoint=pipe.publisher.endpoint),
                control=dataclasses.replace(self.config.control, endpoint=pipe.control.endpoint))
        self.lifetimes.append({"start": time.time(), "model": pipe.spec.version, "epoch": pipe.publisher.epoch,
                               "first_seq": dict(pipe.publisher.stats()["next_seq"])})
        return pipe

    def stop_daemon(self, pipe: Pipeline) -> None:
        pipe.shutdown()
        counters = pipe.metrics.counters()
        self.lifetimes[-1].update(stop=time.time(), counters=counters,
                                  detected=counters.get("cells_sent", 0) + counters.get("cells_not_sent", 0))
        if pipe.failed.is_set():
            self.failures.append(pipe.failure)

    # -- the run -----------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        plan = self.plan
        pipe = self.start_daemon()
        endpoints = {"pub": pipe.publisher.endpoint, "control": pipe.control.endpoint}
        rx = threading.Thread(target=self.receiver.run, args=(endpoints, pipe.publisher.epoch), name="soak-rx")
        rx.start()
        t0 = self.t0 = time.monotonic()
        self.wall0 = time.time()
        steps = [(plan.flash_at, self.flash), (plan.rollback_at, self.rollback), (plan.restart_at, self.restart)]
        next_led = t0 + self.rng.uniform(*plan.led_every_s)
        ctl = ControlClient(endpoints["control"], timeout=30.0)
        try:
            while (now := time.monotonic()) < t0 + plan.seconds:
                if pipe.failed.is_set():  # not planned: count it, start again, go on
                    self.stop_daemon(pipe)
                    self.unplanned_restarts += 1
                    pipe = self.start_daemon()
                if steps and now >= t0 + steps[0][0] * plan.seconds:
                    pipe = steps.pop(0)[1](pipe, ctl)
                if now >= next_led and self.led.link.reconnects >= sum(self.led_faults.values()):
                    self.led_fault()
                    next_led = now + self.rng.uniform(*plan.led_every_s)
                self.keep_scanning(pipe, ctl)
                self.rss.append(rss_mb())
                if now >= t0 + 60 * len(self.rss_minutes):
                    self.rss_minutes.append(round(self.rss[-1], 1))
                if now >= t0 + 0.1 * plan.seconds and not self.rss_marks:
                    self.mark("warm")
                pipe.failed.wait(0.25)
            pipe.wait_idle(300.0)
            published = pipe.status()["publisher"]["next_seq"]
            self.receiver.final = {t: int(published.get(t, 0)) for t in ("cell", "field")}
            self.mark("end of scanning")
            self.receiver.stop.set()
            self.receiver.complete.wait(300.0)
        finally:
            self.receiver.complete.set()
            self.receiver.stop.set()
            rx.join(60.0)
            ctl.close()
            self.stop_daemon(pipe)
            self.led.close()
            self.server.close()
        return self.report()

    def mark(self, what: str) -> None:
        """RSS at a step of the timeline (MiB), to tell warm-up and model loads from growth."""
        self.rss_marks[f"{what} @{time.monotonic() - self.t0:.0f}s"] = round(rss_mb(), 1)

    def keep_scanning(self, pipe: Pipeline, ctl: ControlClient) -> None:
        if pipe.status()["fields_pending"] >= 2:
            return
        n, fields = self.config.virtual_bench.fields, []
        for _ in range(self.plan.fields_per_scan):
            f = self.field_cursor % n  # a slide of n fields scanned over and over (the camera keeps their truth)
            fields.append({"field_id": f, "stage_um": [100.0 * f, 0.0]})
            self.field_cursor += 1
        ctl.call("start_scan", slide_id=f"soak-{len(self.lifetimes)}", fields=fields)
        self.scans += 1

    def led_fault(self) -> None:
        if self.rng.random() < 0.5:
            self.server.vanish_on("l", nth=self.rng.randint(1, 44))  # mid-stack: the field is captured again
            self.led_faults["vanished_mid_stack"] += 1
        else:
            self.server.drop_client()  # a cable pull between commands
            self.led_faults["cable_pulled"] += 1

    def _update(self, pipe: Pipeline, ctl: ControlClient, name: str, cmd: str, **args: Any) -> Pipeline:
        t = time.monotonic()
        self.mark(f"before {name}")
        if pipe.updater is None:
            raise RuntimeError("the daemon has no model updater; build_pipeline always makes one")
        ctl.call(cmd, **args)
        while not (state := pipe.updater.status()["state"]).startswith(FINAL) and time.monotonic() - t < 600:
            self.keep_scanning(pipe, ctl)  # the old model keeps staining throughout
            pipe.failed.wait(0.25)
        self.updates[name] = {"state": state, "s": round(time.monotonic() - t, 1),
                              "model": pipe.spec.version}
        return pipe

    def flash(self, pipe: Pipeline, ctl: ControlClient) -> Pipeline:
        return self._update(pipe, ctl, "flash", "flash", path=str(self.newer))

    def rollback(self, pipe: Pipeline, ctl: ControlClient) -> Pipeline:
        return self._update(pipe, ctl, "rollback", "rollback")

    def restart(self, pipe: Pipeline, ctl: ControlClient) -> Pipeline:
        t = time.monotonic()
        self.mark("before restart")
        self.stop_daemon(pipe)
        pipe = self.start_daemon()
        before, after = self.lifetimes[-2], self.lifetimes[-1]
        self.updates["restart"] = {"s": round(time.monotonic() - t, 1), "model": pipe.spec.version,
                                   "same_epoch": before["epoch"] == after["epoch"],
                                   "next_seq": after["first_seq"]}
        return pipe

    # -- figures -----------------------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        rx = self.receiver
        detected = sum(life["detected"] for life in self.lifetimes)
        gaps = [longest_gap(rx.times, life["start"], life["stop"]) for life in self.lifetimes]
        worst = max(gaps)
        return {
            "minutes": round(self.plan.seconds / 60, 2), "seed": self.plan.seed, "field_px": self.plan.field_px,
            "cells": {"detected": detected, "received": len(rx.cells),
                      "duplicates": sum(n - 1 for n in rx.cells.values()),
                      "announced_not_received": len(rx.announced - set(rx.cells)),
                      "received_not_announced": len(set(rx.cells) - rx.announced),
                      "by_model_version": dict(rx.versions)},
            "fields": {**dict(rx.fields), "captured_again": rx.retried_fields, "scans": self.scans},
            "subscriber": {"sessions": rx.sessions, **{k: dict(v) for k, v in rx.stats.items()},
                           "last_replay_error": rx.last_error},
            "daemon": {"lifetimes": len(self.lifetimes), "planned_restarts": int("restart" in self.updates),
                       "unplanned_restarts": self.unplanned_restarts, "stage_failures": len(self.failures),
                       "failures": self.failures},
            "rss_mb": {"start": round(self.rss[0], 1), "end": round(self.rss[-1], 1),
                       "max": round(max(self.rss), 1), "growth": round(self.rss[-1] - self.rss[0], 1),
                       "marks": self.rss_marks, "per_minute": self.rss_minutes},
            "wall_s": round(time.monotonic() - self.t0, 1),
            "longest_gap_s": round(worst[0], 2), "longest_gap_ended_at_s": round(worst[1] - self.wall0, 1),
            "longest_gap_s_by_lifetime": [round(g, 2) for g, _ in gaps],
            "updates": self.updates,
            "led": {**dict(self.led_faults), "reconnects": self.led.link.reconnects},
        }


def longest_gap(times: list[float], start: float, stop: float) -> tuple[float, float]:
    """The longest interval (s) between consecutive publish times within ``[start, stop]``, and when it ended."""
    ts = sorted(t for t in times if start <= t <= stop)
    return max(((b - a, b) for a, b in itertools.pairwise(ts)), default=(0.0, start))


def soak(plan: SoakPlan) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="stainless-soak-") as tmp:
        return Soak(plan, Path(tmp)).run()


def table(r: dict[str, Any]) -> str:
    c, d, u = r["cells"], r["daemon"], r["updates"]
    rows = [("cells detected / received", f"{c['detected']} / {c['received']}"),
            ("duplicates / announced not received", f"{c['duplicates']} / {c['announced_not_received']}"),
            ("cells by model version", json.dumps(c["by_model_version"])),
            ("fields", json.dumps(r["fields"])),
            ("subscriber", json.dumps(r["subscriber"])),
            ("daemon lifetimes / unplanned restarts / stage failures",
             f"{d['lifetimes']} / {d['unplanned_restarts']} / {d['stage_failures']}"),
            ("RSS MiB start / end / max", f"{r['rss_mb']['start']} / {r['rss_mb']['end']} / {r['rss_mb']['max']}"),
            ("longest publishing gap (s)", f"{r['longest_gap_s']}, ended at {r['longest_gap_ended_at_s']} s "
                                           f"(per lifetime {r['longest_gap_s_by_lifetime']})"),
            ("RSS MiB per minute", json.dumps(r["rss_mb"]["per_minute"])),
            *((f"{k}", json.dumps(v)) for k, v in u.items()),
            ("LED faults", json.dumps(r["led"]))]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--field-px", type=int, default=256)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    report = soak(SoakPlan(seconds=args.minutes * 60, seed=args.seed, field_px=args.field_px))
    print(json.dumps(report) if args.json else table(report))
    ok = report["cells"]["detected"] == report["cells"]["received"] and report["cells"]["duplicates"] == 0
    return 0 if ok and not report["daemon"]["stage_failures"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

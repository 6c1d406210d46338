"""The daemon's pipeline measured on the virtual bench, acquisition excluded, and the backend alone.

One implementation behind ``bench/edge_pipeline.py`` and ``stainless-edge profile``. Stacks are
captured once through the emulated LED array and the simulated camera, then replayed into the
daemon's processing → batching → inference → publishing path (the capture stage returns
the cached stack with fresh time stamps). Two phases on one pipeline:

* **throughput** — every field submitted at once (the daemon saturated): cells/s, per-stage p50/p99,
  resident memory over the run (every 0.5 s; at each chunk's end, with the least-squares slope in MB
  per 100 fields after the first fifth, :func:`rss_slope`; the replay spool, in memory by default,
  grows until its ``max_mb``: ``spool=""`` leaves it out);
* **latency** — fields arriving one per ``interval`` (the saturated time per field over
  :data:`LATENCY_LOAD`, as on a device whose capture, not its processing, sets the pace): end of
  capture → on the wire p50/p99 against one batch of inference + 50 ms. A saturated pipeline's
  latency is its queue depth over its rate (Little's law), so it is reported too but is not the target.

The throughput phase alternates chunks of fields through the pipeline with the backend alone on the
same cell inputs, as many cells, in batches of the chunk's average size, so both meet the same
neighbours on a shared machine (the ratio is the chunks' median); the backend table then runs every
batch size asked for.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.measures import percentile
from edge.bench.daemon import open_bench_camera
from edge.bench.scanphases import BatchTime, ScanPhases, scan_phases, scan_summary
from edge.bench.threadcpu import combine, group_ms, thread_times
from edge.client import Subscriber
from edge.device.acquisition import Acquirer
from edge.device.app import Pipeline
from edge.device.backends import Backend, ProfilesLayers, layers_per_cell
from edge.device.build import build_pipeline
from edge.device.cameras import Camera
from edge.device.cell_jobs import process_stack
from edge.device.config import EdgeConfig, config_from_dict
from edge.device.crops import normalise
from edge.device.metrics import Metrics, rss_mb
from edge.device.model import LoadedModel, open_model
from edge.device.nvtx import nvtx_range
from edge.device.stack import FieldRequest, Stack
from firmware_bridge.client import LedArray, open_led_array

#: The stages of the per-field processing (:func:`edge.device.cell_jobs.process_stack`'s timings): wall, CPU.
PROCESS_PARTS = ("qc_ms", "detect_ms", "crop_ms")
PROCESS_CPU_PARTS = ("qc_cpu_ms", "detect_cpu_ms", "crop_cpu_ms")
#: The latency phase's load: fields arrive at this fraction of the rate the saturated pipeline reached.
LATENCY_LOAD = 0.5


@dataclass(frozen=True)
class BenchModel:
    """The model to measure: a bundle, or a bare ONNX taking ``(B, 132, patch, patch)``."""

    bundle: str = ""
    onnx: str = ""
    backend: str = "auto"
    precision: str = "fp32"
    patch: int = 64
    threads: int = 0
    raw_input: str = "auto"  #: ``[model] raw_input``: auto / on / off (the backend normalises camera counts)
    fixed_batch: bool = True  #: ``[batching] fixed_batch``: the model also compiled for the full batch
    fixed_batch_streams: int = 0  #: ``[batching] fixed_batch_streams``: that batch in parts on streams (0: auto)


def conv_model(path: Path, in_ch: int, patch: int, width: int = 48, depth: int = 4) -> Path:
    """A small fully convolutional model (3x3 convs + ReLU, sigmoid RGB), a stand-in for a generator."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, prev, ch = [], [], "x", in_ch
    for i in range(depth):
        out = width if i < depth - 1 else 3
        w = (rng.standard_normal((out, ch, 3, 3)) * (2 / (9 * ch)) ** 0.5).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(np.zeros(out, np.float32), f"b{i}")]
        nodes.append(helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        act = "Relu" if i < depth - 1 else "Sigmoid"
        nodes.append(helper.make_node(act, [f"c{i}"], [f"a{i}" if i < depth - 1 else "y"]))
        prev, ch = f"a{i}", out
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", in_ch, patch, patch])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 3, patch, patch])
    graph = helper.make_graph(nodes, "bench", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


class CachedStacks:
    """A stack source replaying captured stacks with fresh time stamps (acquisition excluded).

    With ``interval_s`` > 0 a capture ends no earlier than ``interval_s`` after the previous one (a
    camera exposing for that long); 0 returns at once. ``fresh``: every capture's pixels a new array (a
    copy, ~17 MB for a 256² thesis-43 field, on the acquisition thread), as a camera's are — what the
    daemon keeps alive per field in flight then shows in resident memory; otherwise every capture of
    a cached field shares its one array (no copy, so no CPU spent on it).
    """

    def __init__(self, cache: list[Stack], interval_s: float = 0.0, fresh: bool = False) -> None:
        self.cache = cache
        self.interval_s = interval_s
        self.fresh = fresh
        self._next = 0.0
        self.last_capture_end = 0.0  #: ``time.perf_counter()`` when the latest capture ended

    def capture(self, request: FieldRequest) -> Stack:
        if self.interval_s > 0:
            now = time.monotonic()
            self._next = max(self._next + self.interval_s, now)
            time.sleep(max(0.0, self._next - now))  # the exposure time of the emulated capture
        s = self.cache[request.field_id % len(self.cache)]
        now = time.time()
        pixels = s.pixels.copy() if self.fresh else s.pixels
        self.last_capture_end = time.perf_counter()
        return Stack(request, pixels, s.planes, s.colours, s.pixel_um, s.black_level, s.max_adu, now, now)


class BatchClock:
    """Times every batch the daemon's inference thread (``edge-infer``) runs through ``backend``, on
    ``time.perf_counter``'s clock; calls from other threads (the backend-alone arm) are not recorded.
    :meth:`close` gives the backend its own ``infer`` back."""

    def __init__(self, backend: Backend) -> None:
        self.batches: list[BatchTime] = []
        self._backend = backend
        self._infer = backend.infer
        backend.infer = self._timed  # type: ignore[method-assign]

    def _timed(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        if threading.current_thread().name != "edge-infer":
            return self._infer(batch)
        t = time.perf_counter()
        try:
            return self._infer(batch)
        finally:
            self.batches.append(BatchTime(t, time.perf_counter(), len(batch)))

    def close(self) -> None:
        with contextlib.suppress(AttributeError):
            del self._backend.infer


def bench_parts(cfg: EdgeConfig, parts: contextlib.ExitStack) -> tuple[LedArray, Camera, LoadedModel, Acquirer]:
    """The virtual bench's LED array, camera and model (closed by ``parts``) and an acquirer over them."""
    led = open_led_array(cfg.led.url)
    parts.callback(led.close)
    camera = open_bench_camera(cfg, led)
    parts.callback(camera.close)
    loaded = open_model(cfg.model, led.geometry())
    parts.callback(loaded.close)
    return led, camera, loaded, Acquirer(led, camera, loaded.spec.recipe, cfg.acquisition, cfg.camera.timeout_s)


def bench_config(model: BenchModel, max_batch: int, spool: str = ":memory:", queue_size: int = 256,
                 process_nice: int | None = None) -> EdgeConfig:
    """The virtual bench (thesis-43, 256² fields), the model, random loopback ports, the replay spool at
    ``spool`` (``""``: off), ``queue_size`` cells waiting for the model at most, ``[daemon] process_nice``
    (None: the daemon's default); otherwise the defaults (a status message a second: `status` summarises
    every metric window, ~4 ms of CPU each time)."""
    daemon: dict[str, Any] = {"id": "bench"} | ({"process_nice": process_nice} if process_nice is not None else {})
    m: dict[str, Any] = {"backend": model.backend, "precision": model.precision, "threads": model.threads,
                         "raw_input": model.raw_input}
    m |= {"bundle": model.bundle} if model.bundle else {"onnx": model.onnx, "patch_size": model.patch}
    return config_from_dict({
        "daemon": daemon, "led": {"url": "sim://thesis-43"},
        "virtual_bench": {"field_size_px": [256, 256], "seed": 1, "wbc_per_mm2": 600.0},
        "acquisition": {"mode": "host"},
        "batching": {"max_batch": max_batch, "max_queue_delay_ms": 20.0, "queue_size": queue_size,
                     "fixed_batch": model.fixed_batch, "fixed_batch_streams": model.fixed_batch_streams},
        "model": m, "publisher": {"endpoint": "tcp://127.0.0.1:*", "linger_ms": 0},
        "control": {"endpoint": "tcp://127.0.0.1:*"}, "spool": {"path": spool}})


def run(model: BenchModel, fields: int = 100, distinct: int = 6, max_batch: int = 8,
        batches: tuple[int, ...] = (), latency_fields: int | None = None, chunk_fields: int = 20,
        spool: str = ":memory:", fresh_stacks: bool = False, queue_size: int = 256,
        process_nice: int | None = None) -> dict[str, Any]:
    """Both phases and the backend alone; ``batches``: extra batch sizes for the backend table; ``spool``,
    ``queue_size`` and ``process_nice`` as :func:`bench_config`; ``fresh_stacks`` as :class:`CachedStacks`'
    ``fresh``.

    The throughput phase alternates ``chunk_fields`` fields through the pipeline with the backend alone
    on as many cells, so both see the same neighbours on a shared machine; the ratio is the median of
    the chunks' ratios, and CPU time per cell (every thread of this process) is reported for both. A
    chunk is submitted at once, as a scan of that many fields: ``chunk_fields = fields`` is one scan.
    """
    cfg = bench_config(model, max_batch, spool, queue_size, process_nice)
    with contextlib.ExitStack() as parts:
        led, camera, loaded, acquirer = bench_parts(cfg, parts)
        cache = [acquirer.capture(FieldRequest("bench", i, (0.0, 0.0))) for i in range(distinct)]
        source = CachedStacks(cache, fresh=fresh_stacks)
        pipe = build_pipeline(cfg, led=led, camera=camera, model=loaded, stack_source=source)
        clock = BatchClock(pipe.runner.backend)
        parts.callback(clock.close)
        try:
            pipe.start()
            patch = pipe.spec.patch_size
            jobs = [j for s in cache for j in process_stack(s, cfg.qc, cfg.detector, cfg.crops, patch).jobs]
            # the backend alone gets the inputs as the pipeline feeds them: camera counts where it normalises
            raw = pipe.runner.takes_raw
            x: NDArray[Any] = np.stack([j.raw.reshape(-1, patch, patch) if raw else normalise(j.raw, pipe.norm)
                                        for j in jobs])
            with _Receiver(pipe) as rx:
                res = _throughput(pipe, fields, rx, x, chunk_fields, source, clock)
                source.interval_s = res["wall_s"] / fields / LATENCY_LOAD
                res["latency"] = _latency(pipe, latency_fields or max(20, fields // 4), source.interval_s, rx)
            res["backend"] = {"name": pipe.runner.backend_name, "reason": pipe.runner.backend_reason,
                              "plugin_properties": pipe.runner.plugin_properties,
                              "raw_input": pipe.runner.takes_raw, "raw_input_note": pipe.runner.raw_input_note,
                              "model": f"{pipe.spec.name} {pipe.spec.version}", "patch": pipe.spec.patch_size,
                              "batches": [backend_alone(pipe.runner.backend, x, b, max(4 * b, 64))
                                          | _layers(pipe.runner.backend, x, b) for b in batches]}
        finally:
            pipe.shutdown()
    return res


class _Receiver:
    """A subscriber counting published cells on its own thread (a real client on loopback)."""

    def __init__(self, pipe: Pipeline) -> None:
        self.sub = Subscriber(pipe.publisher.endpoint, topics=("cell",))
        if not pipe.publisher.wait_for_subscribers(1, 5.0):
            self.sub.close()
            raise TimeoutError("the bench subscriber did not connect to the daemon within 5 s")
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="bench-sub")
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            if self.sub.receive(0.1) is not None:
                self.count += 1

    def wait_for(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.count < n and time.monotonic() < deadline:
            self._thread.join(0.05)

    def __enter__(self) -> _Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sub.close()


def _submit_and_wait(pipe: Pipeline, first: int, n: int) -> tuple[float, float, list[tuple[int, float]]]:
    """Submits fields ``first`` .. ``first + n - 1`` as one scan and waits until all are published; when it
    was submitted and done (``time.perf_counter``) and (fields finished since ``first``, RSS MB) every 0.5 s
    and at the end."""
    rss: list[tuple[int, float]] = []
    t0, done0 = time.perf_counter(), _fields_done(pipe)
    pipe.submit([FieldRequest("bench", i, (0.0, 0.0)) for i in range(first, first + n)])
    while not pipe.wait_idle(0.5):
        rss.append((_fields_done(pipe) - done0, rss_mb()))
    t1 = time.perf_counter()
    rss.append((n, rss_mb()))
    return t0, t1, rss


def _fields_done(pipe: Pipeline) -> int:
    counters = pipe.metrics.counters()
    return sum(int(counters.get(f"fields_{s}", 0)) for s in ("ok", "rejected", "failed"))


def _throughput(pipe: Pipeline, fields: int, rx: _Receiver, x: NDArray[Any], chunk_fields: int,
                source: CachedStacks, clock: BatchClock) -> dict[str, Any]:
    wall = alone_wall = cpu = alone_cpu = 0.0
    cells = alone_cells = 0
    rss: list[tuple[int, float]] = []  # (fields finished, RSS MB)
    per_chunk: list[tuple[int, float]] = []  # (fields done, RSS MB) at the end of each chunk
    ratios: list[float] = []
    threads: list[tuple[dict[str, dict[str, float]], int]] = []  # per thread: CPU, run-queue wait per cell
    alone_threads: list[tuple[dict[str, dict[str, float]], int]] = []
    scans: list[tuple[ScanPhases, float]] = []  # each chunk's phases and the backend alone's cells/s after it
    done = 0
    while done < fields:
        n = min(chunk_fields, fields - done)
        before, batches_before, k = _cells(pipe), len(pipe.metrics.values("batch_size")), len(clock.batches)
        s0, c0 = thread_times(), time.process_time()
        t0, t1, r = _submit_and_wait(pipe, done, n)
        s1, c1 = thread_times(), time.process_time()
        w = t1 - t0
        chunk_cells = _cells(pipe) - before
        sizes = pipe.metrics.values("batch_size")[batches_before:] or [1.0]
        alone = backend_alone(pipe.runner.backend, x, max(1, round(float(np.mean(sizes)))), max(chunk_cells, 1))
        alone_cpu += time.process_time() - c1
        if chunk_cells:
            threads.append((group_ms(s0, s1, chunk_cells), chunk_cells))
            alone_threads.append((group_ms(s1, thread_times(), alone["cells"]), alone["cells"]))
        rss += [(done + f, m) for f, m in r]
        done, wall, cpu, cells = done + n, wall + w, cpu + c1 - c0, cells + chunk_cells
        per_chunk.append((done, r[-1][1]))
        alone_wall += alone["wall_s"]
        alone_cells += alone["cells"]
        if chunk_cells:
            ratios.append((chunk_cells / w) / alone["cells_per_s"])
            scans.append((scan_phases(t0, source.last_capture_end, t1, clock.batches[k:]), alone["cells_per_s"]))
    status = pipe.status()
    rx.wait_for(status["counters"].get("cells_sent", 0), 5.0)
    e2e, inf = pipe.metrics.values("end_to_sent_ms"), pipe.metrics.values("inference_ms")
    warm = rss[len(rss) // 5][1]
    return {
        "fields": fields, "cells": cells, "cells_received": rx.count, "wall_s": round(wall, 3),
        "fields_per_s": round(fields / wall, 3), "cells_per_s": round(cells / wall, 2),
        "backend_alone_cells_per_s": round(alone_cells / alone_wall, 2),
        "ratio_pipeline_to_backend": round(float(np.median(ratios)), 3) if ratios else 0.0,
        "ratio_chunks": [round(r, 3) for r in ratios],
        "scan": scan_summary(scans, cells / max(fields, 1)),
        "cpu_ms_per_cell": {"pipeline": round(cpu / max(cells, 1) * 1e3, 2),
                            "backend_alone": round(alone_cpu / max(alone_cells, 1) * 1e3, 2)},
        "threads_ms_per_cell": {"pipeline": combine(threads), "backend_alone": combine(alone_threads)},
        "avg_batch_size": status["batching"]["avg_batch_size"], "batch_buffers": status["batching"]["buffers"],
        "stages_ms": {k: {"p50": v["p50"], "p99": v["p99"]} for k, v in status["latency_ms"].items()},
        "process_work_p50_ms": round(percentile(_process_work(pipe.metrics), 50), 2),
        "process_cpu_p50_ms": round(percentile(pipe.metrics.values("process_cpu_ms") or [0.0], 50), 2),
        "process_cpu_parts_p50_ms": {k: round(percentile(pipe.metrics.values(k) or [0.0], 50), 2)
                                     for k in PROCESS_CPU_PARTS},
        "saturated_capture_end_to_sent_p50_ms": round(percentile(e2e, 50), 2),
        "one_batch_inference_p50_ms": round(percentile(inf, 50), 2),
        "rss_mb": [round(r, 1) for _, r in rss], "rss_drift_after_warmup": round((rss[-1][1] - warm) / warm, 4),
        "rss_mb_per_chunk": [[f, round(r, 1)] for f, r in per_chunk],
        "rss_mb_at_fields": rss_at_fields(rss, fields),
        "rss_slope_mb_per_100_fields": rss_slope(per_chunk),
        "dropped": status["publisher"]["dropped"],
    }


#: Where :func:`rss_at_fields` reads the resident memory, as fractions of the run's fields.
RSS_AT = (0.1, 0.2, 0.5, 1.0)


def rss_at_fields(samples: list[tuple[int, float]], fields: int) -> dict[str, float]:
    """RSS (MB) when 10 %, 20 %, 50 % and all of the fields were finished (50 / 100 / 250 / 500 of 500): the
    first sample at or past each point (pure)."""
    out: dict[str, float] = {}
    for frac in RSS_AT:
        at = max(1, round(frac * fields))
        hit = next((r for f, r in samples if f >= at), samples[-1][1] if samples else 0.0)
        out[str(at)] = round(hit, 1)
    return out


def rss_slope(per_chunk: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of RSS (MB) over fields done, per 100 fields, after the first fifth of the run
    (warm-up: buffers, ONNX Runtime's arena, caches); None with fewer than three chunk ends left (the
    default two scans of 200 fields: run more fields or shorter chunks for a slope)."""
    if not per_chunk:
        return None
    start = per_chunk[-1][0] / 5
    pts = [(f, r) for f, r in per_chunk if f > start]
    if len(pts) < 3:
        return None
    f, r = np.array(pts, np.float64).T
    return round(float(np.polyfit(f, r, 1)[0]) * 100, 2)


def _cells(pipe: Pipeline) -> int:
    counters = pipe.metrics.counters()
    return int(counters.get("cells_sent", 0) + counters.get("cells_not_sent", 0))


def _process_work(m: Metrics) -> list[float]:
    """Per-field processing time proper (QC + detection + crops), without the wait in the stack queue."""
    parts = [m.values(k) for k in PROCESS_PARTS]
    return [sum(v) for v in zip(*parts, strict=True)] if all(parts) else [0.0]


def _latency(pipe: Pipeline, fields: int, interval_s: float, rx: _Receiver) -> dict[str, Any]:
    pipe.metrics = Metrics()  # the pipeline is idle: the loops pick the fresh one up for this phase
    before = rx.count
    t0, t1, _ = _submit_and_wait(pipe, 10_000, fields)
    wall = t1 - t0
    rx.wait_for(before + pipe.metrics.counters().get("cells_sent", 0), 5.0)
    e2e, inf = pipe.metrics.values("end_to_sent_ms"), pipe.metrics.values("inference_ms")
    budget = percentile(inf, 50) + 50.0
    # the batch each cell rode in (a batch of n counts n times): cells of larger fields wait for larger batches,
    # so the cells' p50 meets a longer inference than the batches' p50
    sizes = pipe.metrics.values("batch_size")
    per_cell = [t for t, n in zip(inf, sizes, strict=False) for _ in range(int(n))] or [0.0]
    return {"fields": fields, "interval_ms": round(interval_s * 1e3, 1), "wall_s": round(wall, 3),
            "capture_end_to_sent_p50_ms": round(percentile(e2e, 50), 2),
            "capture_end_to_sent_p99_ms": round(percentile(e2e, 99), 2),
            "one_batch_inference_p50_ms": round(percentile(inf, 50), 2), "latency_budget_ms": round(budget, 2),
            "cells_batch_inference_p50_ms": round(percentile(per_cell, 50), 2),
            "process_work_p50_ms": round(percentile(_process_work(pipe.metrics), 50), 2),
            "process_cpu_p50_ms": round(percentile(pipe.metrics.values("process_cpu_ms") or [0.0], 50), 2),
            "avg_batch_size": round(float(np.mean(pipe.metrics.values("batch_size") or [0.0])), 2),
            "stages_p50_ms": {k: v["p50"] for k, v in pipe.metrics.summary().items()},
            "meets_budget": percentile(e2e, 50) <= budget}


def _layers(backend: Backend, x: NDArray[Any], batch: int) -> dict[str, Any]:
    """Where a batch of ``batch`` of ``x``'s cells spends its time (``layers_ms_per_cell``), for a backend
    that can say (:class:`~edge.device.backends.ProfilesLayers`); else nothing."""
    if not isinstance(backend, ProfilesLayers):
        return {}
    return {"layers_ms_per_cell": layers_per_cell(backend, x[np.arange(batch) % len(x)])}


def backend_alone(backend: Backend, x: NDArray[Any], batch: int, cells: int) -> dict[str, Any]:
    """The backend alone on ``x`` ``(N, C, P, P)`` (float32 inputs or uint16 camera counts) in batches of
    ``batch`` until ``cells`` cells ran."""
    backend.infer(x[:batch] if len(x) >= batch else np.resize(x, (batch, *x.shape[1:])))  # warm-up
    times: list[float] = []
    n = 0
    t0 = time.perf_counter()
    while n < cells:
        idx = np.arange(n, n + batch) % len(x)
        xb = x[idx]
        t = time.perf_counter()
        with nvtx_range(f"backend/batch{batch}"):
            backend.infer(xb)
        times.append((time.perf_counter() - t) * 1e3)
        n += batch
    wall = time.perf_counter() - t0
    p50 = percentile(times, 50)
    return {"batch": batch, "batches": len(times), "cells": n, "wall_s": round(wall, 3),
            "ms_per_batch_p50": round(p50, 2), "ms_per_cell_p50": round(p50 / batch, 3),
            "cells_per_s": round(n / wall, 2)}

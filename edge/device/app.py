"""The running daemon: :class:`Pipeline`, its stage threads and queues (composed by
:func:`edge.device.build.build_pipeline`).

::

    control (ROUTER) ──► scan queue ──► [acquire] LED array + camera ──► stacks (bounded: 1 field)
      ──► [process] QC, detection, crops, inputs written into batch buffers ──► dynamic batcher (bounded)
      ──► [infer] backend, output check, fallback, styles ──► stained batches (bounded: 2)
      ──► [publish] fidelity, headers, spool ──► publisher (XPUB: cell, field, status, event)

One thread per stage (``edge-acquire``, ``edge-process``, ``edge-infer``, ``edge-publish``,
``edge-control``). The bounded stack queue lets field n+1 be captured while field n is processed;
the processing thread writes each cell's model input straight into its row of a batch buffer, so
the inference thread only runs the model (no stacking, no per-cell work: on two cores every
millisecond it spends around the model is a millisecond the model does not run); a full batcher
pushes back on processing, a full stained-batch queue on inference; batches are published in the
order they were stained; the publisher never blocks (it drops and counts). :meth:`Pipeline.shutdown`
stops acquiring, drains what was captured through the model, publishes it and closes the sockets.

Every stage loop is supervised: an unexpected exception (a bug, not a bad field: those are reported
per field) is logged, published as a ``stage_failed`` event, stops acquisition and releases the other
stages; :attr:`Pipeline.failed` is set and ``status`` says ``failed``. The entry point then shuts the
daemon down and exits non-zero, so systemd restarts it.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import numpy as np

from edge.device import headers, metrics
from edge.device.acquisition import StackSource
from edge.device.batching import Batch, DynamicBatcher
from edge.device.cameras import Camera
from edge.device.cell_jobs import CellJob, FieldResult, fill_input, process_stack, release_pixels
from edge.device.config import EdgeConfig
from edge.device.control import ControlServer
from edge.device.crops import Normalisation
from edge.device.errors import AcquisitionError, ControlError, EdgeError, OutputCheckError
from edge.device.fidelity import Fidelity, score_batch
from edge.device.fieldstain import FieldStainer
from edge.device.flash import ModelUpdater, run_checked
from edge.device.inference import ModelRunner
from edge.device.model import ModelSpec
from edge.device.priority import lower_thread_priority
from edge.device.publisher import Publisher, rgb8_hwc
from edge.device.security import ServerSecurity
from edge.device.stack import FieldRequest
from firmware_bridge.client import LedArray

log = logging.getLogger(__name__)
_END = object()


class FieldAnnotator(Protocol):
    """Adds keys to a processed field's jobs and header (the virtual bench's stained truth)."""

    def annotate(self, result: FieldResult, patch: int, border: str) -> None: ...


@dataclass
class _FieldTrack:
    result: FieldResult
    remaining: int
    sent: int = 0
    lost: int = 0
    suspect: int = 0
    t_last: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class _Stained:
    """A batch on its way from the inference thread to the publishing thread (``y`` None: not stained)."""

    jobs: list[CellJob]
    y: Any  # (B, 3, P, P) float32, or None when the output check rejected the batch
    styled: dict[str, Any]
    t0: float
    t1: float
    runner: ModelRunner  # the model that stained it (a flash's health window counts its batches)
    spec: ModelSpec
    model: dict[str, Any]  # the headers' ``model``, as it was when the batch ran
    error: str = ""


class Pipeline:
    """The running daemon. Build it with :func:`edge.device.build.build_pipeline`."""

    #: The control server answering on ``[control] endpoint``; :func:`build_pipeline` attaches it.
    control: ControlServer
    #: CURVE keys, ZAP handler and rights when ``[security]`` is configured (closed with ``owned``).
    security: ServerSecurity | None = None
    #: Called from the acquisition loop on every pass (at least every 0.5 s) while no stage failed:
    #: systemd's watchdog heartbeat (:class:`edge.device.sdnotify.Heartbeat`); None = no watchdog.
    heartbeat: Callable[[], None] | None = None
    #: ``flash`` / ``rollback`` / ``models`` (:mod:`edge.device.flash`); attached by
    #: :func:`~edge.device.build.build_pipeline`.
    updater: ModelUpdater | None = None

    def __init__(self, config: EdgeConfig, led: LedArray, camera: Camera, source: StackSource,
                 runner: ModelRunner, spec: ModelSpec, norm: Normalisation, publisher: Publisher,
                 batcher: DynamicBatcher[CellJob], owned: list[Any], truth: FieldAnnotator | None = None) -> None:
        self.config = config
        self.led = led
        self.camera = camera
        self.source = source
        self.runner = runner
        runner.on_degraded = self._on_degraded
        self.spec = spec
        self.norm = norm
        self.publisher = publisher
        self.truth = truth
        self.field_stainer: FieldStainer | None = None  # [field_stain] enabled: whole-field stain per field
        self.batcher = batcher
        self.metrics = metrics.Metrics()
        self._owned = owned
        self._scan_q: queue.Queue[FieldRequest | None] = queue.Queue()
        self._stacks: queue.Queue[Any] = queue.Queue(maxsize=config.acquisition.queue_fields)
        self._stained: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._tracks: dict[tuple[str, int, int], _FieldTrack] = {}
        self._cond = threading.Condition()
        self._pending = 0
        self._scan_id = 0
        self._stop = threading.Event()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._closed = False
        #: Held by the inference thread for a whole batch: a flash swaps ``runner`` and ``spec`` between batches.
        self.model_lock = threading.Lock()
        #: Set when a stage thread died; :attr:`failure` says which and why.
        self.failed = threading.Event()
        self.failure = ""

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Pipeline:
        for name, fn in (("edge-acquire", self._acquire_loop), ("edge-process", self._process_loop),
                         ("edge-infer", self._infer_loop), ("edge-publish", self._publish_loop),
                         ("edge-control", self._control_loop)):
            t = threading.Thread(target=self._supervise, args=(name, fn), name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self._event("started", f"daemon {self.config.daemon.id} running model {self.spec.name} {self.spec.version}")
        log.info("pipeline started: PUB %s, control %s, model %s %s on %s", self.publisher.endpoint,
                 self.control.endpoint, self.spec.name, self.spec.version,
                 self.runner.backend_name)
        return self

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop acquiring, drain captured fields through the model, publish, close sockets (linger)."""
        if self._closed:
            return
        self._closed = True
        dropped = self.stop_scan()
        self._stopping = True
        self._scan_q.put(None)
        for t in self._threads[:4]:
            t.join(timeout)
        self._stop.set()
        for t in self._threads[4:]:
            t.join(timeout)
        self._event("stopped", f"daemon stopped; {dropped} queued field(s) not scanned")
        self.publisher.publish("status", self.status())
        self.control.close()
        if self.updater is not None:  # an unfinished flash is rolled back first
            self.updater.close()
        self.runner.close()
        for thing in reversed(self._owned):
            try:
                thing.close()
            except Exception:  # one failing close must not leak the rest
                log.exception("closing %r failed", thing)

    def _supervise(self, name: str, loop: Callable[[], None]) -> None:
        """Run one stage loop; if it dies, stop the daemon instead of leaving it 'scanning' forever."""
        try:
            loop()
        except Exception as exc:  # any bug in a stage: the daemon cannot go on, but must say so and stop
            self.failure = f"stage {name} died: {type(exc).__name__}: {exc}"
            log.critical("%s; shutting down", self.failure, exc_info=True)
            self.failed.set()
            self._release_stages()
            try:
                self._event("stage_failed", f"{self.failure}; the daemon shuts down (exit status 1)")
            except Exception:  # the publisher itself may be what failed
                log.exception("could not publish the stage_failed event")

    def _release_stages(self) -> None:
        """After a stage died: stop acquiring and unblock every stage waiting on a dead neighbour."""
        self._stopping = True
        self.stop_scan()
        self._scan_q.put(None)
        self.batcher.close()  # a blocked processing put returns; inference drains and ends
        # processing ends even if acquisition died (when full, processing is alive and gets acquisition's own)
        with contextlib.suppress(queue.Full):
            self._stacks.put_nowait(_END)

    def _put_stack(self, item: object) -> None:
        """Hand a stack to processing; gives up when a stage died (processing may be gone)."""
        self._put(self._stacks, item)

    def _put(self, q: queue.Queue[Any], item: object) -> None:
        """Put ``item`` on a bounded stage queue; gives up when a stage died (the consumer may be gone)."""
        while not self.failed.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    # -- scanning API (control handlers call these) ---------------------------------------------
    def submit(self, requests: list[FieldRequest]) -> int:
        """Queue fields for scanning; returns the scan id they got."""
        if self._stopping:
            raise ControlError("busy", "the daemon is shutting down")
        with self._cond:
            self._scan_id += 1
            scan_id = self._scan_id
            self._pending += len(requests)
        for r in requests:
            self._scan_q.put(FieldRequest(r.slide_id, r.field_id, r.stage_um, scan_id))
        return scan_id

    def stop_scan(self) -> int:
        """Drop fields not yet captured; returns how many."""
        n, end = 0, False
        while True:
            try:
                item = self._scan_q.get_nowait()
            except queue.Empty:
                break
            n += item is not None
            end |= item is None
        if end:  # a `stop` request racing shutdown must not swallow the acquisition thread's end marker
            self._scan_q.put(None)
        self._field_finished(n)
        return n

    def wait_idle(self, timeout: float) -> bool:
        """Block until every submitted field is published or reported (True) or ``timeout`` s pass."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def _field_finished(self, n: int = 1) -> None:
        with self._cond:
            self._pending -= n
            self._cond.notify_all()

    # -- stage loops ------------------------------------------------------------------------------
    def _acquire_loop(self) -> None:
        while True:
            if self.heartbeat is not None and not self.failed.is_set():
                self.heartbeat()  # systemd's watchdog: this loop is alive (edge.device.sdnotify)
            try:
                req = self._scan_q.get(timeout=0.5)
            except queue.Empty:
                continue
            if req is None:
                break
            try:
                stack = self.source.capture(req)
            except AcquisitionError as exc:
                log.error("%s", exc)
                self.metrics.count("fields_failed")
                self._event("field_failed", str(exc), req)
                self.publisher.publish("field", headers.failed_field_header(req, str(exc)))
                self._field_finished()
                continue
            self.metrics.observe("capture_ms", (stack.t_capture_end - stack.t_capture_start) * 1e3)
            self._put_stack(stack)
        self._put_stack(_END)

    def _process_loop(self) -> None:
        cfg = self.config
        lower_thread_priority(cfg.daemon.process_nice)  # the model's thread gets a core first
        try:
            while True:
                stack = self._stacks.get()
                if stack is _END:
                    break
                result = process_stack(stack, cfg.qc, cfg.detector, cfg.crops, self.spec.patch_size)
                for k, v in result.timings_ms.items():
                    self.metrics.observe(k, v)
                self.metrics.observe("process_ms", (result.t_processed - stack.t_capture_end) * 1e3)
                if self.truth is not None:  # virtual bench: after t_processed, before t_queued
                    t0 = time.perf_counter()
                    self.truth.annotate(result, self.spec.patch_size, cfg.crops.border)
                    self.metrics.observe("truth_ms", (time.perf_counter() - t0) * 1e3)
                key = _key(stack.request)
                with self._cond:
                    self._tracks[key] = _FieldTrack(result, len(result.jobs))
                if not result.jobs:
                    self._finish_field(key)
                c0 = time.thread_time()
                for job in result.jobs:
                    job.t_queued = time.time()
                    self.batcher.put(job, partial(fill_input, job, self.norm))  # input straight into its batch row
                if result.jobs:
                    self.metrics.observe("fill_cpu_ms", (time.thread_time() - c0) * 1e3)
                if self.field_stainer is None:  # the inputs are in the batch buffers: the 17 MB stack can go
                    release_pixels(result)
                del stack, result  # not kept alive while waiting for the next stack
                if self._stacks.empty():  # no field behind this one: its cells need not wait for company
                    self.batcher.flush()
        finally:
            self.batcher.close()

    def _infer_loop(self) -> None:
        """Only the model runs here; the batch goes on to the publishing thread, in order."""
        try:
            while True:
                batch = self.batcher.get_batch()
                if batch is None:
                    break
                with self.model_lock:  # a flash switches models between two batches, never within one
                    stained = self._infer_batch(batch)
                self._put(self._stained, stained)
        finally:
            self._put(self._stained, _END)  # after a stage died, publishing ends on its own once drained

    def _infer_batch(self, batch: Batch[CellJob]) -> _Stained:
        t0 = time.time()
        try:
            y = run_checked(self.runner, batch.x, self.updater, lambda: self.runner)
        except OutputCheckError as exc:
            return _Stained(batch.items, None, {}, t0, time.time(), self.runner, self.spec, {}, str(exc))
        finally:
            self.batcher.release(batch)  # the inputs are no longer needed (the outputs are the backend's own)
        t1 = time.time()
        styled = self.runner.stylise(y) if self.runner.styles else {}
        if styled:
            self.metrics.observe("style_ms", (time.time() - t1) * 1e3)
        r = self.runner
        model = {"name": self.spec.name, "version": self.spec.version, "backend": r.backend_name,
                 "degraded": r.degraded, "styles": list(r.styles)}
        return _Stained(batch.items, y, styled, t0, t1, r, self.spec, model)

    def _publish_loop(self) -> None:
        while True:
            try:
                item = self._stained.get(timeout=0.5)
            except queue.Empty:
                if self.failed.is_set():
                    break
                continue
            if item is _END:
                break
            self._publish_batch(item)

    def _publish_batch(self, b: _Stained) -> None:
        """Fidelity, headers and publishing of one stained batch (or the report of a rejected one)."""
        if b.y is None:
            self.metrics.count("cells_lost_model", len(b.jobs))
            self._event("cells_dropped", f"{len(b.jobs)} cell(s) not published: {b.error}")
            for job in b.jobs:
                self._cell_done(job, sent=False, suspect=False)
            return
        c0 = time.thread_time()
        self.metrics.observe("inference_ms", (b.t1 - b.t0) * 1e3)
        self.metrics.observe("batch_size", len(b.jobs))
        recipe = {"id": b.spec.recipe.id, "hash": b.spec.recipe.hash}
        fids: list[Fidelity | None] = (  # the whole batch at once: the same scores as cell by cell
            list(score_batch(np.stack([j.scatter for j in b.jobs]), b.y, self.config.fidelity))
            if self.config.fidelity.enabled else [None] * len(b.jobs))
        stained = rgb8_hwc(b.y)  # (B, P, P, 3): each cell's row is a contiguous payload
        styled = {f"stained:{name}": rgb8_hwc(z) for name, z in b.styled.items()}
        with self._cond:
            results = [self._tracks[job.key].result for job in b.jobs]
        messages = [self._cell_message(job, r, b, recipe, fid,
                                       {"stained": stained[i]} | {k: z[i] for k, z in styled.items()})
                    for i, (job, r, fid) in enumerate(zip(b.jobs, results, fids, strict=True))]
        sent = self.publisher.publish_many("cell", messages)  # the batch spooled in one transaction, then sent
        now = time.time()
        suspect = 0
        for job, r, fid, ok in zip(b.jobs, results, fids, sent, strict=True):
            self.metrics.observe("end_to_sent_ms", (now - r.stack.t_capture_end) * 1e3)
            self.metrics.observe("queue_ms", (b.t0 - job.t_queued) * 1e3)
            flagged = bool(fid and fid.suspect)
            suspect += flagged
            self._cell_done(job, sent=ok, suspect=flagged)
        if self.updater is not None:
            self.updater.observe(b.runner, len(b.jobs), suspect, (b.t1 - b.t0) * 1e3)
        self.metrics.observe("publish_cpu_ms", (time.thread_time() - c0) * 1e3)

    def _control_loop(self) -> None:  # keeps answering after a stage failed: `status` says why
        period = self.config.daemon.status_interval_s
        next_status = time.monotonic()
        while not self._stop.is_set():
            self.control.serve_once(50)
            if time.monotonic() >= next_status:
                self.publisher.publish("status", self.status())
                next_status = time.monotonic() + period

    # -- publishing ---------------------------------------------------------------------------------
    @staticmethod
    def _cell_message(job: CellJob, result: FieldResult, b: _Stained, recipe: dict[str, Any], fid: Fidelity | None,
                      payloads: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The header and payloads of one stained cell (``payloads``: its stained images)."""
        header = headers.cell_header(job, result, b.model, recipe, b.spec.patch_size, fid, b.t0, b.t1)
        if job.unstained is not None:
            payloads["unstained"] = job.unstained
        payloads.update(job.payloads)
        return header, payloads

    def _cell_done(self, job: CellJob, sent: bool, suspect: bool) -> None:
        with self._cond:
            track = self._tracks[job.key]
            track.remaining -= 1
            track.sent += sent
            track.lost += not sent
            track.suspect += suspect
            done = track.remaining == 0
        self.metrics.count("cells_sent" if sent else "cells_not_sent")
        if done:
            self._finish_field(job.key)

    def _finish_field(self, key: tuple[str, int, int]) -> None:
        with self._cond:
            track = self._tracks.pop(key)
        r = track.result
        status = "rejected" if r.qc.rejected else "ok"
        self.metrics.count(f"fields_{status}")
        header = headers.field_header(r, status, track.sent, track.lost, track.suspect, time.time())
        payloads = self._stain_field(r, header) if self.field_stainer is not None and status == "ok" else None
        self.publisher.publish("field", header, payloads)
        self._field_finished()

    def _stain_field(self, r: FieldResult, header: dict[str, Any]) -> dict[str, Any] | None:
        """The whole-field stain as payload ``stained``; its parameters (or the error) go to ``header``."""
        assert self.field_stainer is not None  # checked by the caller
        try:
            stained, info = self.field_stainer.stain(r.stack.pixels)
        except EdgeError as exc:
            log.error("whole-field stain of field %s failed: %s", r.stack.request.field_id, exc)
            self.metrics.count("field_stain_failed")
            header["stained_field"] = {"error": str(exc)}
            return None
        self.metrics.observe("field_stain_ms", info["ms"])
        header["stained_field"] = info
        return {"stained": stained}

    def _event(self, name: str, message: str, req: FieldRequest | None = None) -> None:
        self.publisher.publish("event", headers.event_header(name, message, req))

    def _on_degraded(self, problem: str) -> None:
        self._event("model_degraded", problem)

    # -- control ----------------------------------------------------------------------------------
    def _counters(self) -> dict[str, int]:
        counters = self.metrics.counters()
        if self.publisher.spool is not None:  # published, but not replayable (disk full, bound, locked file)
            counters["cells_unspooled"] = self.publisher.spool.unspooled["cell"]
        return counters

    def status(self) -> dict[str, Any]:
        with self._cond:
            pending = self._pending
        state = "failed" if self.failed.is_set() else "stopping" if self._stopping else (
            "scanning" if pending else "idle")
        return {
            "state": state, **({"failure": self.failure} if self.failure else {}),
            "fields_pending": pending, "counters": self._counters(), "latency_ms": self.metrics.summary(),
            "batching": self.batcher.stats.to_dict() | {"padded_slots": self.runner.padded_slots},
            "publisher": self.publisher.stats(),
            "spool": self.publisher.spool.stats() if self.publisher.spool else {"path": "", "available": False},
            "model": {"name": self.spec.name, "version": self.spec.version, "backend": self.runner.backend_name,
                      "backend_reason": self.runner.backend_reason,
                      "plugin_properties": self.runner.plugin_properties,
                      "raw_input": self.runner.takes_raw, "raw_input_note": self.runner.raw_input_note,
                      "degraded": self.runner.degraded, "degraded_reason": self.runner.degraded_reason,
                      "styles": list(self.runner.styles), "style_failures": dict(self.runner.style_failures),
                      "recipe": self.spec.recipe.id, "recipe_hash": self.spec.recipe.hash},
            "queues": self.queue_depths(), "calibration": self._calibration_info(),
            "rss_mb": metrics.rss_mb(), "uptime_s": self.metrics.uptime_s(),
            "model_update": self.updater.status() if self.updater is not None else {"state": "idle"},
            "security": {"curve": self.security is not None,
                         "refused": self.security.refused if self.security is not None else 0},
        }

    def queue_depths(self) -> dict[str, int]:
        """Items waiting between the stages: fields to capture, stacks to process, cells to stain, stained
        batches to publish."""
        return {"scan": self._scan_q.qsize(), "stacks": self._stacks.qsize(), "cells": len(self.batcher),
                "stained_batches": self._stained.qsize()}

    def _calibration_info(self) -> dict[str, Any]:
        cal = getattr(self.source, "calibration", None)
        if cal is None:
            return {"path": "", "id": ""}
        return {"path": self.config.calibration.path, "id": cal.id, "created": cal.created,
                "flat_field": bool(cal.flat_field)}


def _key(req: FieldRequest) -> tuple[str, int, int]:
    return (req.slide_id, req.field_id, req.scan_id)

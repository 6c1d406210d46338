"""The daemon as a service: warm-up, systemd readiness/status/watchdog and the metrics endpoint.

:class:`Service` wraps a built :class:`~edge.device.app.Pipeline` for ``stainless-edge run``::

    service = Service(pipeline, Notifier()).start()   # warm-up, heartbeat attached, stages started, READY=1
    while ...: service.tick()                          # STATUS= line (and metrics) every status interval
    service.stop()                                     # STOPPING=1, drain and shut down

Outside systemd (no ``NOTIFY_SOCKET``) the notifier does nothing; without ``[metrics] port`` no
HTTP server is started (:func:`open_exporter`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from core.config import ConfigError
from edge.device.opsconfig import MetricsConfig
from edge.device.sdnotify import Heartbeat, Notifier

if TYPE_CHECKING:
    from edge.device.app import Pipeline

log = logging.getLogger(__name__)


def warm_up(pipe: Pipeline) -> float:
    """One zero batch of every batch size the runner uses through the backend (engines, kernels and
    allocations are made now, not on the first cells); returns the time taken (ms)."""
    spec = pipe.spec
    t0 = time.perf_counter()
    for size in sorted(set(pipe.runner.profile_sizes or (1,))):
        pipe.runner.backend.infer(np.zeros((size, spec.in_channels, spec.patch_size, spec.patch_size), np.float32))
    return (time.perf_counter() - t0) * 1e3


def status_line(status: dict[str, Any]) -> str:
    """systemd's one-line ``STATUS=``: state, cells sent, fields pending, model and backend."""
    c, m = status["counters"], status["model"]
    line = (f"{status['state']}: {c.get('cells_sent', 0)} cells sent, {status['fields_pending']} field(s) pending; "
            f"model {m['name']} {m['version']} on {m['backend']}{' (degraded)' if m['degraded'] else ''}")
    return line + (f"; {status['failure']}" if status.get("failure") else "")


def open_exporter(config: MetricsConfig, pipe: Pipeline) -> Any:
    """The Prometheus endpoint of ``[metrics]`` (:class:`edge.device.prom.Exporter`), or None when off."""
    if not config.enabled:
        return None
    try:
        from edge.device.prom import Exporter
    except ImportError as exc:
        raise ConfigError(f"metrics.enabled = true needs prometheus-client, which is not installed ({exc}); "
                          "pip install 'stainless[metrics]' or set metrics.enabled = false") from exc
    try:
        return Exporter(config, pipe.status, pipe.metrics)
    except OSError as exc:
        raise ConfigError(f"metrics: cannot listen on {config.address}:{config.port} ({exc.strerror}); "
                          "choose another metrics.port") from exc


class Service:
    """A pipeline run as a (systemd) service. ``exporter``: anything with ``close()`` (the Prometheus
    endpoint of :func:`open_exporter`), closed after the pipeline."""

    def __init__(self, pipe: Pipeline, notifier: Notifier | None = None, exporter: Any = None) -> None:
        self.pipe = pipe
        self.notifier = notifier or Notifier({})
        self.exporter = exporter
        self.heartbeat = Heartbeat(self.notifier)
        self.warm_up_ms = 0.0
        self._next_tick = 0.0

    def start(self) -> Service:
        """Warm up, start the stages and tell systemd ``READY=1``; on failure everything is closed."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Service:
        if self.heartbeat.enabled:
            self.pipe.heartbeat = self.heartbeat
            log.info("systemd watchdog: heartbeat every %.3g s from the acquisition loop", self.heartbeat.interval_s)
        self.notifier.status("warming up")
        self.warm_up_ms = warm_up(self.pipe)  # before the stages start: the backend is not shared yet
        log.info("warm-up: %.1f ms", self.warm_up_ms)
        self.pipe.start()
        self.notifier.ready(status=status_line(self.pipe.status()))
        return self

    def tick(self) -> None:
        """At most once per ``daemon.status_interval_s``: refresh ``STATUS=``."""
        now = time.monotonic()
        if now < self._next_tick:
            return
        self._next_tick = now + self.pipe.config.daemon.status_interval_s
        self.notifier.status(status_line(self.pipe.status()))

    def stop(self) -> None:
        self.notifier.stopping(status="stopping: draining captured fields")
        try:
            self.pipe.shutdown()
        finally:
            if self.exporter is not None:
                self.exporter.close()
            self.notifier.close()

"""Prometheus metrics of the running daemon (``[metrics]``; needs the ``metrics`` extra: ``prometheus-client``).

Served over HTTP at ``http://ADDRESS:PORT/metrics`` from a thread of its own. Everything the
``status`` topic counts is read from :meth:`Pipeline.status <edge.device.app.Pipeline.status>` at
scrape time (so a scrape never disagrees with ``status``); latencies go into histograms as they
are observed. Names (all prefixed ``stainless_``):

* ``<counter>_total`` — every status counter (``cells_sent_total``, ``fields_ok_total``, ...);
* ``stage_latency_seconds{stage}`` — histogram per stage (``capture``, ``process``, ``queue``,
  ``inference``, ``end_to_sent``, ...: the ``*_ms`` observations of :mod:`edge.device.metrics`);
  ``batch_size`` — histogram of inference batch sizes;
* ``queue_depth{queue}`` (``scan``, ``stacks``, ``cells``, ``stained_batches``), ``fields_pending``;
* ``published_total{topic}``, ``dropped_total{topic}`` (send high-water mark), ``subscriptions``;
* ``spool_bytes``, ``spool_available``, ``spool_unspooled_total{topic}``;
* ``model_info{name, version, backend, recipe}`` (1), ``model_degraded``, ``state{state}`` (1 for the
  current one), ``security_refused_total``, ``resident_memory_bytes``, ``uptime_seconds``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric

from edge.device.metrics import Metrics
from edge.device.opsconfig import MetricsConfig

log = logging.getLogger(__name__)

PREFIX = "stainless_"
#: Stage latency buckets (s): 1 ms .. 60 s.
LATENCY_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
STATES = ("idle", "scanning", "stopping", "failed")


def _name(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", text)


class StatusCollector:
    """A custom collector: the figures of one ``status()`` call per scrape."""

    def __init__(self, status: Callable[[], dict[str, Any]]) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        st = self._status()
        for name, value in sorted(st["counters"].items()):
            yield CounterMetricFamily(f"{PREFIX}{_name(name)}", f"status counter {name}", value=value)
        yield _gauge("fields_pending", "fields submitted and not yet published or reported", st["fields_pending"])
        yield _labelled(GaugeMetricFamily, "queue_depth", "items waiting between stages", "queue", st["queues"])
        pub = st["publisher"]
        yield _labelled(CounterMetricFamily, "published", "messages sent per topic", "topic", pub["sent"])
        yield _labelled(CounterMetricFamily, "dropped", "messages dropped at the send high-water mark", "topic",
                        pub["dropped"])
        yield _gauge("subscriptions", "topic subscriptions on the PUB socket", pub["subscriptions"])
        spool = st["spool"]
        yield _gauge("spool_available", "1 when the replay spool is writable", int(bool(spool.get("available"))))
        yield _gauge("spool_bytes", "bytes held in the replay spool", spool.get("bytes", 0))
        yield _labelled(CounterMetricFamily, "spool_unspooled", "published messages the spool could not keep",
                        "topic", spool.get("unspooled", {}))
        m = st["model"]
        info = InfoMetricFamily(f"{PREFIX}model", "the model running and its backend")
        info.add_metric([], {"name": m["name"], "version": m["version"], "backend": m["backend"],
                             "recipe": m["recipe"]})
        yield info
        yield _gauge("model_degraded", "1 when the model fell back or its outputs were rejected", int(m["degraded"]))
        state = GaugeMetricFamily(f"{PREFIX}state", "the daemon's state (1 for the current one)", labels=["state"])
        for s in STATES:
            state.add_metric([s], int(st["state"] == s))
        yield state
        yield CounterMetricFamily(f"{PREFIX}security_refused", "requests refused by CURVE/ZAP or rights",
                                  value=st["security"]["refused"])
        yield _gauge("resident_memory_bytes", "resident set size", st["rss_mb"] * 2**20)
        yield _gauge("uptime_seconds", "time since the daemon's metrics started", st["uptime_s"])


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}{name}", doc, value=value)


def _labelled(kind: Any, name: str, doc: str, label: str, values: dict[str, Any]) -> Metric:
    fam = kind(f"{PREFIX}{name}", doc, labels=[label])
    for key, value in sorted(values.items()):
        fam.add_metric([str(key)], value)
    return fam


class Exporter:
    """The HTTP endpoint; histograms fed by ``metrics`` (``Metrics.on_observe``), the rest by ``status``."""

    def __init__(self, config: MetricsConfig, status: Callable[[], dict[str, Any]], metrics: Metrics) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(StatusCollector(status))
        self.latency = Histogram(f"{PREFIX}stage_latency_seconds", "per-stage latency", ["stage"],
                                 registry=self.registry, buckets=LATENCY_BUCKETS_S)
        self.batch = Histogram(f"{PREFIX}batch_size", "inference batch sizes", registry=self.registry,
                               buckets=BATCH_BUCKETS)
        self.server, self._thread = start_http_server(config.port, config.address, registry=self.registry)
        self.port = int(self.server.server_port)
        self._metrics = metrics
        metrics.on_observe = self.observe
        log.info("Prometheus metrics on http://%s:%d/metrics", config.address, self.port)

    def observe(self, name: str, value: float) -> None:
        if name == "batch_size":
            self.batch.observe(value)
        elif name.endswith("_ms"):
            self.latency.labels(stage=name[:-3]).observe(value / 1e3)

    def close(self) -> None:
        self._metrics.on_observe = None
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()

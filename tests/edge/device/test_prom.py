"""The Prometheus endpoint, scraped over HTTP on a free port while the daemon scans the virtual bench."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import pytest

pytest.importorskip("prometheus_client", reason="the [metrics] extra (prometheus-client) is not installed")

from prometheus_client.parser import text_string_to_metric_families

from core.config import ConfigError
from edge.bench.daemon import build_bench_pipeline
from edge.device.config import EdgeConfig
from edge.device.opsconfig import MetricsConfig
from edge.device.service import open_exporter
from edge.device.stack import FieldRequest


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """``{sample name: {sorted labels: value}}`` of one scrape."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5.0) as r:
        text = r.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def one(samples: dict[str, Any], name: str, **labels: str) -> float:
    return float(samples[name][tuple(sorted(labels.items()))])


def test_scrape_matches_status(tiny_config: EdgeConfig) -> None:
    pipe = build_bench_pipeline(tiny_config)
    exporter = open_exporter(MetricsConfig(enabled=True, port=0), pipe)
    try:
        pipe.start()
        before = scrape(exporter.port)
        assert one(before, "stainless_state", state="idle") == 1 and one(before, "stainless_fields_pending") == 0
        pipe.submit([FieldRequest("s", i, (100.0 * i, 0.0)) for i in range(2)])
        assert pipe.wait_idle(60.0)
        status = pipe.status()
        got = scrape(exporter.port)
    finally:
        pipe.shutdown()
        exporter.close()
    counters = status["counters"]
    assert counters["cells_sent"] >= 1
    for name, value in counters.items():
        assert one(got, f"stainless_{name}_total") == value, name
    n_inference = one(got, "stainless_stage_latency_seconds_count", stage="inference")
    assert n_inference == status["latency_ms"]["inference_ms"]["n"] >= 1
    assert one(got, "stainless_stage_latency_seconds_count", stage="capture") == 2
    assert one(got, "stainless_batch_size_sum") == counters["cells_sent"]  # every cell was in one batch
    assert one(got, "stainless_queue_depth", queue="cells") == 0 and one(got, "stainless_fields_pending") == 0
    assert one(got, "stainless_published_total", topic="cell") == status["publisher"]["sent"]["cell"]
    assert one(got, "stainless_spool_bytes") == status["spool"]["bytes"] > 0
    info = next(k for k in got["stainless_model_info"])
    assert dict(info) == {"name": "dev-model", "version": "0.0.0", "backend": status["model"]["backend"],
                          "recipe": "full-nohe"}
    assert one(got, "stainless_resident_memory_bytes") > 0
    with pytest.raises(urllib.error.URLError):  # closed: the port no longer answers
        scrape(exporter.port)


def test_off_by_default_and_a_busy_port_is_a_clear_error(tiny_config: EdgeConfig) -> None:
    pipe = build_bench_pipeline(tiny_config)
    first = open_exporter(MetricsConfig(enabled=True, port=0), pipe)
    try:
        assert open_exporter(tiny_config.metrics, pipe) is None
        with pytest.raises(ConfigError, match=r"choose another metrics\.port"):
            open_exporter(MetricsConfig(enabled=True, port=first.port), pipe)
    finally:
        first.close()
        pipe.shutdown()

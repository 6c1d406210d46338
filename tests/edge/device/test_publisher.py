"""Publisher and subscriber over real loopback sockets: drops are counted, gaps are seen."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from edge.client import StainedCell, Subscriber
from edge.device import wire
from edge.device.opsconfig import PublisherConfig, SpoolConfig
from edge.device.publisher import Publisher
from edge.device.replay import replay
from edge.device.spool import Spool


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    c: zmq.Context[Any] = zmq.Context()
    yield c
    c.term()


def test_subscriber_that_never_reads_does_not_block_and_drops_are_counted(ctx: zmq.Context[Any]) -> None:
    pub = Publisher(ctx, PublisherConfig(endpoint="tcp://127.0.0.1:*", send_hwm=4, linger_ms=0), "d")
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, 4)
    sub.setsockopt(zmq.RCVBUF, 4096)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(pub.endpoint)
    try:
        assert pub.wait_for_subscribers(1, 5.0)
        big = np.zeros((64, 64, 3), np.uint8)
        results = [pub.publish("cell", {"cell_id": str(i)}, {"stained": big}) for i in range(2000)]
        assert not all(results)  # the never-reading subscriber filled its queues
        stats = pub.stats()
        assert stats["dropped"]["cell"] == results.count(False) and stats["sent"]["cell"] == results.count(True)
    finally:
        sub.close(0)
        pub.close()


def test_subscriber_reports_sequence_gaps(ctx: zmq.Context[Any]) -> None:
    pub = Publisher(ctx, PublisherConfig(endpoint="tcp://127.0.0.1:*", linger_ms=0), "d")
    with Subscriber(pub.endpoint, topics=("cell",), context=ctx) as sub:
        assert pub.wait_for_subscribers(1, 5.0)
        img = np.zeros((4, 4, 3), np.uint8)
        pub.publish("cell", {"cell_id": "a"}, {"stained": img})
        pub._seq["cell"] += 3  # three messages lost on the way
        pub.publish("cell", {"cell_id": "b"}, {"stained": img})
        got = [sub.receive(5.0), sub.receive(5.0)]
        assert all(isinstance(m, StainedCell) for m in got)
        assert sub.gaps["cell"] == 3
    pub.close()


def test_an_endpoint_in_use_is_a_config_error_and_leaves_no_socket(ctx: zmq.Context[Any]) -> None:
    from core.config import ConfigError

    first = Publisher(ctx, PublisherConfig(endpoint="tcp://127.0.0.1:*", linger_ms=0), "d")
    try:
        with pytest.raises(ConfigError, match=r"\[publisher\] endpoint .* cannot bind"):
            Publisher(ctx, PublisherConfig(endpoint=first.endpoint, linger_ms=0), "d2")
    finally:
        first.close()  # the fixture's ctx.term() would block on a socket left open


def test_rgb8_of_a_batch_is_each_cells_rgb8() -> None:
    """The publishing thread converts a stained batch at once; each row is the cell's own conversion."""
    from edge.device.publisher import rgb8_hwc

    y = np.random.default_rng(3).uniform(-0.1, 1.1, (5, 3, 16, 16)).astype(np.float32)
    batch = rgb8_hwc(y)
    assert batch.shape == (5, 16, 16, 3) and batch.dtype == np.uint8
    for i in range(5):
        assert batch[i].flags.c_contiguous
        np.testing.assert_array_equal(batch[i], rgb8_hwc(y[i]))


def test_a_crash_between_store_and_send_loses_nothing_and_replay_sends_each_once(ctx: zmq.Context[Any],
                                                                                 tmp_path: Path) -> None:
    """A batch is stored whole before any of it is sent: a crash right after the store loses none of it,
    the restarted daemon continues the sequence, and replay sends every message once."""
    cfg = SpoolConfig(path=str(tmp_path / "spool.db"))
    img = np.zeros((4, 4, 3), np.uint8)
    spool = Spool(cfg, owner="d")
    pub = Publisher(ctx, PublisherConfig(endpoint="tcp://127.0.0.1:*", linger_ms=0), "d", spool=spool)
    store = spool.append_many

    def store_then_crash(*args: Any, **kwargs: Any) -> list[bool]:
        store(*args, **kwargs)
        raise SystemExit("power cut between store and send")

    spool.append_many = store_then_crash  # type: ignore[method-assign]
    try:
        with pytest.raises(SystemExit, match="power cut"):
            pub.publish_many("cell", [({"cell_id": f"a{i}"}, {"stained": img}) for i in range(8)])
        assert pub.stats()["sent"] == {}  # nothing went out
    finally:
        pub.close()
        spool.close()
    spool = Spool(cfg, owner="d")  # the restarted daemon
    pub = Publisher(ctx, PublisherConfig(endpoint="tcp://127.0.0.1:*", linger_ms=0), "d", spool=spool)
    try:
        with Subscriber(pub.endpoint, topics=("cell",), context=ctx) as sub:
            assert pub.wait_for_subscribers(1, 5.0)
            assert pub.publish_many("cell", [({"cell_id": f"b{i}"}, {"stained": img}) for i in range(8)]) == [True] * 8
            live = [sub.receive(5.0) for _ in range(8)]
        assert all(isinstance(m, StainedCell) for m in live)
        # no sequence number reused
        assert [m.header["seq"] for m in live if isinstance(m, StainedCell)] == list(range(8, 16))
        framed = replay(spool, cfg, {"topic": "cell", "first": 0})
        assert framed.result["count"] == 16 and framed.result["missing"] == 0 and framed.result["next"] is None
        msgs, at = [], 0
        for n in framed.result["frames"]:
            msgs.append(wire.decode(framed.frames[at:at + n]))
            at += n
        assert [m.header["seq"] for m in msgs] == list(range(16))  # each once, in order
        assert [m.header["cell_id"] for m in msgs] == [f"a{i}" for i in range(8)] + [f"b{i}" for i in range(8)]
    finally:
        pub.close()
        spool.close()

"""``replay`` over real loopback sockets: a publisher with a spool, a control server, subscribers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from edge.client import ControlClient, StainedCell, Subscriber
from edge.client.recovery import fetch
from edge.device.control import ControlServer
from edge.device.errors import ControlError
from edge.device.opsconfig import PublisherConfig, SpoolConfig
from edge.device.publisher import Publisher
from edge.device.replay import replay
from edge.device.spool import Spool


class Daemon:
    """A publisher with a spool and a control server answering ``replay`` on its own thread."""

    def __init__(self, ctx: zmq.Context[Any], spool_cfg: SpoolConfig, send_hwm: int = 1000) -> None:
        self.spool = Spool(spool_cfg)
        self.pub = Publisher(ctx, PublisherConfig(endpoint="tcp://127.0.0.1:*", send_hwm=send_hwm, linger_ms=0),
                             "d", spool=self.spool)
        self.control = ControlServer(ctx, "tcp://127.0.0.1:*",
                                     {"replay": lambda a: replay(self.spool, spool_cfg, a)}, 65536)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self.control.serve_once(20)

    def cell(self, i: int, size: int = 8) -> bool:
        return self.pub.publish("cell", {"cell_id": f"c{i}"}, {"stained": np.full((size, size, 3), i % 256, np.uint8)})

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.control.close()
        self.pub.close()
        self.spool.close()


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    c: zmq.Context[Any] = zmq.Context()
    yield c
    c.term()


@pytest.fixture
def daemon(ctx: zmq.Context[Any], tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(ctx, SpoolConfig(path=str(tmp_path / "spool.db"), replay_max_messages=7))
    yield d
    d.close()


def test_replay_returns_the_messages_framed_as_on_the_pub_socket(daemon: Daemon, ctx: zmq.Context[Any]) -> None:
    for i in range(20):
        daemon.cell(i)
    with ControlClient(daemon.control.endpoint, timeout=5.0, context=ctx) as ctl:
        result, frames = ctl.call_framed("replay", topic="cell", first=3, last=5)
        assert result["count"] == 3 and result["frames"] == [3, 3, 3] and len(frames) == 9
        assert result["next"] is None and result["missing"] == 0 and result["held"] == [0, 19]
        assert result["epoch"] == daemon.pub.epoch and result["next_seq"] == 20
        assert frames[0] == b"cell"
        msgs, missing = fetch(ctl, "cell", 0)  # paged by 7: 0-6, 7-13, 14-19
        assert [m.header["seq"] for m in msgs] == list(range(20)) and missing == 0
        assert all(m.header["cell_id"] == f"c{m.header['seq']}" for m in msgs)
        assert int(msgs[4].payloads["stained"][0, 0, 0]) == 4
        nothing, _ = ctl.call_framed("replay", topic="cell", first=20)
        assert nothing["count"] == 0  # a late joiner that missed nothing


def test_a_resume_from_zero_before_anything_was_published_gets_nothing(daemon: Daemon,
                                                                         ctx: zmq.Context[Any]) -> None:
    with ControlClient(daemon.control.endpoint, timeout=5.0, context=ctx) as ctl:
        nothing, frames = ctl.call_framed("replay", topic="cell", first=0)  # a subscriber started before the daemon
        assert (nothing["count"], nothing["last"], nothing["next_seq"], frames) == (0, -1, 0, [])
        assert fetch(ctl, "field", 0) == ([], 0)


def test_a_range_outside_the_spool_is_an_error_naming_what_is_held(daemon: Daemon, ctx: zmq.Context[Any]) -> None:
    for i in range(5):
        daemon.cell(i)
    with ControlClient(daemon.control.endpoint, timeout=5.0, context=ctx) as ctl:
        with pytest.raises(ControlError, match=r"cell 7..9 not published yet; .* holds cell 0..4") as err:
            ctl.call("replay", topic="cell", first=7, last=9)
        assert err.value.code == "not_in_spool"
        with pytest.raises(ControlError, match=r"epoch 1 is gone .* holds cell 0..4") as err:
            ctl.call("replay", topic="cell", first=0, epoch=1)
        with pytest.raises(ControlError, match=r"'status' is not spooled; spooled: cell, field, event") as err:
            ctl.call("replay", topic="status", first=0)
        assert err.value.code == "not_spooled"
        for bad in (-1, 2**63, "0", True):
            with pytest.raises(ControlError, match=r"first must be an integer in \[0, 2\^62\)") as err:
                ctl.call("replay", topic="cell", first=bad)
            assert err.value.code == "bad_args"
        with pytest.raises(ControlError, match=r"unknown argument\(s\) \['lst'\]"):
            ctl.call("replay", topic="cell", first=0, lst=3)


def test_evicted_messages_are_reported_missing(ctx: zmq.Context[Any], tmp_path: Path) -> None:
    d = Daemon(ctx, SpoolConfig(path=str(tmp_path / "s.db"), max_mb=4000 / 2**20))
    try:
        for i in range(30):
            d.cell(i, size=16)  # ~1 kB each with the header: ~4 held
        held = d.spool.held("cell")
        assert held is not None and held[1] == 29 and held[0] > 20
        with ControlClient(d.control.endpoint, timeout=5.0, context=ctx) as ctl:
            with pytest.raises(ControlError, match=rf"cell 0..9 is not in the spool; .* holds cell {held[0]}..29"):
                ctl.call("replay", topic="cell", first=0, last=9)
            msgs, missing = fetch(ctl, "cell", 10)
            assert [m.header["seq"] for m in msgs] == list(range(held[0], 30)) and missing == held[0] - 10
    finally:
        d.close()


def test_cells_dropped_at_the_high_water_mark_are_recovered_in_order(ctx: zmq.Context[Any], tmp_path: Path) -> None:
    d = Daemon(ctx, SpoolConfig(path=str(tmp_path / "s.db")), send_hwm=4)
    sub = Subscriber(d.pub.endpoint, topics=("cell",), rcvhwm=4, context=ctx, control=d.control.endpoint)
    sub.sock.setsockopt(zmq.RCVBUF, 4096)
    try:
        assert d.pub.wait_for_subscribers(1, 5.0)
        sent = [d.cell(i, size=64) for i in range(300)]  # nobody reads yet: most are dropped
        assert not all(sent) and d.pub.stats()["dropped"]["cell"] == sent.count(False)
        got: list[int] = []

        def take() -> None:
            m = sub.receive(timeout=10.0)
            assert isinstance(m, StainedCell), f"only {len(got)} cells arrived"
            got.append(m.seq)

        n = 300
        while not d.cell(n):  # the queues are full: read until one more goes through and shows the gap
            take()
            n += 1
        while len(got) < n + 1:
            take()
        assert got == list(range(n + 1))
        assert sub.recovered["cell"] >= sent.count(False) and sub.gaps["cell"] == 0
        assert sub.receive(timeout=0.2) is None
    finally:
        sub.close()
        d.close()


def test_a_late_joiner_resumes_from_its_sequence_number(daemon: Daemon, ctx: zmq.Context[Any]) -> None:
    for i in range(12):
        daemon.cell(i)
    with Subscriber(daemon.pub.endpoint, topics=("cell",), context=ctx, control=daemon.control.endpoint,
                    start={"cell": 5}) as sub:
        assert daemon.pub.wait_for_subscribers(1, 5.0)
        daemon.cell(12)
        got = []
        while (m := sub.receive(timeout=2.0)) is not None:
            assert isinstance(m, StainedCell)
            got.append(m.seq)
        assert got == list(range(5, 13)) and sub.recovered["cell"] >= 7 and sub.gaps["cell"] == 0


def test_without_control_a_gap_is_only_counted(daemon: Daemon, ctx: zmq.Context[Any]) -> None:
    with Subscriber(daemon.pub.endpoint, topics=("cell",), context=ctx) as sub:
        assert daemon.pub.wait_for_subscribers(1, 5.0)
        daemon.cell(0)
        daemon.pub._seq["cell"] += 3
        daemon.cell(4)
        got = [sub.receive(5.0), sub.receive(5.0)]
        assert [m.seq for m in got if isinstance(m, StainedCell)] == [0, 4] and sub.gaps["cell"] == 3


def test_a_status_message_reveals_cells_missed_at_the_end_of_a_burst(daemon: Daemon, ctx: zmq.Context[Any]) -> None:
    with Subscriber(daemon.pub.endpoint, topics=("cell", "status"), context=ctx,
                    control=daemon.control.endpoint) as sub:
        assert daemon.pub.wait_for_subscribers(2, 5.0)
        daemon.cell(0)
        for i in (1, 2, 3):  # spooled, then lost on the way (the last of a burst: no later cell shows the gap)
            daemon.spool.append("cell", i, _header(daemon, i), [np.zeros((8, 8, 3), np.uint8).tobytes()])
        daemon.pub._seq["cell"] = 4
        daemon.pub.publish("status", {"state": "idle", "publisher": daemon.pub.stats()})
        got = [sub.receive(5.0) for _ in range(5)]
        assert [m.seq for m in got if isinstance(m, StainedCell)] == [0, 1, 2, 3]
        assert sub.recovered["cell"] == 3 and sub.gaps["cell"] == 0


def _header(daemon: Daemon, seq: int) -> bytes:
    from edge.device import wire

    frames = wire.encode("cell", {"daemon_id": "d", "epoch": daemon.pub.epoch, "seq": seq, "cell_id": f"c{seq}"},
                         {"stained": np.zeros((8, 8, 3), np.uint8)})
    return bytes(frames[1])


def test_a_resume_point_of_another_epoch_is_not_applied(daemon: Daemon, ctx: zmq.Context[Any]) -> None:
    for i in range(6):
        daemon.cell(i)
    with Subscriber(daemon.pub.endpoint, topics=("cell",), context=ctx, control=daemon.control.endpoint,
                    start={"cell": 2}, start_epoch=daemon.pub.epoch - 1) as sub:
        assert daemon.pub.wait_for_subscribers(1, 5.0)
        daemon.cell(6)
        m = sub.receive(5.0)
        assert isinstance(m, StainedCell) and m.seq == 6  # the old space's seq 2 means nothing here
        assert sub.sequence.replay_errors == {"cell": 1} and "is gone" in sub.sequence.last_error

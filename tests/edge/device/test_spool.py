"""The spool on real SQLite files: bounds, WAL, restart continuity, broken files, a full database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edge.device.opsconfig import SpoolConfig
from edge.device.spool import Spool


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def put(spool: Spool, topic: str, seqs: range, size: int = 1000) -> list[bool]:
    return [spool.append(topic, s, b"h%d" % s, [bytes([s % 256]) * size]) for s in seqs]


def test_messages_come_back_as_stored_in_wal_mode(tmp_path: Path) -> None:
    spool = Spool(SpoolConfig(path=str(tmp_path / "s.db")))
    try:
        assert all(put(spool, "cell", range(5)))
        assert spool.append("cell", 5, b"two", [b"ab", memoryview(b"cde")])
        mode = sqlite3.connect(tmp_path / "s.db").execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal" and (tmp_path / "s.db-wal").exists()
        assert spool.held("cell") == (0, 5) and spool.held("field") is None
        rows = spool.read("cell", 2, 5, max_messages=100, max_bytes=1 << 20)
        assert [r[0] for r in rows] == [2, 3, 4, 5]
        assert rows[0][1:] == (b"h2", [b"\x02" * 1000]) and rows[-1][1:] == (b"two", [b"ab", b"cde"])
        assert [r[0] for r in spool.read("cell", 0, 5, max_messages=2, max_bytes=1 << 20)] == [0, 1]
        assert len(spool.read("cell", 0, 5, max_messages=100, max_bytes=1500)) == 1  # ~1 KB each
    finally:
        spool.close()


def test_a_reader_is_not_blocked_by_an_open_write_transaction(tmp_path: Path) -> None:
    spool = Spool(SpoolConfig(path=str(tmp_path / "s.db")))
    writer = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    try:
        put(spool, "cell", range(3))
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("DELETE FROM messages")
        assert spool.held("cell") == (0, 2)  # WAL: readers see the last commit while a writer works
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        spool.close()


def test_the_size_bound_evicts_the_oldest(tmp_path: Path) -> None:
    spool = Spool(SpoolConfig(path=str(tmp_path / "s.db"), max_mb=10_000 / 2**20))  # 10 kB
    try:
        assert all(put(spool, "cell", range(30)))
        first, last = spool.held("cell") or (-1, -1)
        assert last == 29 and 20 <= first <= 23  # ~1 kB each: 9 to 10 kB kept
        st = spool.stats()
        assert 9_000 - 1004 < st["bytes"] <= 10_000 and st["evicted"] == first and st["unspooled"] == {}
        assert st["held"] == {"cell": {"first": first, "last": 29, "messages": 30 - first}}
    finally:
        spool.close()


def test_the_age_bound_evicts_old_messages(tmp_path: Path) -> None:
    clock = Clock()
    spool = Spool(SpoolConfig(path=str(tmp_path / "s.db"), max_age_s=60.0), clock=clock)
    try:
        put(spool, "cell", range(5))
        clock.t += 61.0
        put(spool, "cell", range(5, 7))
        assert spool.held("cell") == (5, 6)
    finally:
        spool.close()


def test_sequence_numbers_and_epoch_survive_a_restart(tmp_path: Path) -> None:
    cfg = SpoolConfig(path=str(tmp_path / "sub" / "s.db"))
    spool = Spool(cfg)
    put(spool, "cell", range(7))
    spool.append("status", 0, b"st", [], spool=False)  # not spooled, its sequence number kept
    epoch = spool.epoch
    spool.close()
    again = Spool(cfg, clock=Clock(2e9))
    try:
        assert again.next_seqs() == {"cell": 7, "status": 1} and again.epoch == epoch
        assert again.held("cell") == (0, 6) and again.held("status") is None
    finally:
        again.close()


def test_a_corrupt_file_is_moved_aside_and_a_new_spool_started(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not sqlite" * 100)
    spool = Spool(SpoolConfig(path=str(path)), clock=Clock(1234.0))
    try:
        assert spool.available and "not a database" in spool.open_error and "moved to" in spool.open_error
        assert (tmp_path / "s.db.corrupt-1234").read_bytes().startswith(b"this is not sqlite")
        assert spool.next_seqs() == {} and all(put(spool, "cell", range(2)))
    finally:
        spool.close()


def test_a_locked_file_leaves_the_daemon_without_a_spool_and_says_why(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("CREATE TABLE other (x)")  # takes and keeps the exclusive lock
    try:
        spool = Spool(SpoolConfig(path=str(path), busy_timeout_ms=10))
        assert not spool.available and "database is locked" in spool.open_error
        assert "WITHOUT a spool" in spool.open_error
        assert put(spool, "cell", range(3)) == [False] * 3
        assert spool.stats()["unspooled"] == {"cell": 3}
        assert spool.held("cell") is None
        spool.close()
    finally:
        holder.close()


def test_a_path_that_cannot_be_created_is_reported(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    spool = Spool(SpoolConfig(path=str(tmp_path / "file" / "s.db")))
    assert not spool.available and "cannot be created" in spool.open_error
    assert not spool.append("cell", 0, b"h", [b"p"])
    spool.close()


def test_a_full_database_counts_unspooled_messages_and_recovers(tmp_path: Path) -> None:
    clock = Clock()
    cfg = SpoolConfig(path=str(tmp_path / "s.db"), max_mb=1.0, retry_s=5.0)
    spool = Spool(cfg, clock=clock, max_file_bytes=64 * 1024)  # the file may not grow past 64 kB
    try:
        ok = put(spool, "cell", range(200), size=4000)  # 800 kB: under max_mb, over the file's size
        assert ok[0] and not all(ok)
        failed = ok.index(False)
        assert "full" in spool.stats()["error"] and spool.stats()["failing"]
        assert spool.unspooled["cell"] == 200 - failed  # after a failure: not retried for retry_s
        assert spool.next_seqs()["cell"] == failed
        clock.t += 5.0
        with sqlite3.connect(tmp_path / "s.db") as other:  # room made (an operator, or the bound)
            other.execute("DELETE FROM messages")
        assert spool.append("cell", 200, b"h", [b"x" * 100])
        assert not spool.stats()["failing"] and spool.next_seqs()["cell"] == 201
    finally:
        spool.close()


def test_a_message_bigger_than_the_bound_is_unspooled_but_its_seq_kept(tmp_path: Path) -> None:
    spool = Spool(SpoolConfig(path=str(tmp_path / "s.db"), max_mb=2000 / 2**20))
    try:
        assert not spool.append("cell", 0, b"h", [b"x" * 5000])
        assert spool.append("field", 0, b"h", [b"x" * 100])
        st = spool.stats()
        assert st["unspooled"] == {"cell": 1} and "exceeds the spool bound" in st["error"]
        assert spool.next_seqs() == {"cell": 1, "field": 1} and spool.held("cell") is None
    finally:
        spool.close()


def test_an_in_memory_spool_works_without_files() -> None:
    spool = Spool(SpoolConfig(path=":memory:"))
    try:
        assert all(put(spool, "cell", range(3)))
        assert [r[0] for r in spool.read("cell", 0, 9, 10, 1 << 20)] == [0, 1, 2]
    finally:
        spool.close()


def test_a_spool_of_another_daemon_is_refused(tmp_path: Path) -> None:
    cfg = SpoolConfig(path=str(tmp_path / "s.db"))
    Spool(cfg, owner="left").close()
    spool = Spool(cfg, owner="right")
    assert not spool.available and "belongs to daemon 'left', this is 'right'" in spool.open_error
    spool.close()
    assert (tmp_path / "s.db").exists() and not list(tmp_path.glob("*.corrupt-*"))


def test_a_batch_is_stored_in_one_transaction_all_or_none(tmp_path: Path) -> None:
    spool = Spool(SpoolConfig(path=str(tmp_path / "s.db"), max_mb=1.0), max_file_bytes=64 * 1024)
    commits: list[str] = []
    try:
        batch = [(s, b"h%d" % s, [bytes([s]) * 1000]) for s in range(8)]
        assert spool.append_many("cell", batch) == [True] * 8
        assert spool.held("cell") == (0, 7) and spool.next_seqs() == {"cell": 8}
        assert [r[0] for r in spool.read("cell", 0, 7, 100, 1 << 20)] == list(range(8))
        # one commit for the batch, seen in the writer connection's statement trace
        writer = spool._db
        assert writer is not None
        writer.set_trace_callback(commits.append)
        assert spool.append_many("cell", [(s, b"h", [b"y" * 100]) for s in range(8, 16)]) == [True] * 8
        writer.set_trace_callback(None)
        assert sum(c.strip().upper() == "COMMIT" for c in commits) == 1
        # a batch that does not fit the file: none of it is stored, every message counted as unspooled
        big = [(s, b"h", [b"z" * 20_000]) for s in range(16, 24)]
        assert spool.append_many("cell", big) == [False] * 8
        assert spool.held("cell") == (0, 15) and spool.next_seqs() == {"cell": 16}
        assert spool.unspooled["cell"] == 8 and "full" in spool.stats()["error"]
    finally:
        spool.close()


def test_a_batch_keeps_the_seq_of_a_message_bigger_than_the_bound(tmp_path: Path) -> None:
    spool = Spool(SpoolConfig(path=str(tmp_path / "s.db"), max_mb=2000 / 2**20))
    try:
        ok = spool.append_many("cell", [(0, b"h", [b"a" * 100]), (1, b"h", [b"x" * 5000]), (2, b"h", [b"b" * 100])])
        assert ok == [True, False, True] and spool.next_seqs() == {"cell": 3}
        assert [r[0] for r in spool.read("cell", 0, 2, 10, 1 << 20)] == [0, 2]
        assert spool.append_many("cell", []) == []
    finally:
        spool.close()

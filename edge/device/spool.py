"""The spool: every published message kept in a local SQLite database (WAL) for ``replay``.

The publisher hands each message to :meth:`Spool.append` *before* sending it — a batch of cells to
:meth:`Spool.append_many`, all of them in one transaction before any is sent — so a message dropped
at the send high-water mark, or missed by a subscriber that was down, can be sent again by the
control command ``replay`` (:mod:`edge.device.replay`). Rows hold the topic, the sequence number,
the header frame and the payload frames exactly as on the PUB socket.

Bounds: ``max_mb`` (sum of header + payload bytes; the oldest rows are evicted beyond it) and
``max_age_s`` (rows older than that are evicted; 0 = no age bound). The next sequence number of
every topic and the spool's ``epoch`` (Unix ms of its creation; a new epoch = a new sequence space)
are stored too, so sequence numbers continue across daemon restarts.

Nothing here stops staining: a write that fails (disk full, file locked, I/O error) or a message
bigger than the whole bound is *unspooled* — counted per topic, the error kept for ``status`` — and
the message is still published. A file that is not a SQLite database is moved aside
(``PATH.corrupt-<unix time>``) and a new spool started; a file that cannot be opened at all (locked,
not writable) leaves the daemon running without a spool. Both are logged and shown in ``status``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgpack

from edge.device.opsconfig import SpoolConfig

log = logging.getLogger(__name__)

#: One message for :meth:`Spool.append_many`: ``(seq, header frame, payload frames)``.
Message = tuple[int, bytes, Sequence[bytes | memoryview]]

SCHEMA = 1
_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS seqs (topic TEXT PRIMARY KEY, next INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY, topic TEXT NOT NULL, seq INTEGER NOT NULL, t REAL NOT NULL,
    bytes INTEGER NOT NULL, header BLOB NOT NULL, payloads BLOB NOT NULL, UNIQUE (topic, seq));
"""


class Spool:
    """A bounded message store; thread-safe (one writer connection, one reader connection).

    ``max_file_bytes`` caps the database file (SQLite ``max_page_count``; default twice the bound
    plus 8 MiB): reaching it is SQLite's "database or disk is full", like a full disk.
    """

    def __init__(self, config: SpoolConfig, *, owner: str = "", clock: Callable[[], float] = time.time,
                 max_file_bytes: int | None = None) -> None:
        self.config = config
        self.owner = owner  # the daemon id: a file written by another daemon is refused
        self.path = config.path
        self.max_bytes = int(config.max_mb * 2**20)
        self._clock = clock
        self._lock = threading.RLock()
        self._read_lock = threading.RLock()
        self.unspooled: Counter[str] = Counter()
        self.spooled: Counter[str] = Counter()
        self.evicted = 0
        self.error = ""  # why the last unspooled message was not spooled
        self.failing = False  # the last write failed (cleared by the next successful one)
        self.open_error = ""  # why the file could not be used as it was (moved aside, or no spool)
        self._retry_at = 0.0
        self._age_check = 0.0
        self._bytes = 0
        self._next: dict[str, int] = {}
        self.epoch = int(clock() * 1000)
        self._db: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._open(max_file_bytes if max_file_bytes is not None else 2 * self.max_bytes + (8 << 20))

    # -- opening ------------------------------------------------------------------------------------
    def _open(self, max_file_bytes: int) -> None:
        try:
            self._connect(max_file_bytes)
        except sqlite3.Error as exc:
            self._close_connections()
            failure: sqlite3.Error = exc
            if "not a database" in str(exc) or "malformed" in str(exc):
                aside = f"{self.path}.corrupt-{int(self._clock())}"
                Path(self.path).rename(aside)
                self.open_error = (f"spool {self.path} was not a usable SQLite database ({exc}); moved to {aside} "
                                   f"and started an empty spool (new epoch: sequence numbers restart at 0)")
                log.error("%s", self.open_error)
                try:
                    self._connect(max_file_bytes)
                    return
                except sqlite3.Error as again:
                    failure = again
            self._close_connections()
            self.open_error = (f"spool {self.path} cannot be opened ({type(failure).__name__}: {failure}); "
                               "running WITHOUT a spool: messages are published but cannot be replayed. Check "
                               "that the file is writable and not held by another process ([spool] path)")
            log.error("%s", self.open_error)
        except OSError as exc:
            self._close_connections()
            self.open_error = f"spool {self.path} cannot be created ({exc}); running WITHOUT a spool"
            log.error("%s", self.open_error)

    def _connect(self, max_file_bytes: int) -> None:
        memory = self.path == ":memory:"
        if not memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        timeout = self.config.busy_timeout_ms / 1000
        db = sqlite3.connect(self.path, timeout=timeout, check_same_thread=False, isolation_level=None)
        self._db = db
        if not memory:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise sqlite3.OperationalError(f"journal_mode is {mode!r}, WAL could not be enabled")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(f"PRAGMA journal_size_limit={8 << 20}")  # the WAL file shrinks back after a checkpoint
        page = db.execute("PRAGMA page_size").fetchone()[0]
        db.execute(f"PRAGMA max_page_count={max(16, max_file_bytes // page)}")
        db.execute("BEGIN IMMEDIATE")
        for statement in _TABLES.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?), ('epoch', ?), ('owner', ?)",
                   (SCHEMA, self.epoch, self.owner))
        db.execute("COMMIT")
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if meta["schema"] != SCHEMA:
            raise sqlite3.DatabaseError(f"spool schema {meta['schema']}, this daemon writes schema {SCHEMA}")
        if self.owner and meta["owner"] != self.owner:
            raise sqlite3.DatabaseError(f"the spool belongs to daemon {meta['owner']!r}, this is {self.owner!r}; "
                                        "give each daemon its own [spool] path")
        self.epoch = int(meta["epoch"])
        self._next = dict(db.execute("SELECT topic, next FROM seqs").fetchall())
        self._bytes = int(db.execute("SELECT COALESCE(SUM(bytes), 0) FROM messages").fetchone()[0])
        if memory:  # one connection: readers take the writer's lock
            self._reader, self._read_lock = db, self._lock
        else:
            self._reader = sqlite3.connect(self.path, timeout=timeout, check_same_thread=False, isolation_level=None)
        self._evict(self._clock())

    @property
    def available(self) -> bool:
        return self._db is not None

    def next_seqs(self) -> dict[str, int]:
        """The next sequence number of every topic the spool has seen (empty for a new spool)."""
        with self._lock:
            return dict(self._next)

    # -- writing ------------------------------------------------------------------------------------
    def append(self, topic: str, seq: int, header: bytes, payloads: Sequence[bytes | memoryview],
               spool: bool = True) -> bool:
        """Store one message (``spool=False``: only record its sequence number); False = unspooled."""
        return self.append_many(topic, [(seq, header, payloads)], spool)[0]

    def append_many(self, topic: str, messages: Sequence[Message], spool: bool = True) -> list[bool]:
        """Store ``messages`` ``(seq, header, payloads)`` of ``topic`` (increasing ``seq``) in ONE transaction:
        all or none (a failed write leaves every one of them unspooled). Per message: True = spooled."""
        if not messages:
            return []
        sizes = [len(h) + sum(memoryview(p).nbytes for p in ps) for _, h, ps in messages]
        now = self._clock()
        with self._lock:
            if self._db is None or now < self._retry_at:
                return [self._unspooled(topic, spool, self.error or self.open_error) for _ in messages]
            # a message bigger than the whole bound keeps its sequence number but is not stored (size 0)
            oversized = [spool and s > self.max_bytes for s in sizes]
            stored = [0 if big or not spool else s for s, big in zip(sizes, oversized, strict=True)]
            try:
                self._write(topic, messages, stored, now)
            except sqlite3.Error as exc:
                self._retry_at = now + self.config.retry_s
                self.failing = True
                return [self._unspooled(topic, spool, f"{type(exc).__name__}: {exc}") for _ in messages]
            self.failing = False
            out = []
            for size, big in zip(sizes, oversized, strict=True):
                if big:
                    out.append(self._unspooled(topic, spool, f"a {topic} message of {size} bytes exceeds the spool "
                                                             f"bound max_mb = {self.config.max_mb}"))
                else:
                    self.spooled[topic] += spool
                    out.append(True)
            return out

    def _write(self, topic: str, messages: Sequence[Message], sizes: Sequence[int], now: float) -> None:
        assert self._db is not None  # checked by the caller, under the lock
        db = self._db
        last = max(m[0] for m in messages)
        rows = [(topic, seq, now, size, header, msgpack.packb([memoryview(p) for p in payloads], use_bin_type=True))
                for (seq, header, payloads), size in zip(messages, sizes, strict=True) if size]
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT INTO seqs VALUES (?, ?) ON CONFLICT(topic) DO UPDATE SET next = excluded.next",
                       (topic, last + 1))
            if rows:
                db.executemany("INSERT OR REPLACE INTO messages (topic, seq, t, bytes, header, payloads) "
                               "VALUES (?, ?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite rolls back by itself on some errors (a full database)
                db.execute("ROLLBACK")
            raise
        self._next[topic] = last + 1
        self._bytes += sum(sizes)
        if self._bytes > self.max_bytes or self._due_age(now):
            self._evict(now)

    def _due_age(self, now: float) -> bool:
        return self.config.max_age_s > 0 and now >= self._age_check

    def _evict(self, now: float) -> None:
        """Delete the oldest rows until the bytes fit the bound and none is older than ``max_age_s``; a
        full spool is brought down to 90 % of the bound, so eviction runs once per several messages."""
        assert self._db is not None
        cutoff = now - self.config.max_age_s if self.config.max_age_s > 0 else float("-inf")
        self._age_check = now + min(1.0, self.config.max_age_s / 10)
        target = self.max_bytes * 0.9 if self._bytes > self.max_bytes else self.max_bytes
        last, freed, n = None, 0, 0
        for rid, nbytes, t in self._db.execute("SELECT id, bytes, t FROM messages ORDER BY id"):
            if self._bytes - freed <= target and t >= cutoff:
                break
            last, freed, n = rid, freed + nbytes, n + 1
        if last is not None:
            self._db.execute("DELETE FROM messages WHERE id <= ?", (last,))
            self._bytes -= freed
            self.evicted += n

    def _unspooled(self, topic: str, spool: bool, reason: str) -> bool:
        if not spool:
            return False
        self.unspooled[topic] += 1
        n = self.unspooled[topic]
        if n in (1, 10, 100) or n % 1000 == 0:
            log.warning("spool: %d %s message(s) not spooled (published, but cannot be replayed): %s",
                        n, topic, reason)
        if reason and reason != self.open_error:
            self.error = reason
        return False

    # -- reading ------------------------------------------------------------------------------------
    def held(self, topic: str) -> tuple[int, int] | None:
        """``(oldest, newest)`` sequence numbers of ``topic`` in the spool, or None."""
        if self._reader is None:
            return None
        with self._read_lock:
            row = self._reader.execute("SELECT MIN(seq), MAX(seq) FROM messages WHERE topic = ?", (topic,)).fetchone()
        return None if row[0] is None else (int(row[0]), int(row[1]))

    def read(self, topic: str, first: int, last: int, max_messages: int, max_bytes: int
             ) -> list[tuple[int, bytes, list[bytes]]]:
        """``(seq, header, payloads)`` of ``topic`` with ``first <= seq <= last``, in order, at most
        ``max_messages`` and about ``max_bytes`` (always at least one message)."""
        if self._reader is None:
            return []
        out: list[tuple[int, bytes, list[bytes]]] = []
        total = 0
        with self._read_lock:
            rows = self._reader.execute("SELECT seq, bytes, header, payloads FROM messages WHERE topic = ? AND "
                                        "seq BETWEEN ? AND ? ORDER BY seq LIMIT ?", (topic, first, last, max_messages))
            for seq, nbytes, header, body in rows:
                if out and total + nbytes > max_bytes:
                    break
                out.append((int(seq), bytes(header), [bytes(p) for p in msgpack.unpackb(body, raw=False)]))
                total += nbytes
        return out

    def stats(self) -> dict[str, Any]:
        with self._read_lock:
            held = {}
            if self._reader is not None:
                rows = self._reader.execute("SELECT topic, MIN(seq), MAX(seq), COUNT(*) FROM messages GROUP BY topic")
                held = {t: {"first": a, "last": b, "messages": c} for t, a, b, c in rows}
        with self._lock:
            return {"path": self.path, "available": self._db is not None, "epoch": self.epoch, "bytes": self._bytes,
                    "max_mb": self.config.max_mb, "max_age_s": self.config.max_age_s, "held": held,
                    "spooled": dict(self.spooled), "unspooled": dict(self.unspooled), "evicted": self.evicted,
                    "error": self.error, "failing": self.failing, "open_error": self.open_error}

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._close_connections()

    def _close_connections(self) -> None:
        for conn in {id(c): c for c in (self._reader, self._db) if c is not None}.values():
            conn.close()
        self._db = self._reader = None

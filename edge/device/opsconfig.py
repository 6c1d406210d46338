"""The daemon's operations sections of the config (:mod:`edge.device.config` loads them with the rest):
what it publishes and keeps for replay, who may talk to it, its metrics endpoint and model updates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.config import check


@dataclass(frozen=True)
class PublisherConfig:
    endpoint: str = "tcp://127.0.0.1:5556"
    send_hwm: int = 1000
    linger_ms: int = 1000

    def __post_init__(self) -> None:
        check("publisher", self, endpoint=("://" in self.endpoint, "a ZeroMQ endpoint such as tcp://127.0.0.1:5556"),
              send_hwm=(self.send_hwm >= 1, ">= 1"), linger_ms=(self.linger_ms >= 0, ">= 0"))


@dataclass(frozen=True)
class ControlConfig:
    endpoint: str = "tcp://127.0.0.1:5557"
    max_message_bytes: int = 65536
    max_fields_per_scan: int = 100_000

    def __post_init__(self) -> None:
        check("control", self, endpoint=("://" in self.endpoint, "a ZeroMQ endpoint such as tcp://127.0.0.1:5557"),
              max_message_bytes=(256 <= self.max_message_bytes <= 1 << 26, "256 .. 64 MiB"))


@dataclass(frozen=True)
class SpoolConfig:
    """The replay spool (:mod:`edge.device.spool`): ``path`` a SQLite file (WAL; survives restarts),
    ``":memory:"`` (the default: replay within one run) or ``""`` (off). ``topics`` are stored; every
    topic's sequence number is kept. ``max_mb`` bounds the stored bytes and ``max_age_s`` their age
    (0 = none); the oldest go first. ``replay_max_messages`` / ``replay_max_mb`` bound one ``replay``
    reply (the client asks again from ``next``). After a failed write the spool is not tried again for
    ``retry_s`` (those messages are counted as unspooled)."""

    path: str = ":memory:"
    max_mb: float = 64.0
    max_age_s: float = 0.0
    topics: tuple[str, ...] = ("cell", "field", "event")
    replay_max_messages: int = 1000
    replay_max_mb: float = 16.0
    busy_timeout_ms: int = 50
    retry_s: float = 1.0

    def __post_init__(self) -> None:
        check("spool", self, max_mb=(0 < self.max_mb <= 1 << 20, "0 .. 1048576 MiB"),
              max_age_s=(self.max_age_s >= 0, ">= 0 s (0 = no age bound)"),
              topics=(set(self.topics) <= {"cell", "field", "status", "event"},
                      "a subset of cell, field, status, event"),
              replay_max_messages=(1 <= self.replay_max_messages <= 100_000, "1 .. 100000"),
              replay_max_mb=(0 < self.replay_max_mb <= 1024, "0 .. 1024 MiB"),
              busy_timeout_ms=(0 <= self.busy_timeout_ms <= 10_000, "0 .. 10000 ms"),
              retry_s=(0 <= self.retry_s <= 3600, "0 .. 3600 s"))


@dataclass(frozen=True)
class SecurityConfig:
    """CURVE on both sockets (:mod:`edge.device.security`); empty ``server_secret_key`` = plain text.

    ``server_secret_key``: the daemon's ``NAME.key_secret``. ``allowed_clients``: client public key
    files (``NAME.key``) or directories of them; a client is known by its file's ``NAME``.
    ``rights``: ``{right: [client names or "*"]}`` with rights ``scan``, ``model``, ``config``,
    ``replay``, ``admin`` (all); empty = every listed client may run every command, set = only
    ``status`` (read) is open to every listed client.
    """

    server_secret_key: str = ""
    allowed_clients: tuple[str, ...] = ()
    rights: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for right, names in self.rights.items():
            check("security", self, rights=(isinstance(names, list | tuple) and all(isinstance(n, str) for n in names),
                                            f"rights.{right} = a list of client names"))
        object.__setattr__(self, "rights", {k: tuple(v) for k, v in self.rights.items()})
        on = bool(self.server_secret_key)
        check("security", self, allowed_clients=(bool(self.allowed_clients) or not on,
                                                 "at least one client key file or directory with server_secret_key"),
              server_secret_key=(on or not (self.allowed_clients or self.rights),
                                 "a secret key file when allowed_clients or rights are set"))


@dataclass(frozen=True)
class MetricsConfig:
    """A Prometheus endpoint (:mod:`edge.device.prom`; needs the ``[metrics]`` extra, ``prometheus-client``).

    Off by default. ``port`` 0 with ``enabled`` = a free port (tests; the log says which);
    ``address`` 127.0.0.1 keeps it local (0.0.0.0: every interface, for a Prometheus server elsewhere).
    """

    enabled: bool = False
    port: int = 9464
    address: str = "127.0.0.1"

    def __post_init__(self) -> None:
        check("metrics", self, port=(0 <= self.port <= 65535, "0 .. 65535 (0 = any free port)"),
              address=(bool(self.address), "an address to listen on, e.g. 127.0.0.1"))


@dataclass(frozen=True)
class FlashConfig:
    """Model updates of the running daemon (``flash``, ``rollback``, ``models``; :mod:`edge.device.flash`).

    ``root``: the install root new bundles go to (empty = ``model.bundle`` when that is a directory).
    ``trusted_keys``: signer public keys (``.pub``); empty = ``model.public_key``. ``allow_unsigned``:
    accept bundles without ``manifest.sig``. ``max_bundle_mb``: bundle bytes sent in a ``flash`` request
    (``control.max_message_bytes`` must admit them too). ``health_cells``: cells the new model stains
    before it is committed (within ``health_timeout_s``; fewer cells by then are judged as they are);
    it is rolled back on any non-finite output, when more than ``max_suspect_fraction`` of them are
    fidelity-suspect, or when its inference time per cell exceeds ``max_slowdown`` × the old model's.
    ``warmup_batches``: batches of the golden input run before the switch.
    """

    root: str = ""
    trusted_keys: tuple[str, ...] = ()
    allow_unsigned: bool = False
    max_bundle_mb: float = 32.0
    health_cells: int = 32
    health_timeout_s: float = 300.0
    max_suspect_fraction: float = 0.5
    max_slowdown: float = 4.0
    warmup_batches: int = 2

    def __post_init__(self) -> None:
        check("flash", self, max_bundle_mb=(0 < self.max_bundle_mb <= 4096, "0 .. 4096 MiB"),
              health_cells=(0 <= self.health_cells <= 1_000_000, "0 .. 1000000 (0 = commit after the switch)"),
              health_timeout_s=(0 < self.health_timeout_s <= 86_400, "0 .. 86400 s"),
              max_suspect_fraction=(0 <= self.max_suspect_fraction <= 1, "0 .. 1"),
              max_slowdown=(self.max_slowdown >= 1, ">= 1 (x the old model's time per cell)"),
              warmup_batches=(0 <= self.warmup_batches <= 100, "0 .. 100"))

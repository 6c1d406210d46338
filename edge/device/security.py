"""Access control: CURVE encryption and authentication on both daemon sockets, and per-command rights.

With ``[security] server_secret_key`` set, the PUB data socket and the control socket are CURVE
servers: every connection is encrypted, and a ZAP handler (``zmq.auth.ThreadAuthenticator`` on the
daemon's context, started before either socket binds) admits only the client public keys of
``allowed_clients``. A client is known by the name of its public key file (``operator.key`` →
``operator``). Commands are mapped to the right they need by :data:`COMMAND_RIGHTS` (data: a new
command adds one row); when ``[security] rights`` is set, a listed client without the command's
right gets the error ``unauthorised`` naming the command. Plain text stays the default.

Key files are ZeroMQ certificates (``zmq.auth.create_certificates``: ``NAME.key`` with the public
key, ``NAME.key_secret`` with both); ``stainless-edge keys --out DIR --name NAME`` makes a pair.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from core.config import ConfigError
from edge.device.errors import ControlError
from edge.device.opsconfig import SecurityConfig

log = logging.getLogger(__name__)

#: The right each control command needs. ``read`` is every listed client's; the others are granted
#: by ``[security] rights``; ``admin`` grants them all. A command missing here needs ``admin``.
COMMAND_RIGHTS: dict[str, str] = {
    "status": "read",
    "models": "read",
    "scan_field": "scan",
    "start_scan": "scan",
    "stop": "scan",
    "flash": "model",
    "rollback": "model",
    "set_config": "config",
    "calibrate": "config",
    "replay": "replay",
}
#: Every right a client can be granted in ``[security] rights``.
RIGHTS: tuple[str, ...] = ("scan", "model", "config", "replay", "admin")
#: The ZAP domain of both daemon sockets.
ZAP_DOMAIN = "stainless"
_KEY_HELP = "make a key pair with `stainless-edge keys --out DIR --name NAME`"


@dataclass(frozen=True)
class KeyPair:
    """CURVE keys as Z85 text (40 characters each); ``secret`` is empty for a public key file."""

    public: bytes
    secret: bytes = b""


def _z85_key(value: bytes | None, what: str, key: str, path: Path) -> bytes:
    if value is None or len(value) != 40:
        raise ConfigError(f"{key}: {path} holds no valid {what} (expected 40 Z85 characters); {_KEY_HELP}")
    try:
        z85.decode(value)
    except (ValueError, KeyError, IndexError) as exc:
        raise ConfigError(f"{key}: {path}: the {what} is not Z85 text ({exc}); {_KEY_HELP}") from exc
    return value


def load_key(path: Path | str, key: str, *, secret: bool) -> KeyPair:
    """The key pair (``secret``) or public key in a ZeroMQ certificate file; errors name ``key``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{key}: key file {path} not found; {_KEY_HELP}")
    try:
        public, secret_key = zmq.auth.load_certificate(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{key}: {path} is not a ZeroMQ key file ({exc}); {_KEY_HELP}") from exc
    pub = _z85_key(public, "public key", key, path)
    if not secret:
        return KeyPair(pub)
    if secret_key is None:
        raise ConfigError(f"{key}: {path} holds only a public key; expected the secret key file "
                          f"({path.stem}.key_secret)")
    sec = _z85_key(secret_key, "secret key", key, path)
    if zmq.curve_public(sec) != pub:
        raise ConfigError(f"{key}: in {path} the public key does not belong to the secret key; {_KEY_HELP}")
    return KeyPair(pub, sec)


def load_allowed(entries: tuple[str, ...], key: str = "security.allowed_clients") -> dict[bytes, str]:
    """``{public key (Z85): client name}`` from public key files and directories of ``*.key`` files."""
    files: list[Path] = []
    for entry in entries:
        p = Path(entry)
        if p.is_dir():
            found = sorted(p.glob("*.key"))
            if not found:
                raise ConfigError(f"{key}: directory {p} holds no *.key public key file; {_KEY_HELP}")
            files += found
        else:
            files.append(p)
    allowed: dict[bytes, str] = {}
    names: dict[str, Path] = {}
    for f in files:
        pub = load_key(f, key, secret=False).public
        name = f.name.removesuffix(".key_secret").removesuffix(".key")
        if name in names and allowed.get(pub) != name:
            raise ConfigError(f"{key}: two different keys are named {name!r} ({names[name]}, {f}); rename one")
        names[name] = f
        allowed[pub] = name
    return allowed


class AccessPolicy:
    """Who may run which command: ``rights`` maps a right to client names (``"*"`` = every listed
    client); an empty ``rights`` lets every listed client run every command."""

    def __init__(self, clients: Mapping[bytes, str], rights: Mapping[str, tuple[str, ...]],
                 table: Mapping[str, str] = COMMAND_RIGHTS) -> None:
        self.clients = dict(clients)
        self.table = dict(table)
        self.restricted = bool(rights)
        known = set(self.clients.values())
        self.grants: dict[str, set[str]] = {}
        for right, names in rights.items():
            if right not in RIGHTS:
                raise ConfigError(f"security.rights.{right}: unknown right; valid: {', '.join(RIGHTS)}")
            for name in names:
                if name != "*" and name not in known:
                    raise ConfigError(f"security.rights.{right}: {name!r} is not a client of allowed_clients "
                                      f"(known: {', '.join(sorted(known)) or 'none'}); use a key file's name or '*'")
                self.grants.setdefault(name, set()).add(right)

    def name_of(self, user_id: str | None) -> str | None:
        """The client name of a ZAP User-Id (the Z85 public key), or None when not listed."""
        return self.clients.get(user_id.encode()) if user_id else None

    def allows(self, client: str | None, cmd: str) -> bool:
        if not self.restricted:
            return client is not None
        right = self.table.get(cmd, "admin")
        if client is None:
            return False
        if right == "read":
            return True
        granted = self.grants.get(client, set()) | self.grants.get("*", set())
        return right in granted or "admin" in granted

    def handlers_for(self, user_id: str | None, handlers: Mapping[str, Callable[[dict[str, Any]], Any]]
                     ) -> Mapping[str, Callable[[dict[str, Any]], Any]]:
        """``handlers`` with each command this client may not run replaced by an ``unauthorised`` error."""
        client = self.name_of(user_id)
        return {cmd: fn if self.allows(client, cmd) else _refuse(cmd, client) for cmd, fn in handlers.items()}


def _refuse(cmd: str, client: str | None) -> Callable[[dict[str, Any]], Any]:
    def refuse(args: dict[str, Any]) -> Any:
        right = COMMAND_RIGHTS.get(cmd, "admin")
        raise ControlError("unauthorised", f"{cmd}: client {client or 'unknown'!r} lacks the right {right!r}; "
                                           f"grant it in [security] rights")
    return refuse


class _AllowList:
    """The ZAP callback: admits a CURVE client whose public key is listed; counts the refused."""

    def __init__(self, clients: Mapping[bytes, str]) -> None:
        self.clients = clients
        self.refused = 0
        self.cond = threading.Condition()

    def callback(self, domain: str, key: bytes) -> bool:
        ok = key in self.clients
        if not ok:
            log.warning("CURVE client %s refused: key not in [security] allowed_clients", key.decode())
            with self.cond:
                self.refused += 1
                self.cond.notify_all()
        return ok


class ServerSecurity:
    """The daemon's CURVE keys, ZAP authenticator (a thread) and access policy; :meth:`close` stops it."""

    def __init__(self, context: zmq.Context[Any], keys: KeyPair, policy: AccessPolicy) -> None:
        self.keys = keys
        self.policy = policy
        self._auth = ThreadAuthenticator(context, log=logging.getLogger(f"{__name__}.zap"))
        self._auth.start()
        self._allow = _AllowList(policy.clients)
        self._auth.configure_curve_callback(ZAP_DOMAIN, self._allow)

    @property
    def refused(self) -> int:
        """Connections refused so far because the client's key is not listed."""
        return self._allow.refused

    def wait_refused(self, n: int, timeout: float) -> bool:
        """Block until ``n`` connections were refused (True) or ``timeout`` s passed (tests, tools)."""
        with self._allow.cond:
            return self._allow.cond.wait_for(lambda: self._allow.refused >= n, timeout)

    def setup_socket(self, sock: zmq.Socket[Any]) -> None:
        """Make ``sock`` a CURVE server (call before bind)."""
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.keys.secret)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.keys.public)
        sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
        # fail closed: without a ZAP handler libzmq would admit every CURVE key
        sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)

    def close(self) -> None:
        self._auth.stop()


def open_security(context: zmq.Context[Any], config: SecurityConfig) -> ServerSecurity | None:
    """The daemon's :class:`ServerSecurity`, or None when ``[security]`` configures no keys."""
    if not config.server_secret_key:
        return None
    keys = load_key(config.server_secret_key, "security.server_secret_key", secret=True)
    policy = AccessPolicy(load_allowed(config.allowed_clients), config.rights)
    return ServerSecurity(context, keys, policy)


@dataclass(frozen=True)
class ClientKeys:
    """A client's CURVE key pair and the daemon's public key."""

    client: KeyPair
    server_public: bytes

    def apply(self, sock: zmq.Socket[Any]) -> None:
        """Make ``sock`` a CURVE client of the daemon (call before connect)."""
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.client.secret)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.client.public)
        sock.setsockopt(zmq.CURVE_SERVERKEY, self.server_public)


def load_client_keys(client_secret_key: Path | str, server_public_key: Path | str) -> ClientKeys:
    """A client's keys from its ``NAME.key_secret`` and the daemon's ``server.key`` (or ``.key_secret``)."""
    return ClientKeys(load_key(client_secret_key, "client key", secret=True),
                      load_key(server_public_key, "server key", secret=False).public)


def make_keys(out: Path | str, name: str) -> dict[str, str]:
    """A new key pair ``out/NAME.key`` (public) and ``out/NAME.key_secret`` (mode 0600); refuses to overwrite."""
    out = Path(out)
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"keys --name: expected a plain file name such as 'operator', found {name!r}")
    public, secret = out / f"{name}.key", out / f"{name}.key_secret"
    for p in (public, secret):
        if p.exists():
            raise ConfigError(f"{p} exists; choose another --name or --out (a key pair is never overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    umask = os.umask(0o077)  # the secret file is never readable by others, not even for a moment
    try:
        pub_file, sec_file = zmq.auth.create_certificates(out, name)
    finally:
        os.umask(umask)
    os.chmod(pub_file, 0o644)
    return {"name": name, "public_key_file": pub_file, "secret_key_file": sec_file,
            "public_key": load_key(pub_file, "public key", secret=False).public.decode()}

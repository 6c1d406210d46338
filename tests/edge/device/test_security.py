"""CURVE on the control and PUB sockets: the allow-list, per-command rights, key files.

Real ZeroMQ on loopback with random ports. A refusal is waited for, never slept for: the ZAP
handler counts the keys it refused (:meth:`ServerSecurity.wait_refused`), and a plain-text client
is waited for through a monitor of the server socket (its handshake fails before ZAP is asked).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from core.config import ConfigError
from edge.client import ClientKeys, ControlClient, StainedCell, Subscriber, load_client_keys
from edge.device.config import load_config
from edge.device.control import ControlServer
from edge.device.errors import ControlError
from edge.device.opsconfig import PublisherConfig, SecurityConfig
from edge.device.publisher import Publisher
from edge.device.security import COMMAND_RIGHTS, AccessPolicy, ServerSecurity, load_key, make_keys, open_security

HANDLERS = {"status": lambda args: {"state": "idle"}, "stop": lambda args: {"dropped": 0},
            "start_scan": lambda args: {"scan_id": 1}}
#: How long a refused client waits for a reply that must not come (after the refusal was seen).
QUIET_S = 0.3


@pytest.fixture
def keydir(tmp_path: Path) -> Path:
    """Key pairs: the daemon (``server``), two listed clients and one stranger (in another folder)."""
    for name in ("server", "operator", "viewer"):
        make_keys(tmp_path / ("server" if name == "server" else "clients"), name)
    make_keys(tmp_path / "strangers", "stranger")
    return tmp_path


def client_keys(keydir: Path, name: str) -> ClientKeys:
    folder = "strangers" if name == "stranger" else "clients"
    return load_client_keys(keydir / folder / f"{name}.key_secret", keydir / "server" / "server.key")


def security_config(keydir: Path, **rights: tuple[str, ...]) -> SecurityConfig:
    return SecurityConfig(server_secret_key=str(keydir / "server" / "server.key_secret"),
                          allowed_clients=(str(keydir / "clients"),), rights=dict(rights))


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    yield context
    context.term()


@pytest.fixture
def secure_server(keydir: Path, ctx: zmq.Context[Any]) -> Iterator[tuple[ControlServer, ServerSecurity]]:
    """A CURVE control server, served by a thread, where only ``operator`` may scan; ``viewer`` is
    listed with no right."""
    security = open_security(ctx, security_config(keydir, scan=("operator",)))
    assert security is not None
    srv = ControlServer(ctx, "tcp://127.0.0.1:*", HANDLERS, 4096, security)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            srv.serve_once(20)

    thread = threading.Thread(target=serve, name="test-control")
    thread.start()
    yield srv, security
    stop.set()
    thread.join()
    srv.close()
    security.close()


def test_listed_key_with_the_right_runs_state_changing_commands(secure_server: Any, keydir: Path,
                                                                 ctx: zmq.Context[Any]) -> None:
    srv, _ = secure_server
    with ControlClient(srv.endpoint, context=ctx, curve=client_keys(keydir, "operator"), timeout=10.0) as ctl:
        assert ctl.call("status") == {"state": "idle"}
        assert ctl.call("stop") == {"dropped": 0}
        assert ctl.call("start_scan") == {"scan_id": 1}


def test_listed_key_without_the_right_is_unauthorised_but_may_read(secure_server: Any, keydir: Path,
                                                                   ctx: zmq.Context[Any]) -> None:
    srv, _ = secure_server
    with ControlClient(srv.endpoint, context=ctx, curve=client_keys(keydir, "viewer"), timeout=10.0) as ctl:
        assert ctl.call("status") == {"state": "idle"}
        for cmd in ("stop", "start_scan"):
            with pytest.raises(ControlError) as err:
                ctl.call(cmd)
            assert err.value.code == "unauthorised"
            assert err.value.message.startswith(f"{cmd}: client 'viewer' lacks the right 'scan'")


def test_unknown_key_is_refused_and_gets_nothing(secure_server: Any, keydir: Path, ctx: zmq.Context[Any]) -> None:
    srv, security = secure_server
    with ControlClient(srv.endpoint, context=ctx, curve=client_keys(keydir, "stranger"), timeout=QUIET_S) as ctl:
        ctl.sock.send(b"\x80")  # queued until a handshake succeeds, which it never does
        assert security.wait_refused(1, 10.0), "the ZAP handler was never asked about the stranger's key"
        with pytest.raises(ControlError) as err:
            ctl.call("status")
        assert err.value.code == "timeout"
    assert srv.requests == 0


def test_plain_text_client_gets_nothing_from_a_curve_daemon(secure_server: Any, ctx: zmq.Context[Any]) -> None:
    srv, security = secure_server
    failed = zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    # a monitor of a client socket this test owns: the plain-text handshake against CURVE fails
    sock: zmq.Socket[Any] = ctx.socket(zmq.DEALER)
    monitor = sock.get_monitor_socket(failed | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_DISCONNECTED)
    try:
        sock.connect(srv.endpoint)
        sock.send(b"\x80")
        assert monitor.poll(10_000), "the plain-text client's handshake neither failed nor ended"
        event = recv_monitor_message(monitor)
        assert event["event"] & (failed | zmq.EVENT_DISCONNECTED), event
        assert sock.poll(int(QUIET_S * 1000)) == 0
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)
    assert srv.requests == 0
    assert security.refused == 0  # refused before ZAP: no key was ever offered


def test_without_the_zap_handler_even_a_listed_key_gets_nothing(keydir: Path, ctx: zmq.Context[Any]) -> None:
    """Fail closed: libzmq admits every CURVE key when no ZAP handler answers, unless the domain is enforced."""
    security = open_security(ctx, security_config(keydir))
    assert security is not None
    bare: zmq.Context[Any] = zmq.Context()  # a context on which no ZAP handler runs
    srv = ControlServer(bare, "tcp://127.0.0.1:*", HANDLERS, 4096, security)
    monitor = srv.sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
                                          | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
    try:
        with ControlClient(srv.endpoint, context=ctx, curve=client_keys(keydir, "operator"), timeout=QUIET_S) as ctl:
            ctl.sock.send(b"\x80")
            assert monitor.poll(10_000), "the server never refused the handshake"
            assert recv_monitor_message(monitor)["event"] == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
            assert srv.serve_once(int(QUIET_S * 1000)) == 0
    finally:
        srv.sock.disable_monitor()
        monitor.close(linger=0)
        srv.close()
        security.close()
        bare.term()


def test_pub_data_reaches_a_listed_subscriber_not_an_unlisted_one(keydir: Path, ctx: zmq.Context[Any]) -> None:
    security = open_security(ctx, security_config(keydir))
    assert security is not None
    pub = Publisher(ctx, PublisherConfig(endpoint="tcp://127.0.0.1:*", linger_ms=0), "secure-daemon", security=security)
    try:
        with (Subscriber(pub.endpoint, topics=("cell",), context=ctx, curve=client_keys(keydir, "viewer")) as good,
              Subscriber(pub.endpoint, topics=("cell",), context=ctx, curve=client_keys(keydir, "stranger")) as bad,
              Subscriber(pub.endpoint, topics=("cell",), context=ctx) as plain):
            assert pub.wait_for_subscribers(1, 10.0), "the listed subscriber never subscribed"
            assert security.wait_refused(1, 10.0), "the unlisted subscriber was never refused"
            stained = np.full((4, 4, 3), 7, np.uint8)
            assert pub.publish("cell", {"cell_id": "c0"}, {"stained": stained})
            got = good.receive(5.0)
            assert isinstance(got, StainedCell) and got.cell_id == "c0"
            np.testing.assert_array_equal(got.stained, stained)
            assert bad.receive(QUIET_S) is None
            assert plain.receive(QUIET_S) is None
            assert pub.stats()["subscriptions"] == 1
    finally:
        pub.close()
        security.close()


def test_curve_example_config_loads() -> None:
    cfg = load_config(Path(__file__).resolve().parents[3] / "deploy/configs/curve.toml")
    assert cfg.security.server_secret_key.endswith("keys/server/server.key_secret")
    assert cfg.security.rights["scan"] == ("operator",) and cfg.security.rights["replay"] == ("*",)


def test_no_rights_table_lets_every_listed_client_run_everything(keydir: Path) -> None:
    pub = load_key(keydir / "clients" / "viewer.key", "k", secret=False).public
    open_policy = AccessPolicy({pub: "viewer"}, {})
    assert open_policy.allows("viewer", "stop") and not open_policy.allows(None, "status")
    strict = AccessPolicy({pub: "viewer"}, {"model": ("*",)})
    assert strict.allows("viewer", "flash") and strict.allows("viewer", "status")
    assert not strict.allows("viewer", "stop") and not strict.allows("viewer", "a_command_added_later")
    admin = AccessPolicy({pub: "viewer"}, {"admin": ("viewer",)})
    assert all(admin.allows("viewer", cmd) for cmd in [*COMMAND_RIGHTS, "a_command_added_later"])


def test_rights_name_known_rights_and_clients(keydir: Path) -> None:
    pub = load_key(keydir / "clients" / "viewer.key", "k", secret=False).public
    with pytest.raises(ConfigError, match=r"security.rights.flash: unknown right; valid: scan, model"):
        AccessPolicy({pub: "viewer"}, {"flash": ("viewer",)})
    with pytest.raises(ConfigError, match=r"security.rights.scan: 'nobody' is not a client"):
        AccessPolicy({pub: "viewer"}, {"scan": ("nobody",)})


def test_bad_key_files_name_the_key(keydir: Path, ctx: zmq.Context[Any]) -> None:
    server = keydir / "server"
    cases = {
        "missing": (SecurityConfig(str(server / "nope.key_secret"), (str(keydir / "clients"),)),
                    r"security.server_secret_key: key file .*nope.key_secret not found"),
        "public only": (SecurityConfig(str(server / "server.key"), (str(keydir / "clients"),)),
                        r"security.server_secret_key: .*server.key holds only a public key"),
        "empty dir": (SecurityConfig(str(server / "server.key_secret"), (str(keydir / "strangers" / "none"),)),
                      r"security.allowed_clients: key file .*none not found"),
    }
    garbage = keydir / "garbage.key"
    garbage.write_text("public-key = \"not-a-key\"\n")
    cases["garbage"] = (SecurityConfig(str(server / "server.key_secret"), (str(garbage),)),
                        r"security.allowed_clients: .*garbage.key holds no valid public key")
    (keydir / "empty").mkdir()
    cases["no keys"] = (SecurityConfig(str(server / "server.key_secret"), (str(keydir / "empty"),)),
                        r"security.allowed_clients: directory .*empty holds no \*.key")
    for cfg, pattern in cases.values():
        with pytest.raises(ConfigError, match=pattern):
            open_security(ctx, cfg)


def test_mismatched_secret_key_is_refused(keydir: Path) -> None:
    a = (keydir / "clients" / "viewer.key_secret").read_text()
    b = (keydir / "clients" / "operator.key_secret").read_text()
    mixed = keydir / "mixed.key_secret"
    mixed.write_text(a.split("secret-key")[0] + "secret-key" + b.split("secret-key")[1])
    with pytest.raises(ConfigError, match=r"client key: in .*mixed.key_secret the public key does not belong"):
        load_client_keys(mixed, keydir / "server" / "server.key")


def test_security_section_checks() -> None:
    assert SecurityConfig().server_secret_key == ""  # plain text by default
    with pytest.raises(ConfigError, match=r"security.allowed_clients: expected at least one client key"):
        SecurityConfig(server_secret_key="s.key_secret")
    with pytest.raises(ConfigError, match=r"security.server_secret_key: expected a secret key file"):
        SecurityConfig(allowed_clients=("clients",))
    with pytest.raises(ConfigError, match=r"security.rights: expected rights.scan = a list of client names"):
        SecurityConfig("s.key_secret", ("c",), {"scan": "operator"})  # type: ignore[dict-item]


def test_make_keys_never_overwrites_and_hides_the_secret(tmp_path: Path) -> None:
    res = make_keys(tmp_path / "k", "operator")
    assert Path(res["secret_key_file"]).stat().st_mode & 0o077 == 0
    assert load_key(res["public_key_file"], "k", secret=False).public.decode() == res["public_key"]
    with pytest.raises(ConfigError, match="exists; choose another --name"):
        make_keys(tmp_path / "k", "operator")
    with pytest.raises(ConfigError, match="expected a plain file name"):
        make_keys(tmp_path / "k", "../x")

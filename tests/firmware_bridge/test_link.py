"""Fault injection on the link: a vanished device, garbage, late replies, ERROR[n], reconnects."""

from __future__ import annotations

import os
import select
import socket
import threading
from collections.abc import Iterator

import pytest

from firmware_bridge.client import IlluminateLedArray
from firmware_bridge.emulator import Emulator, EmulatorServer
from firmware_bridge.errors import DeviceTimeout, DeviceVanished, FirmwareError, LinkError, ProtocolError
from firmware_bridge.link import Link, LinkConfig

from .conftest import FAST


def test_device_killed_mid_command(array: IlluminateLedArray, served: EmulatorServer) -> None:
    served.die_on_next_command()
    with pytest.raises(DeviceVanished, match=r"l\.3") as exc:
        array.light([3])
    assert served.url in str(exc.value)
    assert served.emulator.commands_seen[-1] == "l.3"  # it arrived; the device died before answering
    with pytest.raises(LinkError, match="did not come back"):
        array.light([4])


def test_reconnect_reapplies_settings(thesis: Emulator) -> None:
    server = thesis.serve_tcp()
    arr = IlluminateLedArray(server.url, config=FAST, emulator=thesis)
    try:
        arr.set_brightness(100)
        server.die_on_next_command()
        with pytest.raises(DeviceVanished):
            arr.light([1])
        server.close()
        thesis.power_on()  # the controller rebooted while unplugged
        assert not thesis.machine and thesis.brightness_setting == 255
        server = thesis.serve_tcp(port=server.port)
        arr.light([2])
        assert arr.link.reconnects == 1
        assert thesis.machine and thesis.brightness_setting == 100 and thesis.lit() == (2,)
    finally:
        arr.close()
        server.close()


def test_reboot_banner_mid_session_reapplies_settings(array: IlluminateLedArray, served: EmulatorServer) -> None:
    emu = served.emulator
    array.set_brightness(77)
    emu.power_on()
    served.inject(emu.banner())
    assert served.injected.wait(5.0)
    array.send_line("version")  # the banner arrives before or with this reply
    array.light([6])
    assert emu.machine and emu.brightness_setting == 77 and emu.lit() == (6,)


def test_garbage_is_reported_and_dropped(array: IlluminateLedArray, served: EmulatorServer) -> None:
    served.inject(b"\xff\xfe\x00noise\n\x07\n")
    assert served.injected.wait(5.0)
    array.light([8])
    assert served.emulator.lit() == (8,)
    assert array.link.garbage and array.link.garbage[0].reason == "non-ASCII bytes"
    assert array.identify().props.led_count == 43


def test_late_reply_is_not_given_to_the_next_command(array: IlluminateLedArray, served: EmulatorServer) -> None:
    emu = served.emulator
    emu.fault_delay_s = 0.7
    with pytest.raises(DeviceTimeout, match=r"'l\.1'") as exc:
        array.light([1])
    assert served.url in str(exc.value)
    emu.fault_delay_s = 0.0
    assert array.send_line("na").lines == ("NA.40",)  # not the late "-==-" of l.1
    array.light([2])
    assert emu.lit() == (2,)


def test_swallowed_command_times_out_then_link_resyncs(array: IlluminateLedArray, served: EmulatorServer) -> None:
    served.emulator.fault_hang = 1
    with pytest.raises(DeviceTimeout):
        array.light([1])
    array.light([2])
    assert served.emulator.lit() == (2,)


def test_error_reply_is_raised_and_link_stays_usable(array: IlluminateLedArray, served: EmulatorServer) -> None:
    served.emulator.fault_error = 11
    with pytest.raises(FirmwareError) as exc:
        array.light([1])
    assert exc.value.code == 11 and "l.1" in str(exc.value)
    array.light([3])
    assert served.emulator.lit() == (3,)


@pytest.fixture
def foreign_pty() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


@pytest.fixture
def foreign_tcp() -> Iterator[str]:
    """A device that is not illuminate: a banner on connect, 'Unknown command' to every line."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"FooScope stage controller v1.0 ready\n")
            while data := conn.recv(4096):
                conn.sendall(b"Unknown command: " + data.strip() + b"\n")

    t = threading.Thread(target=serve, name="foreign-device")
    t.start()
    yield f"socket://127.0.0.1:{listener.getsockname()[1]}"
    t.join(timeout=5.0)
    listener.close()


def test_non_illuminate_device_is_refused_with_what_it_said(foreign_tcp: str) -> None:
    # pyserial may discard a banner that arrived before open() finished; then the answer to
    # 'machine' is what gives the device away. Either way the error quotes the device.
    with pytest.raises(ProtocolError, match=r"FooScope|Unknown command: machine"):
        IlluminateLedArray(foreign_tcp, config=FAST)


def test_timeout_quotes_what_a_foreign_device_said(foreign_pty: tuple[int, str]) -> None:
    master, path = foreign_pty
    link = Link(path, FAST)
    link.open()  # raw link, no hook

    def answer() -> None:  # a device that answers every line without the illuminate terminator
        if select.select([master], [], [], 5.0)[0]:
            os.read(master, 100)
            os.write(master, b"Unknown command\n")

    t = threading.Thread(target=answer, name="foreign-answer")
    t.start()
    try:
        with pytest.raises(DeviceTimeout, match="Unknown command"):
            link.request(b"machine\n", timeout=0.5)
    finally:
        t.join(timeout=5.0)
        link.close()


def test_silent_device_is_refused(foreign_pty: tuple[int, str]) -> None:
    with pytest.raises(ProtocolError, match="did not answer 'machine'"):
        IlluminateLedArray(foreign_pty[1], config=FAST)


def test_missing_port_is_a_clear_error(tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(LinkError, match="cannot open"):
        Link(f"{tmp_path}/ttyACM9", FAST).open()


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        LinkConfig(timeout_s=0)

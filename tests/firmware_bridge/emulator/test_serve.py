"""Transport behaviour of the served emulator (illuminate v2.32), driven through a raw pty (no link in between)."""

from __future__ import annotations

import os

import pytest

from firmware_bridge.client import IlluminateLedArray
from firmware_bridge.emulator import EmulatorServer

from ..conftest import FAST, read_until


def test_a_line_split_across_writes_runs_a_corrupted_command(pty_server: EmulatorServer, raw_fd: int) -> None:
    emu = pty_server.emulator
    pty_server.split_window_s = 60.0  # the rest always counts as "within ~1-2 ms"
    os.write(raw_fd, b"l.1")
    assert pty_server.partial_line_seen.wait(5.0)
    os.write(raw_fd, b"2\n")
    assert read_until(raw_fd, b"-==-\n", 5.0) == b"-==-\n"
    assert emu.lit() == (1,) and pty_server.lines_corrupted == 1  # LED 1, not 12
    os.write(raw_fd, b"version\n")
    assert read_until(raw_fd, b"-==-\n", 5.0) == b"2.32\n-==-\n"  # the rest of the line left nothing behind


def test_a_line_whose_rest_comes_late_is_discarded_without_a_reply(pty_server: EmulatorServer,
                                                                    raw_fd: int) -> None:
    emu = pty_server.emulator
    pty_server.split_window_s = 0.0  # the rest always counts as "later than ~5 ms"
    os.write(raw_fd, b"l.5")
    assert pty_server.partial_line_seen.wait(5.0)
    os.write(raw_fd, b".9\n")
    os.write(raw_fd, b"version\n")
    assert read_until(raw_fd, b"-==-\n", 5.0) == b"2.32\n-==-\n"  # only version answered
    assert pty_server.lines_dropped == 1 and emu.lit() == ()


def test_complete_lines_back_to_back_are_all_answered_in_order(pty_server: EmulatorServer, raw_fd: int) -> None:
    os.write(raw_fd, b"machine\nsb.7\nl.3\nversion\n")
    got = read_until(raw_fd, b"-==-\n", 5.0, count=4)
    assert got == b"Command output set to machine-readable\n-==-\nSB.7\n-==-\n-==-\n2.32\n-==-\n"
    assert pty_server.emulator.lit() == (3,)


@pytest.mark.parametrize("command", ["rseq.5.1", "scf", "scb", "scd"])
def test_sequence_and_scan_commands_discard_queued_input(pty_server: EmulatorServer, raw_fd: int,
                                                        command: str) -> None:
    emu = pty_server.emulator
    os.write(raw_fd, command.encode() + b"\nl.7\n")  # two commands in flight: the second is lost
    assert read_until(raw_fd, b"-==-\n", 5.0).endswith(b"-==-\n")
    os.write(raw_fd, b"version\n")
    assert read_until(raw_fd, b"-==-\n", 5.0) == b"2.32\n-==-\n"
    assert pty_server.bytes_flushed == len(b"l.7\n") and emu.lit() == ()
    assert "l.7" not in emu.commands_seen


@pytest.mark.parametrize(("command", "reply"), [("rseq.50.1", b"ERROR[15]: Command interrupted.\n"),
                                                ("scf.50", b"scan_start:0.:scan_end\n-==-\n")])
def test_any_byte_during_a_sequence_or_scan_stops_it(pty_server: EmulatorServer, raw_fd: int, command: str,
                                                     reply: bytes) -> None:
    emu = pty_server.emulator
    os.write(raw_fd, b"ssl.100\n")
    read_until(raw_fd, b"-==-\n", 5.0)
    for i in range(100):  # bounded: 100 uploads, each waited for with a timeout
        os.write(raw_fd, f"ssv.1.{i % 43}\n".encode())
        assert read_until(raw_fd, b"-==-\n", 5.0).endswith(b"-==-\n")
    start = emu.change_count
    os.write(raw_fd, command.encode() + b"\n")
    assert emu.wait_for_change(start, 5.0) != start  # it is running
    os.write(raw_fd, b" ")  # one byte, not even a command
    assert read_until(raw_fd, reply[-5:], 10.0) == reply  # stopped after the first pattern
    assert emu.lit() == ()


def test_client_is_safe_on_the_v232_parser(pty_server: EmulatorServer) -> None:
    with IlluminateLedArray(pty_server.url, config=FAST, emulator=pty_server.emulator) as arr:
        for i in range(43):  # every command in one write: nothing dropped
            arr.light([i])
        arr.load_sequence([[i] for i in range(10)])
        assert arr.run_sequence(5) == tuple(range(10))
    assert pty_server.lines_dropped == 0 and pty_server.bytes_flushed == 0


def test_tcp_serves_one_client_at_a_time(strict) -> None:  # type: ignore[no-untyped-def]
    import socket

    with strict.serve_tcp() as server:
        a = socket.create_connection(("127.0.0.1", server.port))
        a.sendall(b"version\n")
        assert a.recv(100) == b"2.32\n-==-\n"
        b = socket.create_connection(("127.0.0.1", server.port))
        assert b.recv(100) == b""  # refused while a is connected
        a.close()
        b.close()

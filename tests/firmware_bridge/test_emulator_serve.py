"""Transport quirks of the served emulator, driven through a raw pty (no link in between)."""

from __future__ import annotations

import os

from firmware_bridge.client import IlluminateLedArray
from firmware_bridge.emulator_serve import EmulatorServer

from .conftest import FAST, read_until


def test_a_line_split_across_writes_is_silently_dropped(pty_server: EmulatorServer, raw_fd: int) -> None:
    emu = pty_server.emulator
    os.write(raw_fd, b"l.5")
    assert pty_server.partial_line_seen.wait(5.0)
    os.write(raw_fd, b".9\n")
    os.write(raw_fd, b"version\n")
    assert read_until(raw_fd, b"-==-\n", 5.0) == b"2.32\n-==-\n"  # only version answered
    assert pty_server.lines_dropped == 1 and emu.lit() == ()


def test_sequence_commands_flush_pipelined_input(pty_server: EmulatorServer, raw_fd: int) -> None:
    emu = pty_server.emulator
    os.write(raw_fd, b"rseq.5.1\nl.7\n")  # two commands in flight: the second is lost
    assert read_until(raw_fd, b"-==-\n", 5.0).startswith(b"seq_start:0.1.2.3.4.5.6:seq_end")
    os.write(raw_fd, b"version\n")
    assert read_until(raw_fd, b"-==-\n", 5.0) == b"2.32\n-==-\n"
    assert pty_server.bytes_flushed == len(b"l.7\n") and emu.lit() == ()
    assert "l.7" not in emu.commands_seen


def test_input_during_a_sequence_interrupts_it(pty_server: EmulatorServer, raw_fd: int) -> None:
    emu = pty_server.emulator
    os.write(raw_fd, b"ssl.100\n")
    read_until(raw_fd, b"-==-\n", 5.0)
    for i in range(100):
        os.write(raw_fd, f"ssv.1.{i % 43}\n".encode())
        read_until(raw_fd, b"-==-\n", 5.0)
    start = emu.change_count
    os.write(raw_fd, b"rseq.50.1\n")
    emu.wait_for_change(start, 5.0)  # the sequence is running
    os.write(raw_fd, b"x\n")
    report, x_reply = read_until(raw_fd, b"-==-\n", 10.0, count=2).split(b"-==-\n")[:2]
    shown = report.split(b":")[1].split(b".")
    assert 0 < len(shown) < 100  # fewer indices than asked: the quirk the client checks for
    assert x_reply == b""  # then x runs: a bare terminator
    assert emu.lit() == ()


def test_client_is_safe_on_a_quirky_device(pty_server: EmulatorServer) -> None:
    with IlluminateLedArray(pty_server.url, config=FAST, emulator=pty_server.emulator) as arr:
        for i in range(43):  # every command in one write: nothing dropped
            arr.light([i])
        arr.load_sequence([[i] for i in range(10)])
        assert arr.run_sequence(5) == tuple(range(10))
    assert pty_server.lines_dropped == 0 and pty_server.bytes_flushed == 0


def test_tcp_serves_one_client_at_a_time(thesis) -> None:  # type: ignore[no-untyped-def]
    import socket

    with thesis.serve_tcp() as server:
        a = socket.create_connection(("127.0.0.1", server.port))
        a.sendall(b"version\n")
        assert a.recv(100) == b"2.32\n-==-\n"
        b = socket.create_connection(("127.0.0.1", server.port))
        assert b.recv(100) == b""  # refused while a is connected
        a.close()
        b.close()

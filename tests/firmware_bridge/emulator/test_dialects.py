"""The command tables and the dispatcher, on a bare state (no Emulator, no thread, no transport)."""

from __future__ import annotations

import pytest

from firmware_bridge import get_profile
from firmware_bridge.emulator.dialects import V1_COMMANDS, V2_COMMANDS, run_line
from firmware_bridge.emulator.parsing import InstantPacer
from firmware_bridge.emulator.state import EmulatorState, lit


def test_a_bare_state_runs_commands() -> None:
    s = EmulatorState(get_profile("thesis-43"))
    assert run_line(s, "l.5.9", InstantPacer()) == b"-==-\n" and lit(s) == (5, 9)
    assert run_line(s, "ver", InstantPacer()) == b"ERROR[16]: Invalid command.\n"
    assert list(s.commands_seen) == ["l.5.9", "ver"]


def test_the_dialects_differ_only_in_rseq() -> None:
    assert V1_COMMANDS.keys() == V2_COMMANDS.keys()
    assert {k for k in V2_COMMANDS if V1_COMMANDS[k] is not V2_COMMANDS[k]} == {"rseq"}


@pytest.mark.parametrize(("version", "quirks"), [("2.32", True), ("2.32", False), ("1.9", True), ("1.9", False)])
def test_every_command_answers_on_a_fresh_controller(version: str, quirks: bool) -> None:
    for name in V2_COMMANDS:
        for line in (name, f"{name}.1", f"{name}.1.2.3.4.5.6.7"):
            s = EmulatorState(get_profile("thesis-43"), quirks=quirks, version=version)
            reply = run_line(s, line, InstantPacer())
            assert reply.endswith(b"-==-\n") or reply.startswith(b"ERROR"), (line, reply)

"""Capture plans: exact command lists for host-paced and hardware-paced stacks."""

from __future__ import annotations

import pytest

from firmware_bridge.emulator import Emulator
from firmware_bridge.errors import ArgumentRangeError
from firmware_bridge.plan import capture_plan, channel_leds, sequence_plan
from firmware_bridge.recipes import resolve_recipe
from firmware_bridge.rigs import get_profile


@pytest.mark.parametrize(("name", "n"), [("full", 74), ("full-nohe", 44), ("le8", 4), ("brightfield", 1)])
def test_host_plan_has_one_command_per_channel(name: str, n: int) -> None:
    recipe = resolve_recipe(name, get_profile("thesis-43"))
    plan = capture_plan(recipe)
    assert len(plan) == n
    bf = get_profile("thesis-43").brightfield_indices
    assert plan[0] == "l." + ".".join(map(str, bf))


def test_darkfield_exposures_share_the_illumination() -> None:
    recipe = resolve_recipe("full", get_profile("thesis-43"))
    plan = capture_plan(recipe)
    names = recipe.channel_names
    k = names.index("led5:low")
    assert names[k + 1] == "led5:high" and plan[k] == plan[k + 1] == "l.5"


def test_sequence_plan_runs_on_the_emulator_and_shows_every_channel() -> None:
    g = get_profile("thesis-43")
    recipe = resolve_recipe("full-nohe", g)
    lines = sequence_plan(recipe, delay_ms=5)
    assert lines[0] == "ssl.44" and lines[-5:] == ["troutputmode.0.1", "troutputmode.1.0", "trinputmode.0.0",
                                                   "trinputmode.1.0", "rseq.5.1"]
    emu = Emulator(g)
    shown: list[tuple[int, ...]] = []
    emu.add_listener(lambda ill, trig: shown.append(ill.leds) if trig else None)
    for line in lines:
        assert emu.handle_line(line).endswith(b"-==-\n"), line
    assert shown == [tuple(sorted(channel_leds(c, recipe))) for c in recipe.channels]


def test_sequence_plan_refuses_a_too_short_period() -> None:
    with pytest.raises(ArgumentRangeError, match=r"5\.\.2000 ms"):
        sequence_plan(resolve_recipe("le8", get_profile("thesis-43")), delay_ms=1)

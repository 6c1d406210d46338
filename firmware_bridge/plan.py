"""Capture plans: the exact command lines that step an LED array through a stack recipe.

Two ways to capture a PLS stack:

* **host-paced** (:func:`capture_plan`): one ``l.`` command per channel, index-aligned with
  ``recipe.channels``; the host waits for each reply, then exposes the camera.
* **hardware-paced** (:func:`sequence_plan`): the patterns are uploaded once (``ssl``/``ssv``) and
  ``rseq`` steps through them, pulsing trigger output 0 at every pattern so the camera exposes
  on the pulse.

The **brightfield pattern** is sent as an explicit ``l.`` list of
``geometry.brightfield_indices`` rather than ``na.<NA×100>`` + ``bf``: the list is exactly the set
the recipe hash covers, whatever the device's ``na``/``sad`` state, and does not depend on the
firmware's float32 rounding of an LED whose NA sits on the objective NA (the firmware's ``bf``
includes NA == NA_obj, our geometry does not).

Low and high exposures of a darkfield LED use the same illumination; the camera changes exposure.
"""

from __future__ import annotations

from firmware_bridge.commands import Commands
from firmware_bridge.recipes import Channel, StackRecipe


def channel_leds(channel: Channel, recipe: StackRecipe) -> tuple[int, ...]:
    """LEDs lit for one channel of ``recipe``."""
    if channel.kind == "brightfield":
        return recipe.geometry.brightfield_indices
    if channel.led is None:
        raise ValueError(f"channel {channel.name!r} has no LED")
    return (channel.led,)


def _commands(recipe: StackRecipe, dialect: str = "v2") -> Commands:
    return Commands(led_count=len(recipe.geometry.leds), channel_count=len(recipe.geometry.channels),
                    dialect=dialect)


def capture_plan(recipe: StackRecipe) -> list[str]:
    """One validated command per channel (without newline), ``plan[k]`` lights channel ``k``."""
    cmds = _commands(recipe)
    return [cmds.led(channel_leds(c, recipe)).decode("ascii").strip() for c in recipe.channels]


def sequence_plan(recipe: StackRecipe, delay_ms: int = 20, trigger_every: int = 1, repeats: int = 1,
                  dialect: str = "v2") -> list[str]:
    """Upload + run commands for a hardware-paced stack; ``delay_ms`` is the pattern period (ms, 5..2000).

    ``trigger_every=1`` pulses trigger output 0 at every pattern (mode ``n``: every n-th pattern;
    ``-1`` once per repeat; ``-2`` once at the start); on v2 firmware the modes are configured with
    ``troutputmode``/``trinputmode`` before ``rseq.<delay>.<count>``.
    """
    cmds = _commands(recipe, dialect)
    lines = [cmds.sequence_length(len(recipe.channels))]
    lines += [cmds.sequence_value(channel_leds(c, recipe)) for c in recipe.channels]
    lines += cmds.run_sequence(delay_ms, repeats, trigger_output=(trigger_every,))
    return [b.decode("ascii").strip() for b in lines]

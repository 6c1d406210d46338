"""The client against the emulator over a real pty and over TCP (``array`` is parametrized)."""

from __future__ import annotations

import pytest

from firmware_bridge.client import IlluminateLedArray, LedArray, open_led_array
from firmware_bridge.emulator import Emulator
from firmware_bridge.errors import ArgumentRangeError, FirmwareError, ProtocolError, SequenceInterrupted
from firmware_bridge.recipes import resolve_recipe
from firmware_bridge.rigs import get_profile

from .conftest import FAST


def test_identify_and_geometry(array: IlluminateLedArray) -> None:
    assert isinstance(array, LedArray)
    info = array.identify()
    assert (info.props.led_count, info.props.interface_version, info.firmware_version) == (43, "2.32", "2.32")
    g = array.geometry()
    assert g == get_profile("thesis-43") and array.geometry() is g
    assert array.emulator is not None and array.emulator.machine


def test_light_clear_patterns(array: IlluminateLedArray) -> None:
    emu = array.emulator
    assert emu is not None
    array.light([5, 9])
    assert emu.illumination().leds == (5, 9)
    array.clear()
    assert emu.lit() == ()
    assert array.brightfield(0.4) == emu.lit() == array.geometry().brightfield_indices
    assert array.darkfield() == emu.lit() == array.geometry().darkfield_indices
    array.annulus(0.4, 0.6)
    assert set(emu.lit()) <= set(array.geometry().darkfield_indices)


def test_settings_are_echo_checked(array: IlluminateLedArray) -> None:
    emu = array.emulator
    assert emu is not None
    array.set_brightness(128)
    array.set_color(255, 128, 0)
    array.light([1])
    assert emu.illumination().brightness == {"r": 128 / 255, "g": 64 / 255, "b": 0.0}
    array.set_autoclear(False)
    array.light([2])
    assert emu.lit() == (1, 2)


def test_out_of_range_never_reaches_the_wire(array: IlluminateLedArray) -> None:
    emu = array.emulator
    assert emu is not None
    seen = len(emu.commands_seen)
    for call in (lambda: array.light([43]), lambda: array.light([99999]), lambda: array.set_brightness(300),
                 lambda: array.set_na(0), lambda: array.run_sequence(1),
                 lambda: array.send_line("l.300"), lambda: array.set_array_distance(1000)):
        with pytest.raises(ArgumentRangeError, match=r"valid|range"):
            call()
    assert len(emu.commands_seen) == seen


def test_sequence_with_trigger_output(array: IlluminateLedArray) -> None:
    emu = array.emulator
    assert emu is not None
    array.load_sequence([[i] for i in range(6)] + [[]])
    assert array.run_sequence(5, repeats=2, trigger_output=(1,)) == tuple(range(7)) * 2
    assert emu.trigger_pulses[0] == 14 and emu.lit() == ()
    assert array.step_sequence() == 1 and emu.lit() == (0,)
    array.reset_sequence()
    array.trigger(1)
    assert emu.trigger_pulses[1] == 1


def test_interrupted_sequence_is_detected(array: IlluminateLedArray) -> None:
    emu = array.emulator
    assert emu is not None
    array.load_sequence([[i] for i in range(8)])
    emu.fault_interrupt_after = 3
    with pytest.raises(SequenceInterrupted, match=r"ERROR\[15\]") as exc:  # v2.32 says ERROR[15]
        array.run_sequence(5)
    assert isinstance(exc.value.__cause__, FirmwareError) and exc.value.__cause__.code == 15


def test_sequence_on_v2_configures_triggers_first_and_sends_at_most_two_rseq_arguments(
        array: IlluminateLedArray) -> None:
    emu = array.emulator
    assert emu is not None
    array.load_sequence([[1], [2]])
    array.set_trigger_pulse_width(250)
    assert array.run_sequence(5, 3, trigger_output=(1, -2), trigger_input=(0, -1)) == (0, 1) * 3
    sent = list(emu.commands_seen)[-5:]
    assert sent == ["troutputmode.0.1", "troutputmode.1.-2", "trinputmode.0.0", "trinputmode.1.-1", "rseq.5.3"]
    assert emu.trigger_pulses == [6, 1] and emu.trigger_pulse_width_us[0] == 250
    array.setup_trigger(1, 0, -1, 400, 20)
    assert (emu.trigger_output_modes[1], emu.trigger_pulse_width_us[1], emu.trigger_delay_us[1]) == (-1, 400, 20)


def test_old_firmware_gets_trigger_modes_on_rseq() -> None:
    old = Emulator(get_profile("thesis-43"), version="1.9")
    with old.serve_pty() as server, IlluminateLedArray(server.url, config=FAST, emulator=old) as arr:
        assert arr.commands.dialect == "v1"
        arr.load_sequence([[i] for i in range(8)])
        assert arr.run_sequence(5, trigger_output=(1,)) == tuple(range(8))
        assert old.commands_seen[-1] == "rseq.5.1.1.0" and old.trigger_pulses[0] == 8
        old.fault_interrupt_after = 3  # the old firmware reports fewer indices and leaves the pattern lit
        with pytest.raises(SequenceInterrupted, match="3 of 8"):
            arr.run_sequence(5)


def test_over_current_success_reply_is_an_error(array: IlluminateLedArray) -> None:
    emu = array.emulator
    assert emu is not None
    array.set_color(255)
    array.send_line("smc.1", validate=False)
    with pytest.raises(FirmwareError, match="exceeds maximum current") as exc:
        array.fill()
    assert exc.value.code == 0 and emu.lit() == ()
    array.light([4])  # the link is in step: the next command gets its own reply
    assert emu.lit() == (4,)


def test_plan_matches_the_recipe(array: IlluminateLedArray) -> None:
    recipe = resolve_recipe("full-nohe", array.geometry())
    plan = array.plan(recipe)
    assert len(plan) == len(recipe) == 44
    assert plan[0] == "l." + ".".join(map(str, array.geometry().brightfield_indices))
    for line in plan:  # every planned command runs and lights what the channel needs
        array.send_line(line)
    assert array.emulator is not None and array.emulator.lit() == (recipe.channels[-1].led,)


def test_sim_url_on_any_profile() -> None:
    with open_led_array("sim://sci-round-257", config=FAST) as arr:
        assert arr.identify().props.led_count == 257
        assert len(arr.geometry().brightfield_indices) == 25
        with pytest.raises(ArgumentRangeError, match="single colour"):
            arr.set_color(10)


@pytest.mark.parametrize("url", ["sim://nope", "sim://thesis-43?color=1", ""])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        open_led_array(url, config=FAST)


def test_unsupported_interface_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("firmware_bridge.emulator.FIRMWARE_VERSION", "3.01")
    emu = Emulator(get_profile("thesis-43"))
    with emu.serve_pty() as server, pytest.raises(ProtocolError, match=r"3\.01"):
        IlluminateLedArray(server.url, config=FAST)

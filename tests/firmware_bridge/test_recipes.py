"""Stack recipes: table 3.1 of the seed, channel order, content hashes and sub-recipes."""

from __future__ import annotations

import pytest

from firmware_bridge.errors import RecipeError
from firmware_bridge.recipes import RECIPES, Channel, RecipeSpec, resolve_recipe
from firmware_bridge.rigs import get_profile

THESIS = get_profile("thesis-43")


@pytest.mark.parametrize(
    ("recipe", "images"),
    [("full", 74), ("full-nohe", 44), ("le36", 44), ("le36-nohe", 29), ("le18", 14), ("le8", 4), ("brightfield", 1)],
)
def test_seed_table_3_1(recipe: str, images: int) -> None:
    assert len(resolve_recipe(recipe, THESIS)) == images


def test_channel_order_is_brightfield_then_leds_by_index_low_before_high() -> None:
    full = resolve_recipe("full", THESIS)
    assert full.channel_names[:6] == ("bf", "led0", "led1", "led2", "led3", "led4")
    assert full.channel_names[6:8] == ("led5:low", "led5:high")
    assert full.leds == tuple(range(43))
    nohe = resolve_recipe("full-nohe", THESIS)
    assert "led5:high" not in nohe.channel_names and "led5:low" in nohe.channel_names


def test_hash_is_stable_and_tracks_content() -> None:
    a, b = resolve_recipe("full-nohe", THESIS), resolve_recipe("full-nohe", get_profile("thesis-43"))
    assert a.hash == b.hash and len(a.hash) == 16
    assert a.hash != resolve_recipe("full", THESIS).hash
    assert a.hash != resolve_recipe("full-nohe", THESIS.with_objective(0.3)).hash


def test_sub_recipes_index_into_a_bigger_capture() -> None:
    full = resolve_recipe("full", THESIS)
    for name in RECIPES:
        sub = resolve_recipe(name, THESIS)
        idx = full.indices_of(sub)
        assert [full.channel_names[i] for i in idx] == list(sub.channel_names)
    with pytest.raises(RecipeError, match="does not hold"):
        resolve_recipe("le18", THESIS).indices_of(full)
    with pytest.raises(RecipeError, match="same geometry"):
        full.indices_of(resolve_recipe("na0-0.3", get_profile("sci-round-257")))


def test_na_range_recipes_for_other_arrays() -> None:
    g = get_profile("sci-round-257")
    low = resolve_recipe("na0-0.3-nohe", g)
    assert all(c.exposure in ("normal", "low") for c in low.channels)
    assert all(g.leds[c.led].na <= 0.3 + 1e-6 for c in low.channels if c.led is not None)
    both = resolve_recipe("na0-0.3", g)
    assert len(both) - len(low) == sum(1 for c in low.channels if c.exposure == "low")


def test_unknown_and_empty_recipes_are_refused() -> None:
    with pytest.raises(RecipeError, match="valid recipes: full, full-nohe"):
        resolve_recipe("full-no-he", THESIS)
    with pytest.raises(RecipeError, match="selects no image"):
        resolve_recipe(RecipeSpec("none", "", max_na=0.95, min_na=0.9, brightfield=False), THESIS)
    with pytest.raises(RecipeError, match="NA range"):
        RecipeSpec("x", "", max_na=0.2, min_na=0.5)


def test_channel_names_round_trip() -> None:
    for ch in resolve_recipe("full", THESIS).channels:
        assert Channel.parse(ch.name) == ch
    with pytest.raises(RecipeError, match="malformed"):
        Channel.parse("led:5")

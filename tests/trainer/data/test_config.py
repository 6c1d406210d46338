"""The build config: TOML, unknown keys and bad values rejected by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ConfigError
from trainer.data.config import PHOTO_METHOD, PHOTO_STAGE2, BuildConfig, WbcConfig, load_build_config, photo_finder


def test_defaults_and_toml_round_trip(tmp_path: Path) -> None:
    assert load_build_config(None) == BuildConfig()
    p = tmp_path / "b.toml"
    p.write_text('[wbc]\nmethod = "hsv"\nhue_deg = [190, 330]\n[hr]\nscales = [1, 1.01]\n[pls]\naction = "reject"\n')
    cfg = load_build_config(p)
    assert cfg.wbc.method == "hsv" and cfg.wbc.hue_deg == (190.0, 330.0) and cfg.hr.scales == (1.0, 1.01)
    assert BuildConfig.from_dict({k: {f: list(v) if isinstance(v, tuple) else v for f, v in sec.items()}
                                  for k, sec in cfg.to_dict().items()}) == cfg


@pytest.mark.parametrize(("data", "message"), [
    ({"wbc": {"colour": 1}}, "wbc.colour: unknown key"),
    ({"regstration": {}}, r"unknown section\(s\) regstration; valid sections: registration"),
    ({"align": {"crop_px": 63}}, "align.crop_px: expected an even number"),
    ({"align": {"search_px": "5"}}, "align.search_px: expected an integer"),
    ({"pls": {"action": "drop"}}, "pls.action: expected flag or reject"),
    ({"wbc": {"min_area_um2": 300.0}}, "wbc.min_area_um2/max_area_um2"),
    ({"hr": {"gaussian_ksize": 8}}, "hr.gaussian_ksize: expected an odd number"),
])
def test_bad_values_are_named(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BuildConfig.from_dict(data)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_build_config(tmp_path / "none.toml")
    (tmp_path / "bad.toml").write_text("[wbc\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_build_config(tmp_path / "bad.toml")


def test_photo_finder_default_and_named_methods() -> None:
    """No method named: the photo default and its check; a named method runs as named, its check off
    unless one is asked for. The dataset builder's own default is unaffected."""
    assert photo_finder(None, None) == (PHOTO_METHOD, PHOTO_STAGE2) == ("cnn", "shipped")
    assert photo_finder(None, "off") == ("cnn", "off")
    assert photo_finder("net", None) == ("net", "off")
    assert photo_finder("net", "shipped") == ("net", "shipped")
    assert photo_finder("cnn", None) == ("cnn", "off")
    assert WbcConfig().method == "od" and WbcConfig().stage2 == "off"

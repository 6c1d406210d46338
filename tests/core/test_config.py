from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from core.config import ConfigError, build_section, build_sections, check, read_toml


@dataclass(frozen=True)
class Section:
    mode: Literal["host", "sequence"] = "host"
    rate: float = 1.0
    size: tuple[int, int] = (4, 4)
    names: tuple[str, ...] = ()
    limit: int | None = None

    def __post_init__(self) -> None:
        check("sec", self, rate=(self.rate > 0, "> 0"))


def test_values_are_converted_by_their_field_types() -> None:
    s = build_section(Section, {"mode": "sequence", "rate": 2, "size": [8, 6], "names": ["a"], "limit": 3}, "sec")
    assert s == Section("sequence", 2.0, (8, 6), ("a",), 3) and isinstance(s.rate, float)
    assert build_section(Section, {}, "sec").limit is None


@pytest.mark.parametrize(("table", "message"), [
    ({"mode": "fast"}, "sec.mode: expected one of ['host', 'sequence'], found 'fast'"),
    ({"rate": "2"}, "sec.rate: expected a number, found '2'"),
    ({"rate": 0}, "sec.rate: expected > 0, found 0.0"),
    ({"size": [1]}, "sec.size: expected a list of 2 values, found [1]"),
    ({"limit": 1.5}, "sec.limit: expected an integer, found 1.5"),
    ({"colour": 1}, "sec.colour: unknown key; valid keys of [sec]: mode, rate, size, names, limit"),
])
def test_errors_name_the_key_the_value_and_what_was_expected(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_section(Section, table, "sec")
    assert str(err.value) == message


def test_sections_and_files(tmp_path: Path) -> None:
    assert build_sections({"sec": {"rate": 3}}, {"sec": Section})["sec"].rate == 3.0
    with pytest.raises(ConfigError, match="unknown section"):
        build_sections({"other": {}}, {"sec": Section})
    (tmp_path / "bad.toml").write_text("[sec\n")
    with pytest.raises(ConfigError, match=r"bad\.toml is not valid TOML"):
        read_toml(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="not found"):
        read_toml(tmp_path / "missing.toml")

"""README's configuration table stays true to the settings the code reads."""

from __future__ import annotations

from pathlib import Path

from config.settings import FIELDS

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_every_setting_is_documented():
    for field in FIELDS:
        flag = "--" + field.name.replace("_", "-")
        assert f"| `{field.env}` | `{flag}` |" in README, field.env


def test_no_undocumented_variables_in_the_table():
    documented = {
        line.split("`")[1]
        for line in README.splitlines()
        if line.startswith("| `") and line.split("`")[1].isupper()
    }
    assert documented == {f.env for f in FIELDS}

"""The README's settings table is the settings of core/settings.py, and each variable works."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from myhibachi.core.settings import Settings, env_table

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_settings() -> list[tuple[str, str, str]]:
    text = README.read_text()
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) == 3 and cells[0].startswith("`"):
            rows.append((cells[0].strip("`"), cells[1].strip("`"), cells[2]))
    return rows


def test_readme_settings_table_lists_exactly_the_settings():
    expected = env_table()
    table = "\n".join(f"| `{v}` | {('`' + d + '`') if d else ''} | {desc} |" for v, d, desc in expected)
    assert readme_settings() == expected, f"README.md's Settings table should read:\n{table}"


def test_the_readme_starts_with_the_two_commands():
    blocks = re.findall(r"```\n(.*?)\n```", README.read_text(), re.S)
    assert blocks[:2] == [
        "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && myhibachi up",
        "bash .ci/run",
    ]


# Settings whose values are checked get a valid example instead of a generic one.
EXAMPLES = {
    "MYHIBACHI_PII_KEYS": "k2:" + "A" * 43,
    "MYHIBACHI_BUSINESS_OPEN": "09:30",
    "MYHIBACHI_BUSINESS_CLOSE": "21:30",
    "MYHIBACHI_BOOKING_MAX_DURATION_MINUTES": "600",
    "MYHIBACHI_CURRENCY": "CAD",
    "MYHIBACHI_LOG_FORMAT": "text",
}


@pytest.mark.parametrize("variable", [row[0] for row in env_table()])
def test_each_documented_variable_sets_its_setting(variable, monkeypatch):
    for name, _, _ in env_table():  # CI exports some (MYHIBACHI_STRICT_PLUGINS=1)
        monkeypatch.delenv(name, raising=False)
    field = next(name for name, info in Settings.model_fields.items()
                 if variable in ((info.validation_alias.choices[0],) if info.validation_alias else ())
                 or variable == f"MYHIBACHI_{name.upper()}")
    before = getattr(Settings(), field)
    value = EXAMPLES.get(variable) or {bool: str(not before).lower(), int: "7"}.get(type(before), "/srv/example-value")
    monkeypatch.setenv(variable, value)
    after = getattr(Settings(), field)
    assert after != before and str(after).lower().startswith(value.lower()[:5])

"""Every install hint works from what the repository offers (no release on PyPI)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from flyautoscaler._extras import EXTRAS, install_hint

ROOT = Path(__file__).resolve().parent.parent
#: Where hints are written: the package's messages and docstrings, and the docs.
SCANNED = sorted(
    [
        *ROOT.glob("flyautoscaler/**/*.py"),
        ROOT / "README.md",
        *ROOT.glob("docs/*.md"),
        *ROOT.glob("examples/*"),
        ROOT / "Dockerfile",
    ]
)
#: ``pip install flyautoscaler`` or ``pip install 'flyautoscaler[redis]'``: by name
#: from an index, where no release is (a ``... @ git+https://...`` or
#: ``@ file://...`` reference would be fine).
BY_NAME = re.compile(
    r"pip3? install\s+(?:-\S+\s+)*['\"]?flyautoscaler"
    r"(?:\[[^\]]*\])?+(?![\w.\-/])['\"]?+(?!\s*@)"
)


def test_extras_match_pyproject() -> None:
    """The hints' requirements are pyproject.toml's extras, exactly."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = pyproject["project"]["optional-dependencies"]
    assert {name: tuple(declared[name]) for name in EXTRAS} == dict(EXTRAS)


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_hint_names_requirements_and_the_checkout_form(extra: str) -> None:
    """A hint gives the extra's requirements, then the form for a checkout."""
    hint = install_hint(extra)
    assert hint.startswith("pip install " + " ".join(f"'{r}'" for r in EXTRAS[extra]))
    assert f"pip install '.[{extra}]'" in hint
    assert not BY_NAME.search(hint)


def test_no_hint_installs_by_name_from_an_index() -> None:
    """No message or page says to pip install flyautoscaler by name."""
    found = [
        f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {m[0]}"
        for path in SCANNED
        if path.is_file()
        for text in [path.read_text(encoding="utf-8")]
        for m in BY_NAME.finditer(text)
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    "text",
    [
        "pip install flyautoscaler",
        "python3 -m pip install 'flyautoscaler[redis]'",
        'pip install --upgrade "flyautoscaler[all]"',
    ],
)
def test_the_scan_finds_hints_by_name(text: str) -> None:
    """The scan's pattern catches the wrong forms."""
    assert BY_NAME.search(text)


@pytest.mark.parametrize(
    "text",
    [
        "pip install '.[redis]'",
        "pip install 'flyautoscaler[redis] @ file:///src/flyautoscaler'",
        "pip install 'redis>=5'",
        "pip install flyautoscaler-other",
    ],
)
def test_the_scan_lets_working_forms_be(text: str) -> None:
    """Path installs, direct references and the extras' own requirements pass."""
    assert not BY_NAME.search(text)

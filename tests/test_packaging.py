"""The supported Pythons agree: pyproject.toml's metadata and the nox test sessions."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def nox_pythons() -> list[str]:
    """The Pythons noxfile.py tests on (parsed: nox may not be installed)."""
    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    (value,) = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [getattr(t, "id", None) for t in node.targets] == ["PYTHONS"]
    ]
    pythons = ast.literal_eval(value)
    assert isinstance(pythons, list)
    return [str(p) for p in pythons]


def test_classifiers_list_the_pythons_the_tests_run_on() -> None:
    """Each Python the nox tests run on has a classifier, and no other does."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    classifiers = project["project"]["classifiers"]
    listed = [
        m[1]
        for c in classifiers
        if (m := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c))
    ]
    assert listed == nox_pythons()


def test_requires_python_starts_at_the_oldest_tested() -> None:
    """requires-python's lower bound is the oldest Python the tests run on."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["requires-python"] == f">={nox_pythons()[0]}"

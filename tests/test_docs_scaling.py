"""docs/scaling.md: a block prints what the page says; its YAML is valid.

(Every block of every page runs in tests/test_docs.py; this page also shows
output, and settings, that are checked here.)"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
import yaml

from flyautoscaler.config import load_config

PAGE = Path(__file__).resolve().parent.parent / "docs" / "scaling.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)


def blocks() -> list[tuple[str, str]]:
    """The page's fenced blocks as (language, text), in order."""
    return BLOCK.findall(PAGE.read_text(encoding="utf-8"))


def python_blocks() -> list[tuple[str, str | None]]:
    """Each Python block, with the ``text`` block that follows it, if any."""
    found = blocks()
    out = []
    for i, (language, text) in enumerate(found):
        if language == "python":
            after = found[i + 1] if i + 1 < len(found) else None
            out.append((text, after[1] if after and after[0] == "text" else None))
    return out


@pytest.mark.parametrize(
    ("code", "printed"), [(c, p) for c, p in python_blocks() if p is not None]
)
def test_python_block_prints_the_page_text(code: str, printed: str):
    """A block followed by a text block prints exactly that text."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(PAGE), "exec"), {"__name__": "docs"})  # noqa: S102
    assert out.getvalue() == printed


def test_yaml_blocks_are_valid_settings(tmp_path: Path):
    """Each YAML block, added to a minimal configuration, loads and validates."""
    for language, text in blocks():
        if language != "yaml":
            continue
        config = tmp_path / "fas.yml"
        base = {
            "app-name": "my-app",
            "metric-collectors": [
                {
                    "type": "prometheus",
                    "metric-name": "cpu",
                    "address": "http://127.0.0.1:9",
                    "query": "avg(cpu)",
                }
            ],
        }
        config.write_text(yaml.safe_dump(base) + text, encoding="utf-8")
        load_config(path=config, environ={}).validate()

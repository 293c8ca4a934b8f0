"""Every Python block of README.md and docs/*.md runs, as a reader would run it.

Each page runs in its own namespace, block after block in page order, as if
pasted into one Python prompt (Sybil parses the Markdown and MyST pages). A
block that defines ``test_*`` functions (the pages about testing) has them
called right after it. Each page runs in an empty temporary directory, and
no block may open a connection beyond the loopback interface.

Markers, in comments a reader does not see (``% ...`` in MyST pages,
``<!-- ... -->`` in the README):

- ``fake-fly``: the blocks after it talk to the fake Fly API instead of a real
  account: ``FAS_API_TOKEN`` and ``FLY_API_TOKEN`` hold the fake's token,
  ``FLY_API_BASE_URL`` and ``FLY_FLAPS_BASE_URL`` point at a
  :class:`~flyautoscaler.testing.FakeMachinesServer` with app ``my-app`` (four
  stopped Machines) in organization ``my-org``, and ``FAS_PROMETHEUS_ADDRESS``
  at a stub Prometheus on 127.0.0.1.
- ``skip: next if(not installed("redis"), reason=...)`` (Sybil's): the next
  block needs an optional extra, and is skipped where it is not installed.
- ``invisible-code-block: python`` (Sybil's): set-up a page needs and does not
  show.
"""

from __future__ import annotations

import code
import importlib.util
import logging
import os
import socket
import traceback
import unittest
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sybil import Document, Example, Region, Sybil
from sybil.parsers.markdown.lexers import DirectiveInHTMLCommentLexer
from sybil.parsers.myst import PythonCodeBlockParser, SkipParser
from sybil.parsers.myst.lexers import DirectiveInPercentCommentLexer

import flyautoscaler as fas
from factories import machine
from flyautoscaler.testing import FakeMachinesServer
from test_cli import StubPrometheus

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FAKE_TOKEN = "fo1_docs-fake-token"  # noqa: S105 - the fake server's token
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class FakeFly:
    """The fake Fly API (and a stub Prometheus) the ``fake-fly`` blocks talk to."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.server = FakeMachinesServer(token=FAKE_TOKEN).start()
        self.server.add_app(
            "my-app", "my-org", machines=[machine(f"m{n}") for n in range(1, 5)]
        )
        self.prometheus = StubPrometheus()
        for name, value in {
            "FAS_API_TOKEN": FAKE_TOKEN,
            "FLY_API_TOKEN": FAKE_TOKEN,
            "FLY_API_BASE_URL": self.server.url,
            "FLY_FLAPS_BASE_URL": self.server.url,
            "FAS_PROMETHEUS_ADDRESS": self.prometheus.url,
            "FAS_PROMETHEUS_TOKEN": "prometheus-token",
        }.items():
            monkeypatch.setenv(name, value)

    def close(self) -> None:
        """Stop the servers."""
        self.prometheus.close()
        self.server.close()


class Page:
    """What one page's run holds: the fake Fly API once a block asks for it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.fake_fly: FakeFly | None = None

    def use_fake_fly(self) -> None:
        """Start the fake Fly API, once per page."""
        if self.fake_fly is None:
            self.fake_fly = FakeFly(self.monkeypatch)

    def close(self, namespace: dict[str, Any]) -> None:
        """Close what the page's blocks left open, then the fakes."""
        for value in namespace.values():
            if isinstance(value, fas.ReconcilerPool | fas.Reconciler):
                value.close()
        if self.fake_fly is not None:
            self.fake_fly.close()


def _installed(module: str) -> bool:
    """Whether *module* can be imported (an optional extra's library)."""
    return importlib.util.find_spec(module) is not None


def _fake_fly(example: Example) -> None:
    page: Page = example.namespace["__page__"]
    page.use_fake_fly()


def _markers(
    directive: str, evaluator: Callable[[Example], None]
) -> Callable[[Document], Iterable[Region]]:
    """A parser of ``% directive`` and ``<!-- directive -->`` comments."""
    lexers = [
        DirectiveInPercentCommentLexer(directive=directive),
        DirectiveInHTMLCommentLexer(directive=directive),
    ]

    def parse(document: Document) -> Iterable[Region]:
        for lexer in lexers:
            for lexed in lexer(document):
                yield Region(lexed.start, lexed.end, lexed.lexemes, evaluator)

    return parse


SYBIL = Sybil(
    parsers=[PythonCodeBlockParser(), SkipParser(), _markers("fake-fly", _fake_fly)]
)


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse any connection beyond the loopback interface."""
    connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in LOOPBACK:
            raise AssertionError(f"a docs block connects to {host!r}: not loopback")
        connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """Put the logging set-up back as it was: pages configure logging."""
    loggers = [logging.getLogger(), logging.getLogger("flyautoscaler")]
    saved = [(lg, list(lg.handlers), lg.level) for lg in loggers]
    yield
    for logger, handlers, level in saved:
        for handler in list(logger.handlers):
            if handler not in handlers:
                logger.removeHandler(handler)
        logger.setLevel(level)


def run_page(page: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Run every block of *page* in order; return the ``test_*`` functions called.

    Raises:
        AssertionError: A block (or a test it defines) failed; the message
            names the page and the block's line.
    """
    for name in list(os.environ):
        if name.startswith(("FAS_", "FLY_")):
            monkeypatch.delenv(name)
    document = SYBIL.parse(page)
    state = Page(monkeypatch)
    document.namespace["__page__"] = state
    # For ``% skip: next if(not installed("redis"), ...)``: a block that needs an
    # extra is skipped where it is not installed (the tests_minimal session).
    document.namespace["installed"] = _installed
    called: list[str] = []
    try:
        for example in document:
            try:
                try:
                    example.evaluate()
                except unittest.SkipTest:
                    continue  # a block for an extra that is not installed
                tests = [
                    (name, value)
                    for name, value in document.namespace.items()
                    if name.startswith("test_") and callable(value)
                ]
                for name, value in tests:
                    if name not in called:
                        called.append(name)
                        value()
            except Exception as exc:
                where = page.relative_to(ROOT) if page.is_relative_to(ROOT) else page
                raise AssertionError(
                    f"{where}, the block at line {example.line}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
    finally:
        state.close(document.namespace)
    return called


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_blocks_run(
    page: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    loopback_only: None,
    logging_restored: None,
) -> None:
    """Each Python block runs, in page order, sharing the page's namespace."""
    monkeypatch.chdir(tmp_path)
    run_page(page, monkeypatch)


def test_a_failing_block_or_test_fails_naming_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The harness really runs the blocks, and the tests they define."""
    page = tmp_path / "page.md"
    page.write_text(
        "# A page\n\n```python\nx = 1\n```\n\ntext\n\n"
        "```python\ndef test_x_is_two() -> None:\n    assert x == 2\n```\n",
        encoding="utf-8",
    )
    with pytest.raises(AssertionError, match=r"page.md, the block at line 9: "):
        run_page(page, monkeypatch)
    page.write_text(page.read_text(encoding="utf-8").replace("x = 1", "x = 2"))
    assert run_page(page, monkeypatch) == ["test_x_is_two"]


class _Prompt(code.InteractiveConsole):
    """Python's interactive prompt, fed line by line; it records any error."""

    def __init__(self) -> None:
        super().__init__({"__name__": "__console__"})
        self.errors: list[str] = []

    def showsyntaxerror(self, filename: str | None = None, **kwargs: Any) -> None:
        self.errors.append(traceback.format_exc())

    def showtraceback(self) -> None:
        self.errors.append(traceback.format_exc())


def test_the_tutorial_pastes_into_a_python_prompt(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    loopback_only: None,
    logging_restored: None,
) -> None:
    """Each tutorial block, pasted into ``python3``'s prompt line by line, runs.

    A blank line inside an indented block ends it at the prompt (but not in a
    file), so the page must have none there.
    """
    monkeypatch.chdir(tmp_path)
    prompt = _Prompt()
    document = SYBIL.parse(ROOT / "docs" / "tutorial.md")
    for example in document:
        source = example.parsed
        if not isinstance(source, str):
            continue  # a marker, not a block
        for line in source.splitlines():
            prompt.push(line)
        prompt.push("")  # the Enter that ends a pasted block
        assert not prompt.errors, f"the block at line {example.line}:\n{prompt.errors}"
    for value in list(prompt.locals.values()):
        if isinstance(value, fas.ReconcilerPool | fas.Reconciler):
            value.close()

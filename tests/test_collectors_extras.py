"""The collectors (and the coordinators) without their extras (redis-py, temporalio)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from flyautoscaler._extras import install_hint
from flyautoscaler.collectors import RedisListLengthCollector, TemporalCollector


@pytest.mark.parametrize(
    "module",
    ["flyautoscaler.collectors", "flyautoscaler.config", "flyautoscaler.coordination"],
)
def test_import_does_not_load_the_extras(module):
    """Importing these modules loads neither redis-py nor temporalio."""
    code = (
        f"import sys, {module}\n"
        "print(sorted(m for m in ('redis', 'temporalio') if m in sys.modules))"
    )
    result = subprocess.run(  # noqa: S603 - this interpreter, fixed code
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert result.stdout.strip() == "[]"


def test_redis_missing_names_the_install_command(monkeypatch):
    """Without redis-py, building the Redis collector says how to install it."""
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ImportError, match=re.escape(install_hint("redis"))):
        RedisListLengthCollector("jobs", "redis://localhost", "q")


def test_temporal_missing_names_the_install_command(monkeypatch):
    """Without temporalio, building the Temporal collector says how to install it."""
    monkeypatch.setitem(sys.modules, "temporalio.client", None)
    with pytest.raises(ImportError, match=re.escape(install_hint("temporal"))):
        TemporalCollector("workflows", "localhost:7233")

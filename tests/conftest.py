"""Shared pytest configuration."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import responses
from hypothesis import HealthCheck, settings

from clock import FakeTime

# Property tests: deterministic in CI; `pytest --hypothesis-profile=thorough`
# for a long local run.
settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None)
settings.register_profile("thorough", deadline=None, max_examples=3000)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def fake_time() -> FakeTime:
    """A fake clock and sleep."""
    return FakeTime()


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    """Intercept every request made with requests."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock

"""Shared pytest configuration."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Property tests: deterministic in CI; `pytest --hypothesis-profile=thorough`
# for a long local run.
settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None)
settings.register_profile("thorough", deadline=None, max_examples=3000)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

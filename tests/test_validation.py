"""The one validator: each check, its one wording, the same from every caller."""

from __future__ import annotations

import math

import pytest

import flyautoscaler as fas
from flyautoscaler._durations import format_duration
from flyautoscaler._validation import (
    check_duration,
    check_initial_machine_state,
    check_range,
    check_wildcard_org,
    positive_seconds,
    require,
    timeout_pair,
)
from flyautoscaler.config import Config
from flyautoscaler.testing import FakeFlapsClient, FakeFlyClient


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0.0, "interval must be a positive duration, got 0s"),
        (-1.5, "interval must be a positive duration, got -1.5s"),
        (math.nan, "interval must be a positive duration, got nan"),
        (math.inf, "interval must be a positive duration, got inf"),
        (90000.0, "interval must be at most 24h0m0s, got 25h0m0s"),
    ],
)
def test_check_duration(value, message):
    """A duration outside (0, 24h] is refused, shown as Go writes durations."""
    with pytest.raises(fas.ConfigError) as info:
        check_duration(value, "interval", field="interval")
    assert str(info.value) == message
    assert info.value.field == "interval"


def test_check_duration_bounds_are_inclusive():
    """24 hours exactly, and the smallest positive value, are accepted."""
    check_duration(24 * 3600.0, "interval", field="interval")
    check_duration(1e-9, "interval", field="interval")


def test_check_range():
    """Below the lowest and above the highest bound each have their message."""
    check_range(1, "concurrency", field="concurrency", low=1, high=256)
    with pytest.raises(
        fas.ConfigError, match=r"^concurrency must be at least 1, got 0$"
    ):
        check_range(0, "concurrency", field="concurrency", low=1, high=256)
    with pytest.raises(fas.ConfigError, match=r"^c must be at most 256, got 257$"):
        check_range(257, "c", field="c", low=1, high=256)
    check_range(10**9, "unhealthy_after", field="unhealthy_after", low=1)


def test_go_messages():
    """Required settings, the wildcard's organization and the state: Go's words."""
    with pytest.raises(fas.ConfigError, match=r"^app name required$"):
        require("", "app name required", field="app_name")
    require("a", "app name required", field="app_name")
    with pytest.raises(
        fas.ConfigError, match=r"^organization required if app name uses a wildcard$"
    ):
        check_wildcard_org("tenant-*", "", field="org")
    check_wildcard_org("tenant", "", field="org")
    with pytest.raises(
        fas.ConfigError,
        match=r"^initial machine state must be either 'started' or 'stopped'$",
    ):
        check_initial_machine_state("running")


def test_timeouts():
    """Collector timeouts: positive, finite seconds; one number sets both."""
    assert positive_seconds(2) == 2.0
    assert timeout_pair(3) == (3.0, 3.0)
    for bad in (0, -1, math.inf, math.nan):
        with pytest.raises(fas.ConfigError, match="timeout must be positive seconds"):
            positive_seconds(bad)
    with pytest.raises(fas.ConfigError, match="timeout must be positive seconds"):
        timeout_pair((1.0, 0.0))


def test_config_pool_and_reconciler_word_a_check_alike():
    """The same check reads the same from the config, the pool and the reconciler."""
    config = Config(app_name="a", started_machine_count="1", concurrency=300)
    with pytest.raises(fas.ConfigError) as from_config:
        config.validate()
    pool = fas.ReconcilerPool(FakeFlyClient(), concurrency=300)
    pool.app_name = "a-*"
    pool.organization_slug = "o"
    pool.new_flaps_client = lambda _app: FakeFlapsClient()
    with pytest.raises(fas.ConfigError) as from_pool:
        pool.open()
    pool.close()
    assert str(from_config.value) == str(from_pool.value)
    assert str(from_pool.value) == "concurrency must be at most 256, got 300"
    reconciler = fas.Reconciler(initial_machine_state="running")
    with pytest.raises(fas.ConfigError) as from_reconciler:
        reconciler.validate()
    config = Config(app_name="a", started_machine_count="1")
    config.initial_machine_state = "running"
    with pytest.raises(fas.ConfigError) as from_config:
        config.validate()
    assert str(from_reconciler.value) == str(from_config.value)


def test_format_duration_of_what_go_cannot_write():
    """NaN and the infinities are named, not garbled."""
    assert [format_duration(v) for v in (math.nan, math.inf, -math.inf)] == [
        "nan",
        "inf",
        "-inf",
    ]

"""Settings are declared once; the configuration derives the rest from them."""

from __future__ import annotations

import re
from pathlib import Path

from flyautoscaler.collectors import TYPES
from flyautoscaler.config import COLLECTOR_TYPES, CollectorConfig, Config
from flyautoscaler.config._entry import COLLECTOR_KEYS, MACHINE_COLLECTOR_TYPES
from flyautoscaler.config._model import (
    SECRET_VARIABLES,
    TOP_KEYS,
    TOP_SETTINGS,
    secrets,
)

DOCS = Path(__file__).parent.parent / "docs"


def test_top_level_keys_and_variables():
    """Every top-level setting has its key, variable and kind, as before."""
    assert TOP_KEYS == {
        "app-name": ("app_name", "string"),
        "org": ("org", "string"),
        "regions": ("regions", "string_list"),
        "process-group": ("process_group", "string"),
        "created-machine-count": ("created_machine_count", "string"),
        "min-created-machine-count": ("min_created_machine_count", "string"),
        "max-created-machine-count": ("max_created_machine_count", "string"),
        "initial-machine-state": ("initial_machine_state", "string"),
        "started-machine-count": ("started_machine_count", "string"),
        "min-started-machine-count": ("min_started_machine_count", "string"),
        "max-started-machine-count": ("max_started_machine_count", "string"),
        "concurrency": ("concurrency", "integer"),
        "interval": ("interval", "duration"),
        "timeout": ("timeout", "duration"),
        "request-timeout": ("request_timeout", "duration"),
        "app-list-refresh-interval": ("app_list_refresh_interval", "duration"),
        "api-token": ("api_token", "secret"),
        "coordination-url": ("coordination_url", "secret"),
        "verbose": ("verbose", "boolean"),
        "unhealthy-after": ("unhealthy_after", "integer"),
        "scale-down-stabilization": ("scale_down_stabilization", "seconds"),
        "scale-up-stabilization": ("scale_up_stabilization", "seconds"),
        "max-scale-up-step": ("max_scale_up_step", "string"),
        "max-scale-down-step": ("max_scale_down_step", "string"),
        "fallback-after": ("fallback_after", "integer"),
        "fallback-started-machine-count": (
            "fallback_started_machine_count",
            "integer",
        ),
        "stop-mode": ("stop_mode", "string"),
        "machine-leases": ("machine_leases", "string"),
        "release-timeout": ("release_timeout", "seconds"),
        "metric-query-variables": ("metric_query_variables", "name_list"),
        "metrics-address": ("metrics_address", "string"),
        "flaps-base-url": ("flaps_base_url", "url"),
        "api-base-url": ("api_base_url", "url"),
    }
    assert {s.attribute: s.env for s in TOP_SETTINGS}["flaps_base_url"] == (
        "FLY_FLAPS_BASE_URL",
    )


def test_collector_keys_are_derived_from_the_declarations():
    """The entry keys are the union of the collector types' settings, plus type."""
    assert COLLECTOR_TYPES == ("prometheus", "temporal", "redis")
    assert COLLECTOR_KEYS == {
        "type": ("type", "string"),
        "metric-name": ("metric_name", "string"),
        "address": ("address", "string"),
        "query": ("query", "query"),
        "token": ("token", "secret"),
        "namespace": ("namespace", "string"),
        "cert-data": ("cert_data", "secret"),
        "key-data": ("key_data", "secret"),
        "api-key": ("api_key", "secret"),
        "url": ("url", "secret"),
        "keys": ("keys", "query_list"),
    }


def test_secret_variables_are_derived_from_the_declarations():
    """Credentials' variables, and Fly's, may not be listed as query variables."""
    assert (
        frozenset(
            {
                "FAS_API_TOKEN",
                "FAS_COORDINATION_URL",
                "FAS_PROMETHEUS_TOKEN",
                "FAS_REDIS_URL",
                "FAS_TEMPORAL_API_KEY",
                "FAS_TEMPORAL_KEY_DATA",
                "TEMPORAL_TLS_KEY_DATA",
                "FLY_API_TOKEN",
                "FLY_ACCESS_TOKEN",
            }
        )
        == SECRET_VARIABLES
    )


def test_only_prometheus_has_a_per_machine_collector():
    """The stop-metric-collector types are those declaring a per-Machine builder."""
    assert MACHINE_COLLECTOR_TYPES == ("prometheus",)


def test_the_command_scrubs_the_stop_metric_token():
    """The stop-metric-collector's token is a secret like the collectors' tokens."""
    prom = CollectorConfig(type="prometheus", token="prom-token")  # noqa: S106
    stop = CollectorConfig(type="prometheus", token="stop-token")  # noqa: S106
    config = Config(
        api_token="fly-token",  # noqa: S106 - a test value
        metric_collectors=[prom],
        stop_metric_collector=stop,
    )
    assert secrets(config) == ["fly-token", "prom-token", "stop-token"]


def test_the_command_scrubs_every_declared_credential():
    """Token, API key, key data and URL are secrets; a certificate is not."""
    entry = CollectorConfig(
        type="temporal",
        token="prom-token",  # noqa: S106 - a test value
        api_key="api-key",
        cert_data="certificate",
        key_data="key-data",
        url="redis://:pw@h",
    )
    config = Config(api_token="fly-token", metric_collectors=[entry])  # noqa: S106
    assert secrets(config) == [
        "fly-token",
        "prom-token",
        "api-key",
        "key-data",
        "redis://:pw@h",
    ]


def test_every_collector_declares_a_name_switch_and_metric_name():
    """Each type is turned on by one of its variables and names its metric."""
    for declared in TYPES:
        variables = {v for s in declared.settings for v in s.env}
        assert declared.enabled_by in variables
        assert "metric_name" in {s.attribute for s in declared.settings}
        assert all(s.kind != "integer" for s in declared.settings)


def _backticked(page: str) -> set[str]:
    """Return what *page* shows as inline code, outside its code blocks."""
    text = (DOCS / page).read_text(encoding="utf-8")
    text = re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)
    return set(re.findall(r"`([^`\n]+)`", text))


def test_configuration_page_lists_every_top_level_setting():
    """docs/configuration.md has each top-level key and variable."""
    shown = _backticked("configuration.md")
    for setting in TOP_SETTINGS:
        assert setting.key in shown, setting.key
        assert set(setting.env) <= shown, setting.env


def test_collectors_page_lists_every_collector_setting():
    """docs/collectors.md has each collector's keys and variables."""
    shown = _backticked("collectors.md")
    for declared in TYPES:
        assert f'type: "{declared.name}"' in shown, declared.name
        for setting in declared.settings:
            assert setting.key in shown, setting.key
            assert set(setting.env) <= shown, setting.env

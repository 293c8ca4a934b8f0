"""Tests for app-name wildcards and metric query expansion."""

from __future__ import annotations

import re

import pytest

import flyautoscaler as fas
from flyautoscaler._names import is_secret_name

# --- format_wildcard_as_regexp ------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("", ".*"),
        ("*", "^.*$"),
        ("my-app-*", "^my-app-.*$"),
        ("my-[app]*", r"^my-\[app\].*$"),
        ("my-app", "^my-app$"),
        ("*-worker", "^.*-worker$"),
        ("a*b*c", "^a.*b.*c$"),
        ("app.v2*", r"^app\.v2.*$"),
        ("a+b?(c)|{d}^$", r"^a\+b\?\(c\)\|\{d\}\^\$$"),
        ("back\\slash", r"^back\\slash$"),
    ],
)
def test_format_wildcard_as_regexp(pattern, expected):
    """Wildcards become the same anchored regexps as upstream's Go."""
    assert fas.format_wildcard_as_regexp(pattern) == expected


@pytest.mark.parametrize(
    ("name", "matches"),
    [
        ("my-app-1", True),
        ("my-app-", True),
        ("my-app-staging-2", True),
        ("other-app", False),
        ("my-app", False),
        ("xmy-app-1", False),
    ],
)
def test_wildcard_regexp_matches(name, matches):
    """The compiled regexp matches names under the wildcard and no others."""
    regexp = re.compile(fas.format_wildcard_as_regexp("my-app-*"))
    assert (regexp.match(name) is not None) is matches


def test_wildcard_metacharacters_are_literal():
    """Regexp metacharacters in a wildcard match only themselves."""
    regexp = re.compile(fas.format_wildcard_as_regexp("my-[app]*"))
    assert regexp.match("my-[app]-1")
    assert not regexp.match("my-a-1")


def test_empty_wildcard_matches_everything():
    """An empty pattern matches any app name."""
    regexp = re.compile(fas.format_wildcard_as_regexp(""))
    assert regexp.match("anything")
    assert regexp.match("")


# --- expand_metric_query: upstream cases --------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("foo", "foo", id="Static"),
        pytest.param("foo $APP_NAME bar", "foo my-app bar", id="Bare"),
        pytest.param("foo${APP_NAME}bar", "foomy-appbar", id="Wrapped"),
    ],
)
def test_expand_metric_query_upstream(query, expected):
    """Go's TestExpandMetricQuery cases give the same strings."""
    assert fas.expand_metric_query(query, "my-app", environ={}) == expected


def test_app_name_wins_over_environment():
    """$APP_NAME is always the reconciled app, even if the environment sets it."""
    query = 'sum(queue_depth{app="$APP_NAME"})'
    out = fas.expand_metric_query(query, "my-app", environ={"APP_NAME": "other"})
    assert out == 'sum(queue_depth{app="my-app"})'


def test_app_name_repeated():
    """Every occurrence of $APP_NAME is expanded."""
    out = fas.expand_metric_query("$APP_NAME/${APP_NAME}", "a1", environ={})
    assert out == "a1/a1"


# --- expand_metric_query: other variables -------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('up{region="$REGION"}', 'up{region="ord"}'),
        ('up{region="${REGION}"}', 'up{region="ord"}'),
        ("$REGION-$ENVIRONMENT", "ord-production"),
        ("${EMPTY}x", "x"),
    ],
)
def test_set_variables_expand(query, expected):
    """Other variables expand from the given environ when set."""
    environ = {"REGION": "ord", "ENVIRONMENT": "production", "EMPTY": ""}
    assert fas.expand_metric_query(query, "my-app", environ=environ) == expected


@pytest.mark.parametrize(
    "query",
    [
        "$UNSET_VARIABLE",
        "${UNSET_VARIABLE}",
        'up{x="$1"}',
        'label_replace(up, "x", "$1", "y", "(.*)")',
        "${1}",
        "cost in $",
        "$ alone",
        "${not closed",
    ],
)
def test_unset_variables_kept(query):
    """Unset variables and PromQL's $1 stay as written."""
    assert fas.expand_metric_query(query, "my-app", environ={}) == query


def test_label_replace_with_app_name():
    """$1 survives next to an expanded $APP_NAME."""
    query = 'label_replace(up{app="$APP_NAME"}, "x", "$1", "y", "(.*)")'
    out = fas.expand_metric_query(query, "my-app", environ={})
    assert out == 'label_replace(up{app="my-app"}, "x", "$1", "y", "(.*)")'


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("$$", "$"),
        ("cost $$5", "cost $5"),
        ("$$APP_NAME", "$APP_NAME"),
        ("$$$APP_NAME", "$my-app"),
    ],
)
def test_double_dollar_is_literal(query, expected):
    """`$$` becomes a literal `$`."""
    assert fas.expand_metric_query(query, "my-app", environ={}) == expected


# --- expand_metric_query: secrets ----------------------------------------------

_SECRET_ENV = {
    "FAS_API_TOKEN": "fm2_apitoken",
    "FAS_PROMETHEUS_TOKEN": "prom-token",
    "MY_SECRET": "hunter2",
    "DB_PASSWORD": "pa55word",
    "API_KEY": "key-123",
}


@pytest.mark.parametrize(
    "query",
    [
        "${FAS_API_TOKEN}",
        "$FAS_PROMETHEUS_TOKEN",
        "${MY_SECRET}",
        "$DB_PASSWORD",
        "${API_KEY}",
        'up{token="$FAS_API_TOKEN"}',
    ],
)
def test_secret_variables_never_expanded(query):
    """Variables that may hold credentials are never expanded, even when set."""
    out = fas.expand_metric_query(query, "my-app", environ=_SECRET_ENV)
    assert out == query
    for value in _SECRET_ENV.values():
        assert value not in out


def test_secret_variables_never_expanded_from_os_environ(monkeypatch):
    """With environ=None, os.environ is used, and secrets still stay put."""
    monkeypatch.setenv("FAS_PROMETHEUS_TOKEN", "prom-token")
    monkeypatch.setenv("FAS_TEST_REGION", "ams")
    query = 'up{region="$FAS_TEST_REGION",t="$FAS_PROMETHEUS_TOKEN"}'
    out = fas.expand_metric_query(query, "my-app")
    assert out == 'up{region="ams",t="$FAS_PROMETHEUS_TOKEN"}'
    assert "prom-token" not in out


def test_environ_none_reads_os_environ(monkeypatch):
    """With environ=None, unset variables in os.environ stay as written."""
    monkeypatch.delenv("FAS_TEST_UNSET", raising=False)
    assert fas.expand_metric_query("$FAS_TEST_UNSET", "a") == "$FAS_TEST_UNSET"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("FAS_API_TOKEN", True),
        ("my_secret", True),
        ("DB_PASSWORD", True),
        ("API_KEY", True),
        ("REGION", False),
        ("APP_NAME", False),
    ],
)
def test_is_secret_name(name, secret):
    """Names containing TOKEN, SECRET, PASSWORD or KEY are secret."""
    assert is_secret_name(name) is secret

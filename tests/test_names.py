"""Tests for app-name wildcards and metric query expansion."""

from __future__ import annotations

import re

import pytest

import flyautoscaler as fas
from flyautoscaler._names import check_query_variables, expand_variables

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
    assert fas.expand_metric_query(query, "my-app") == expected


def test_app_name_wins_over_variables():
    """$APP_NAME is always the reconciled app, whatever else is passed."""
    query = 'sum(queue_depth{app="$APP_NAME"})'
    out = fas.expand_metric_query(query, "my-app", variables={"APP_NAME": "other"})
    assert out == 'sum(queue_depth{app="my-app"})'


def test_app_name_repeated():
    """Every occurrence of $APP_NAME is expanded."""
    assert fas.expand_metric_query("$APP_NAME/${APP_NAME}", "a1") == "a1/a1"


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
def test_listed_variables_expand(query, expected):
    """Variables passed in `variables` expand to their values."""
    variables = {"REGION": "ord", "ENVIRONMENT": "production", "EMPTY": ""}
    assert fas.expand_metric_query(query, "my-app", variables=variables) == expected


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
def test_unlisted_variables_kept(query):
    """Unlisted variables and PromQL's $1 stay as written."""
    out = fas.expand_metric_query(query, "my-app", variables={"REGION": "ord"})
    assert out == query


def test_label_replace_with_app_name():
    """$1 survives next to an expanded $APP_NAME."""
    query = 'label_replace(up{app="$APP_NAME"}, "x", "$1", "y", "(.*)")'
    out = fas.expand_metric_query(query, "my-app")
    assert out == 'label_replace(up{app="my-app"}, "x", "$1", "y", "(.*)")'


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("$$", "$"),
        ("cost $$5", "cost $5"),
        ("$$APP_NAME", "$APP_NAME"),
        ("$$$APP_NAME", "$my-app"),
        ("$$REGION", "$REGION"),
    ],
)
def test_double_dollar_is_literal(query, expected):
    """`$$` becomes a literal `$`."""
    out = fas.expand_metric_query(query, "my-app", variables={"REGION": "ord"})
    assert out == expected


# --- expand_metric_query: the environment is never read -------------------------


@pytest.mark.parametrize(
    "variable",
    ["FAS_REDIS_URL", "DATABASE_URL", "FAS_API_TOKEN", "REGION", "HOME"],
)
def test_environment_is_never_read(monkeypatch, variable):
    """A set environment variable stays as written unless it is passed in."""
    monkeypatch.setenv(variable, "redis://:hunter2-password@db:6379")
    for query in (f"${variable}", f"${{{variable}}}", f'up{{x="${variable}"}}'):
        out = fas.expand_metric_query(query, "my-app")
        assert out == query
        assert "hunter2" not in out


def test_variables_is_keyword_only():
    """A third positional argument is refused, so no one passes os.environ."""
    with pytest.raises(TypeError):
        fas.expand_metric_query("$X", "a", {"X": "1"})  # type: ignore[misc]


# --- the collectors' variables option -------------------------------------------


def test_check_query_variables_copies():
    """The checked mapping is a plain dict of strings, a copy of the input."""
    given = {"REGION": "iad"}
    checked = check_query_variables(given)
    assert checked == given
    assert checked is not given


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("1ST", '"1ST" is not a variable name'),
        ("MY-VAR", '"MY-VAR" is not a variable name'),
        ("", '"" is not a variable name'),
        ("APP_NAME", "APP_NAME always becomes the app's name"),
    ],
)
def test_check_query_variables_refuses(name, message):
    """Names that are not variable names, and APP_NAME, are refused."""
    with pytest.raises(fas.ConfigError, match=message) as info:
        check_query_variables({name: "x"})
    assert info.value.field == "variables"


def test_expand_variables_policies():
    """One expansion, two policies: a file value and a metric query."""
    text = "$A ${B} $APP_NAME $$ $1 $UNSET"
    values = {"A": "a", "B": "b"}
    assert expand_variables(text, values, keep_unknown=False) == ("a b $APP_NAME $ $1 ")
    assert expand_variables(text, values, app_name="x", keep_unknown=True) == (
        "a b x $ $1 $UNSET"
    )

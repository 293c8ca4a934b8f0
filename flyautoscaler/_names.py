"""App-name wildcards and per-app metric query expansion."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Final

from flyautoscaler._errors import ConfigError

__all__ = [
    "check_query_variables",
    "check_variable_name",
    "expand_metric_query",
    "format_wildcard_as_regexp",
]

# Characters Go's regexp.QuoteMeta escapes (it leaves "-" alone).
_GO_META: Final = frozenset(r"\.+*?()|[]{}^$")
_VARIABLE: Final = re.compile(
    r"\$(?:(?P<dollar>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def format_wildcard_as_regexp(pattern: str) -> str:
    r"""Turn an app-name wildcard into an anchored regular expression.

    ``*`` matches any run of characters; everything else is literal. Gives the
    same strings as the Go original: ``"" -> ".*"``, ``"*" -> "^.*$"``,
    ``"my-app-*" -> "^my-app-.*$"``, ``"my-[app]*" -> r"^my-\[app\].*$"``.
    """
    if not pattern:
        return ".*"
    quoted = "".join("\\" + c if c in _GO_META else c for c in pattern)
    return "^" + quoted.replace(r"\*", ".*") + "$"


def check_variable_name(name: str, setting: str, *, field: str) -> None:
    """Raise :class:`ConfigError` unless *name* may be listed as a query variable.

    Args:
        name: The variable's name.
        setting: The setting that lists it, as the user wrote it.
        field: The :attr:`ConfigError.field`.

    Raises:
        ConfigError: *name* is not a variable name (letters, digits and
            ``_``, not starting with a digit), or is ``APP_NAME``, which always
            becomes the app's name.
    """
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"{setting}: {json.dumps(name, ensure_ascii=False)} is not a variable "
            "name (letters, digits and _, not starting with a digit)",
            field=field,
        )
    if name == "APP_NAME":
        raise ConfigError(
            f"{setting}: APP_NAME always becomes the app's name; do not list it",
            field=field,
        )


def check_query_variables(variables: Mapping[str, str]) -> dict[str, str]:
    """Return a copy of *variables* after checking their names.

    The converter of the collectors' ``variables`` option.

    Raises:
        ConfigError: See :func:`check_variable_name`.
    """
    checked = {str(name): str(value) for name, value in dict(variables).items()}
    for name in checked:
        check_variable_name(name, "variables", field="variables")
    return checked


def expand_metric_query(
    query: str, app_name: str, *, variables: Mapping[str, str] | None = None
) -> str:
    """Expand variables in a metric query for one app.

    ``$APP_NAME`` and ``${APP_NAME}`` become *app_name*, as in the Go
    original. Any other ``$VAR`` or ``${VAR}`` becomes its value in
    *variables* when it is there, and stays exactly as written when it is
    not, so PromQL's ``$1`` survives. ``$$`` is a literal ``$``. The process
    environment is never read: only what the caller lists in *variables*
    can reach a query, so no credential leaks by accident.

    Args:
        query: The query text.
        app_name: The app being reconciled.
        variables: The only other variables to expand, by name (for example
            the ones the configuration's ``metric-query-variables`` lists,
            with their values).

    Returns:
        The expanded query.
    """
    listed: Mapping[str, str] = {} if variables is None else variables

    def substitute(match: re.Match[str]) -> str:
        if match.group("dollar"):
            return "$"
        name = match.group("braced") or match.group("bare")
        if name == "APP_NAME":
            return app_name
        return listed.get(name, match.group(0))

    return _VARIABLE.sub(substitute, query)

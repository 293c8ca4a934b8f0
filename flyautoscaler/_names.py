"""App-name wildcards, and ``$VAR`` expansion: the one place that expands variables.

:func:`expand_variables` is the expansion, with its two policies as
parameters: per-app metric queries (:func:`expand_metric_query`: only listed
variables, the rest kept as written) and configuration file values (every
environment variable, unset ones empty, ``$APP_NAME`` kept for later).
"""

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
    "expand_variables",
    "format_wildcard_as_regexp",
]

# Characters Go's regexp.QuoteMeta escapes (it leaves "-" alone).
_GO_META: Final = frozenset(r"\.+*?()|[]{}^$")
# A variable's name; in text, $NAME or ${NAME}, and $$ for a literal $.
_NAME_PATTERN: Final = r"[A-Za-z_][A-Za-z0-9_]*"
_NAME: Final = re.compile(_NAME_PATTERN)
_VARIABLE: Final = re.compile(
    rf"\$(?:(?P<dollar>\$)|\{{(?P<braced>{_NAME_PATTERN})\}}|(?P<bare>{_NAME_PATTERN}))"
)


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
    return expand_variables(query, listed, app_name=app_name, keep_unknown=True)


def expand_variables(
    text: str,
    values: Mapping[str, str],
    *,
    app_name: str | None = None,
    keep_unknown: bool,
) -> str:
    """Expand ``$VAR`` and ``${VAR}`` in *text*.

    ``$$`` is a literal ``$``; a ``$`` not followed by a name (``$1``) stays as
    written.

    Args:
        text: The text.
        values: The variables' values, by name.
        app_name: What ``$APP_NAME`` becomes; ``None`` keeps it as written
            (a configuration value, expanded per app later).
        keep_unknown: Whether a variable missing from *values* stays as
            written (a query: PromQL's ``$1`` and anything not listed) or
            becomes ``""`` (a file value, as Go's ``os.ExpandEnv``).

    Returns:
        The expanded text.
    """

    def substitute(match: re.Match[str]) -> str:
        if match.group("dollar"):
            return "$"
        name = match.group("braced") or match.group("bare")
        if name == "APP_NAME":
            return match.group(0) if app_name is None else app_name
        if name in values:
            return values[name]
        return match.group(0) if keep_unknown else ""

    return _VARIABLE.sub(substitute, text)

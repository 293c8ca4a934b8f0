"""App-name wildcards and per-app metric query expansion."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Final

__all__ = ["expand_metric_query", "format_wildcard_as_regexp", "is_secret_name"]

# Characters Go's regexp.QuoteMeta escapes (it leaves "-" alone).
_GO_META: Final = frozenset(r"\.+*?()|[]{}^$")
_VARIABLE: Final = re.compile(
    r"\$(?:(?P<dollar>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
_SECRET_PARTS: Final = ("TOKEN", "SECRET", "PASSWORD", "KEY")


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


def is_secret_name(name: str) -> bool:
    """Return True for an environment variable that may hold a credential."""
    upper = name.upper()
    return any(part in upper for part in _SECRET_PARTS)


def expand_metric_query(
    query: str, app_name: str, environ: Mapping[str, str] | None = None
) -> str:
    """Expand variables in a metric query for one app.

    ``$APP_NAME`` and ``${APP_NAME}`` become *app_name*; any other ``$VAR`` or
    ``${VAR}`` becomes the environment's value when it is set and stays as
    written when it is not (so PromQL's ``$1`` survives); ``$$`` is a literal
    ``$``. Variables whose name contains ``TOKEN``, ``SECRET``, ``PASSWORD`` or
    ``KEY`` are never expanded, so a query cannot carry a credential out.

    Args:
        query: The query text.
        app_name: The app being reconciled.
        environ: Variables to expand from (default :data:`os.environ`).

    Returns:
        The expanded query.
    """
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        if match.group("dollar"):
            return "$"
        name = match.group("braced") or match.group("bare")
        if name == "APP_NAME":
            return app_name
        if is_secret_name(name) or name not in env:
            return match.group(0)
        return env[name]

    return _VARIABLE.sub(substitute, query)

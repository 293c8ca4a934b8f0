"""What building from a configuration needs besides the settings: variables' values.

The values of the variables ``metric-query-variables`` lists, refused when
one carries a configured credential, and the credentials to look for. The
collectors themselves are built by their declarations
(:class:`~flyautoscaler._settings.CollectorType`); the reconciler by
:meth:`~flyautoscaler.config.Config.new_reconciler`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import urlsplit

from flyautoscaler._errors import ConfigError
from flyautoscaler._http import parse_token

__all__ = ["credential_pieces", "query_variable_values"]

# Shortest credential value looked for in a listed variable's value: a
# shorter one would match by chance, and no real credential is that short.
_MIN_CREDENTIAL_LENGTH: Final = 8


def _url_password(value: str) -> str:
    """Return the password of *value* when it is a URL with one, else ``""``."""
    try:
        return urlsplit(value).password or ""
    except ValueError:  # not a URL after all (an unclosed "[")
        return ""


def credential_pieces(
    holder: str, value: str, *, in_url: bool = False
) -> list[tuple[str, str]]:
    """Return ``(holder, piece)`` for each piece of a credential worth looking for.

    The value, each token of a token list, and with *in_url* the password of
    a URL; pieces shorter than 8 characters are left out.

    Args:
        holder: The setting that holds it, for messages.
        value: The credential.
        in_url: Whether a URL's password is a credential of its own.
    """
    macaroons, others = parse_token(value)
    pieces = [p for p in (value.strip(), *macaroons, *others) if p]
    if in_url and value:
        pieces.append(_url_password(value))
    return [(holder, p) for p in pieces if len(p) >= _MIN_CREDENTIAL_LENGTH]


def query_variable_values(
    names: Iterable[str],
    setting: str,
    environ: Mapping[str, str],
    credentials: Iterable[tuple[str, str]],
) -> dict[str, str]:
    """Return the values of the listed variables.

    Args:
        names: The variables ``metric-query-variables`` lists.
        setting: That setting, as the user wrote it.
        environ: Where to read them.
        credentials: ``(holder, piece)`` for every configured credential
            (see :func:`credential_pieces`).

    Raises:
        ConfigError: A listed variable is not set, or its value contains a
            credential; the message names the variable and the setting that
            holds the credential, never a value.
    """
    found = list(credentials)
    values: dict[str, str] = {}
    for name in names:
        if name not in environ:
            raise ConfigError(
                f"{setting} lists {name}, which is not set in the environment",
                field="metric_query_variables",
            )
        value = environ[name]
        for holder, secret in found:
            if secret in value:
                raise ConfigError(
                    f"{setting}: {name} contains the credential of {holder}, "
                    "so it cannot be used in a query",
                    field="metric_query_variables",
                )
        values[name] = value
    return values

"""Loading the configuration: the environment first, then the file over it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from flyautoscaler._errors import ConfigError
from flyautoscaler.config._env import from_env
from flyautoscaler.config._model import Config
from flyautoscaler.config._yaml import apply_yaml

__all__ = ["load_config"]


def load_config(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read the configuration: the environment, then the YAML file over it.

    Args:
        path: A YAML file with the Go original's keys (and the new ones), or
            ``None`` for the environment alone.
        environ: The environment (default :data:`os.environ`): ``FAS_*``,
            ``FLY_FLAPS_BASE_URL``, ``FLY_API_BASE_URL``, and the variables
            ``${VAR}`` in the file refers to.

    Returns:
        The configuration, not yet validated (see :meth:`Config.validate`).

    Raises:
        ConfigError: An environment variable or a file value cannot be
            parsed, or the file has an unknown key; the message names it.
        OSError: The file cannot be read.
    """
    env = os.environ if environ is None else environ
    config = from_env(env)
    if path is not None:
        text = Path(path).read_text(encoding="utf-8")
        try:
            apply_yaml(text, os.fspath(path), env, config)
        except ConfigError as exc:
            message = str(exc)
            if not message.startswith(f"{os.fspath(path)}: "):
                message = f"{os.fspath(path)}: {message}"
            raise ConfigError(message, field=exc.field) from None
    return config

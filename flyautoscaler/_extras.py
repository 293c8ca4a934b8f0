"""How to install an optional extra, for the messages that tell the user to.

flyautoscaler is not on a package index yet, so an extra cannot be installed by the
package's name. A hint names the extra's own requirements, which install from PyPI
however flyautoscaler itself was installed (from a checkout, a wheel, the container
image), and the form that installs the extra from a checkout.
:data:`EXTRAS` repeats ``pyproject.toml``'s extras; a test keeps the two equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = ["EXTRAS", "install_hint"]

#: The requirements of each optional extra, as ``pyproject.toml`` lists them.
EXTRAS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "plot": ("matplotlib>=3.8",),
        "redis": ("redis>=5",),
        "temporal": ("temporalio>=1.6",),
    }
)


def install_hint(extra: str) -> str:
    """Return commands that install *extra*, for a message.

    For ``"redis"``: ``pip install 'redis>=5' (the redis extra; from a
    flyautoscaler checkout: pip install '.[redis]')``.

    Args:
        extra: An extra of :data:`EXTRAS`.

    Raises:
        KeyError: *extra* is not one of them.
    """
    requirements = " ".join(f"'{r}'" for r in EXTRAS[extra])
    return (
        f"pip install {requirements} (the {extra} extra; "
        f"from a flyautoscaler checkout: pip install '.[{extra}]')"
    )

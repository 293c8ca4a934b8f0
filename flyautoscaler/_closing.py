"""A mixin: ``with obj:`` closes ``obj`` on the way out."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Closing:
    """Gives a class with a ``close()`` method the context-manager protocol."""

    __slots__ = ()

    def close(self) -> None:
        """Release what the object holds; subclasses define it."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

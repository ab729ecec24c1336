"""Options given as a string or an Enum member, normalised once with a clear error."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

__all__ = ["parse_option"]

E = TypeVar("E", bound=Enum)


def parse_option(enum: type[E], value: str | E, name: str) -> E:
    """``enum(value)``, or a ``ValueError`` naming the argument, the value and the choices.

    Examples
    --------
    >>> from medattr.attribution.engine import AMP
    >>> parse_option(AMP, "bf16", "amp")
    <AMP.BF16: 'bf16'>
    """
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in enum)
        raise ValueError(f"{name} must be one of {choices}; got {value!r}") from None

"""Numbers shown to people: never rounded across a threshold.

A value is shown as entered when it has few decimals (37.95 °C is "37.95", 38 °C with one decimal
is "38.0"); otherwise with the fewest decimals that keep it on the same side of every threshold it
is compared with (a dose 7.99 h ago next to an 8 h interval is "7.99 h", never "8.0 h").
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from math import isfinite
from typing import Iterable

__all__ = ["exact_decimal", "shown"]

_MOST_DECIMALS = 12
_AS_ENTERED_EXTRA_DECIMALS = 3


def _side(value: float, threshold: float) -> int:
    return (value > threshold) - (value < threshold)


def shown(value: float, thresholds: Iterable[float] = (), decimals: int = 1) -> str:
    """``value`` with at least ``decimals`` decimals, as entered when that is short, and never on
    the other side of (or equal to) any of ``thresholds`` unless the value itself is."""
    limits = [float(t) for t in thresholds]
    first_safe: str | None = None
    for places in range(decimals, _MOST_DECIMALS + 1):
        text = f"{value:.{places}f}"
        if float(text) == value and places <= decimals + _AS_ENTERED_EXTRA_DECIMALS:
            return text
        if first_safe is None and all(_side(float(text), t) == _side(value, t) for t in limits):
            first_safe = text
        if first_safe is not None and places >= decimals + _AS_ENTERED_EXTRA_DECIMALS:
            return first_safe
    return first_safe if first_safe is not None else repr(float(value))


def exact_decimal(value: float) -> Fraction:
    """A number as the decimal it is written as (the shortest that reads back to the float), exactly:
    what dose arithmetic and limit comparisons compute with."""
    if type(value) is float and isfinite(value):
        return Fraction(*Decimal(repr(value)).as_integer_ratio())  # the same as from its text, sooner
    if type(value) is int:
        return Fraction(value)
    return Fraction(str(value))

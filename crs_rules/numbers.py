"""Numbers shown to people: never rounded across a threshold.

A value is shown as entered when its short form is exact, else with the fewest decimals that keep
it on the same side of every threshold it is compared with: 37.95 °C next to a 38 °C fever threshold is "37.95", never "38.0";
a dose 7.99 h ago next to an 8 h interval is "7.99 h", never "8.0 h".
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["shown"]

_MOST_DECIMALS = 12


def _side(value: float, threshold: float) -> int:
    return (value > threshold) - (value < threshold)


def shown(value: float, thresholds: Iterable[float] = ()) -> str:
    """``value`` in decimals, as short as possible without crossing any of ``thresholds``."""
    limits = [float(t) for t in thresholds]
    text = f"{value:g}"
    if float(text) == value:  # as entered
        return text
    for decimals in range(1, _MOST_DECIMALS + 1):
        text = f"{value:.{decimals}f}"
        if all(_side(float(text), t) == _side(value, t) for t in limits):
            return text
    return repr(float(value))

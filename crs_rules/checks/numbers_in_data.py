"""numbers-in-data: texts for people carry no protocol numbers.

A number written in a text drifts from the data it repeats; the decision shows numbers from the data
fields. Passes: "Tocilizumab at the weight-based dose." Fails: "Tocilizumab 8 mg/kg." ("grade 2"
is allowed: a grade is a name).
"""

from __future__ import annotations

import re
from typing import Iterator

from ..errors import Problem
from ..model import Protocol, Source
from .base import CheckId, problem

_NUMBER_IN_TEXT = re.compile(r"(?<![A-Za-z])(?<!grade )(?<!Grade )\d")


def _texts(protocol: Protocol) -> Iterator[tuple[str, str, Source]]:
    """Every text for people: the texts of every rule (:meth:`Protocol.rules`) and of every action."""
    for rule in protocol.rules():
        for text in rule.texts:
            yield rule.id, text, rule.source
    for action in protocol.actions:
        yield action.id, action.text, action.source


def check_numbers_live_in_data(protocol: Protocol) -> Iterator[Problem]:
    """Texts carry no protocol numbers: a number written in words-for-people drifts from the data."""
    for rule_id, text, source in _texts(protocol):
        if _NUMBER_IN_TEXT.search(text):
            yield problem(source, rule_id, f"the text contains a number: {text[:70]!r}",
                           "expected numbers only in data fields (the decision shows them from there)",
                           CheckId.NUMBERS_IN_DATA)



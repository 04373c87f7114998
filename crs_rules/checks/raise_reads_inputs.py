"""raise-reads-inputs: an alert raised when its data is unknown reads input facts only.

Passes: ``if_unknown: raise`` with ``{fact: proposed.gm_csf, equals: true}``. Fails: the same alert
reading ``finding.fever``: "not ruled out by the record" cannot be decided for findings and actions
while rules fire.
"""

from __future__ import annotations

from typing import Iterator

from ..conditions import comparisons
from ..errors import Problem
from ..model import Protocol
from .base import CheckId, problem


def check_raised_when_unknown_reads_inputs(protocol: Protocol) -> Iterator[Problem]:
    """An alert raised when its data is unknown (``if_unknown: raise``) may read input facts only:
    "not ruled out by the record" cannot be decided for findings and actions while rules fire."""
    for alert in protocol.alerts:
        if alert.if_unknown != "raise":
            continue
        for comparison in comparisons(alert.when):
            if comparison.family in ("finding", "action"):
                yield problem(comparison.source, alert.rule_id,
                              f"'{comparison.fact}' is read by an alert with if_unknown: raise",
                              "expected a condition on patient facts only, or if_unknown: pending",
                              CheckId.RAISE_READS_INPUTS)

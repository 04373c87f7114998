"""The kinds of fact the compiled chain asserts, and the two values the chain gives special meaning."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FactKind", "FACT_KINDS", "NOT_APPLICABLE", "HISTORY_UNKNOWN"]


class FactKind(StrEnum):
    """The kinds of fact the compiled chain asserts (the engine's ``t`` field)."""

    OBSERVATION = "observation"
    EXCLUDED = "excluded"
    ACTION = "action"
    FAILS = "fails"
    RULED_OUT = "ruled_out"
    DOSE = "dose"
    WITHHELD = "withheld"
    ALERT = "alert"


FACT_KINDS = tuple(kind.value for kind in FactKind)

#: The grade's value when the pack's CRS definition does not apply to the patient (no immune
#: effector cell therapy). It passes no comparison on ``finding.crs_grade``.
NOT_APPLICABLE = "not_applicable"

#: The limit a dose is held on when the medication record is unknown (its limits cannot be checked).
HISTORY_UNKNOWN = "medication_history_unknown"

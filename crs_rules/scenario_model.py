"""Scenarios as values: a patient and the outcome the protocol must give them (see
:mod:`crs_rules.scenarios`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .model import Source
from .patient import PatientState

__all__ = ["SCENARIO_FOLDER", "ExpectedWithheld", "ExpectedDose", "Expectation", "Scenario", "PathKey"]

#: The folder of a pack that holds its scenario files (``*.yaml``).
SCENARIO_FOLDER = "scenarios"

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class ExpectedWithheld:
    """An action the decision must withhold, and when it becomes eligible again (None: never)."""

    action: str
    next_eligible_at: datetime | None


@dataclass(frozen=True)
class ExpectedDose:
    """An action the decision must propose with exactly this dose."""

    action: str
    amount_mg: int | float | None
    """None: proposed without an amount."""


@dataclass(frozen=True)
class Expectation:
    """What a scenario expects. Lists are "must contain"; ``absent`` and ``alerts_absent`` "must not"."""

    grade: int | None
    """The exact CRS grade (the decision is then ``graded``); None when not checked."""
    recommended: tuple[str, ...] = ()
    considered: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    withheld: tuple[ExpectedWithheld, ...] = ()
    alerts: tuple[str, ...] = ()
    alerts_absent: tuple[str, ...] = ()
    doses: tuple[ExpectedDose, ...] = ()
    grade_status: str | None = None
    possible_grades: tuple[int, ...] | None = None
    pending: tuple[str, ...] = ()
    """Action or alert ids some rule of which must be pending (waiting for unknown data)."""


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    patient: PatientState
    expect: Expectation
    source: Source

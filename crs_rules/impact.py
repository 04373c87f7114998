"""Impact of a protocol change (``crs-rules diff``): what changed in the pack, and what that does to patients.

:func:`compare_packs` answers both questions for two validated packs:

* **the pack** (:mod:`~crs_rules.pack_diff`): every difference by rule id and number, e.g.
  ``dose limits: drugs.tocilizumab.limits.max_dose_mg: 800 -> 700``;
* **the patients** (:mod:`~crs_rules.population`): both packs are evaluated on the same patients
  (the scenarios of both packs and a deterministic, seeded population) and every patient whose
  decision differs (:mod:`~crs_rules.outcomes`) is counted by kind of difference
  (:data:`DIFFERENCE_KINDS`), with one worked example per kind (:mod:`~crs_rules.impact_report`).

The stages run in :mod:`~crs_rules.impact_runner`; this module names the public surface.
"""

from __future__ import annotations

from .impact_report import Example, ImpactReport, KindReport, PackRef, SubChange
from .impact_runner import _start_worker as _start_worker  # the workers' initialiser (a test checks its Ctrl-C)
from .impact_runner import compare_packs, evaluate_one
from .outcomes import DIFFERENCE_KINDS, Outcome, outcome_differences
from .pack_diff import PackChange, pack_changes
from .population import DEFAULT_POPULATION, DEFAULT_SEED, Patient, describe_patient, population_inputs, state_input

__all__ = [
    "DEFAULT_POPULATION",
    "DEFAULT_SEED",
    "DIFFERENCE_KINDS",
    "PackChange",
    "PackRef",
    "Patient",
    "Outcome",
    "SubChange",
    "Example",
    "KindReport",
    "ImpactReport",
    "compare_packs",
    "evaluate_one",
    "pack_changes",
    "population_inputs",
    "describe_patient",
    "state_input",
    "outcome_differences",
]

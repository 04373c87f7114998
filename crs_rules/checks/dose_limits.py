"""dose-has-limits, dose-within-cap: every dose is bounded in amount and in frequency, and no
amount exceeds its own drug's cap.

Passes: tocilizumab at 8 mg/kg with ``max_dose_mg`` and ``min_interval_h``. Fails: a per-kg regimen
without ``max_dose_mg``, a regimen saying nothing of how often, ``fixed_mg`` above ``max_dose_mg``,
weight bands out of order, more doses in the window than in the course.
"""

from __future__ import annotations

from typing import Iterator

from ..errors import Problem
from ..model import Protocol
from .base import CheckId, problem


def check_dose_limits(protocol: Protocol) -> Iterator[Problem]:
    """Every dose is bounded in amount and in frequency, and no amount exceeds its own cap."""
    for drug in protocol.drugs:
        cap = drug.limits.max_dose_mg
        for regimen in drug.regimens:
            amount = regimen.amount
            subject = f"{drug.rule_id}.{regimen.id}"
            if amount is None:
                yield problem(regimen.source, subject, "the regimen has no amount",
                              "expected an amount (fixed_mg or per_kg) on the regimen or the drug",
                              CheckId.DOSE_HAS_LIMITS)
                continue
            if amount.per_kg and cap is None:
                yield problem(amount.source, subject, "a per-kg dose has no cap",
                              "expected limits.max_dose_mg on the drug", CheckId.DOSE_HAS_LIMITS)
            if regimen.interval_h is None and drug.limits.min_interval_h is None:
                yield problem(regimen.source, subject, "the regimen says nothing about how often",
                              "expected every_h or times_daily, or limits.min_interval_h on the drug",
                              CheckId.DOSE_HAS_LIMITS)
            if amount.fixed_mg is not None and cap is not None and amount.fixed_mg > cap:
                yield problem(amount.source, subject,
                              f"the dose of {amount.fixed_mg:g} mg is above the drug's own cap of {cap:g} mg",
                              "expected an amount at most max_dose_mg", CheckId.DOSE_WITHIN_CAP)
            bands = [band.from_weight_kg for band in amount.per_kg]
            if bands and (bands[0] != 0 or bands != sorted(set(bands))):
                yield problem(amount.source, subject, "weight bands do not start at 0 kg in increasing order",
                              "expected bands from 0 kg up, each heavier than the one before", CheckId.DOSE_HAS_LIMITS)
        in_window, in_course = drug.limits.max_doses_in_window, drug.limits.max_doses_per_course
        if in_window is not None and in_course is not None and in_window > in_course:
            yield problem(drug.limits.source or drug.source, drug.rule_id,
                          "more doses are allowed in the window than in the whole course",
                          "expected max_doses_in_window.doses at most max_doses_per_course", CheckId.DOSE_WITHIN_CAP)

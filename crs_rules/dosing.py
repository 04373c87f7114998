"""The independent dose check: every dose the rules propose is verified again here.

Plain Python over the pack's limits and the patient's medication history. It deliberately shares
no code with the compiled rules (``compilation``): if either is wrong, the other still stands
between the patient and an over-limit dose. A dose that fails any check is never recommended; it
is withheld with the reasons and, when waiting helps, the time it becomes eligible again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from functools import lru_cache

from .envelope import Envelope, default_envelope
from .model import Drug, Protocol, Regimen
from .numbers import exact_decimal, shown
from .patient import PatientState

__all__ = ["DoseCheck", "check_dose", "largest_allowed_mg"]


@dataclass(frozen=True)
class DoseCheck:
    """The verdict on one proposed dose.

    ``limits`` names each limit reached (``max_dose_mg``, ``max_doses_per_course``,
    ``max_doses_in_window``, ``min_interval_h``, ``repeat_only_if_not_improving``, and
    ``medication_history_unknown`` when the record is not given so none of the history limits can be
    checked); ``reasons``
    says the same in words; ``next_eligible_at`` is None when waiting does not help.
    """

    allowed: bool
    largest_allowed_mg: Fraction
    limits: tuple[str, ...]
    reasons: tuple[str, ...]
    next_eligible_at: datetime | None


@lru_cache(maxsize=1024)
def _pack_exact(value: float) -> Fraction:
    """A number of the pack or the envelope, exactly (:func:`_exact`; such numbers are few: kept)."""
    return exact_decimal(value)


def _round_down(value: Fraction, step: Fraction) -> Fraction:
    """``value`` rounded down to a whole multiple of ``step``, exactly (floor of the quotient, times the step)."""
    quotient = (value.numerator * step.denominator) // (value.denominator * step.numerator)
    return Fraction(quotient * step.numerator, step.denominator)


@lru_cache(maxsize=1024)
def _fixed_largest(fixed_mg: float, round_down_to_mg: float | None, max_dose_mg: float | None) -> Fraction:
    """The largest dose of a fixed amount (pack numbers only: kept)."""
    return _capped(_pack_exact(fixed_mg), round_down_to_mg, max_dose_mg)


def _capped(allowed: Fraction, round_down_to_mg: float | None, max_dose_mg: float | None) -> Fraction:
    if round_down_to_mg is not None:
        allowed = _round_down(allowed, _pack_exact(round_down_to_mg))
    if max_dose_mg is not None:
        allowed = min(allowed, _pack_exact(max_dose_mg))
    return allowed


def largest_allowed_mg(drug: Drug, regimen: Regimen, weight_kg: float) -> Fraction:
    """The most this patient may get in one dose of this regimen: the fixed amount, or the per-kg
    amount of the patient's weight band rounded down, never above the drug's cap."""
    return _largest(drug, regimen, weight_kg, None)


def _largest(drug: Drug, regimen: Regimen, weight_kg: float, weight: Fraction | None) -> Fraction:
    """:func:`largest_allowed_mg`, given the weight exactly (``weight``) when it is already."""
    amount = regimen.amount
    if amount is None:
        return Fraction(0)
    if amount.fixed_mg is not None:
        return _fixed_largest(amount.fixed_mg, amount.round_down_to_mg, drug.limits.max_dose_mg)
    # Bands are in increasing weight: the last one that starts at or below the weight applies. Two
    # numbers order as the decimals they are written as (the shortest decimal that reads back to a
    # float orders as the float does), so the band is found on the floats.
    applicable = [band for band in amount.per_kg if band.from_weight_kg <= weight_kg]
    if not applicable:
        return Fraction(0)
    allowed = _pack_exact(applicable[-1].mg_per_kg) * (exact_decimal(weight_kg) if weight is None else weight)
    return _capped(allowed, amount.round_down_to_mg, drug.limits.max_dose_mg)


def _hours(value: float) -> str:
    return f"{value:g} h"


def _child(patient: PatientState, protocol: Protocol | None) -> bool:
    pediatric = protocol.pediatric if protocol is not None else None
    if pediatric is None:
        return False
    if patient.age_years is not None:
        return patient.age_years < pediatric.age_below_years
    return patient.weight_kg < pediatric.weight_below_kg_if_age_unknown


def _step_of(protocol: Protocol, drug_id: str, dose_mg: float | None) -> int:
    """A recorded dose's escalation step: the highest step whose fixed amount it reaches, the
    highest step when the amount is unknown or reaches none, 0 for a drug without steps."""
    found = protocol.drug(drug_id)
    steps = [(r.step, r.amount.fixed_mg if r.amount is not None else None)
             for r in (found.regimens if found is not None else ()) if r.step is not None]
    if not steps:
        return 0
    reached = [step for step, fixed in steps if dose_mg is not None and fixed is not None and dose_mg >= fixed]
    return max(reached) if reached else max(step for step, _ in steps)


def check_dose(drug: Drug, regimen: Regimen, amount_mg: float | None, patient: PatientState,
               protocol: Protocol | None = None, envelope: Envelope | None = None) -> DoseCheck:
    """Check one proposed dose against every limit of its drug and regimen. ``amount_mg`` is None
    for a dose proposed without an amount (a child's steroid, a taper). With ``protocol``, the
    drug's class spacing by escalation step and the pack's pediatric refusal of fixed amounts apply
    too. Every dose is also checked against the safety envelope's hard limits (the shipped envelope by
    default), whatever the pack says: its caps, its mg/kg of the patient's weight band, its spacing
    and counts, and its own definition of a child (a fixed amount for a child by the envelope's or the
    pack's definition is refused)."""
    limits = drug.limits
    reached: list[str] = []
    reasons: list[str] = []
    waits: list[datetime] = []
    never = False
    now = patient.assessed_at

    weight = exact_decimal(patient.weight_kg)
    exact_amount = exact_decimal(amount_mg) if amount_mg is not None else None
    largest = _largest(drug, regimen, patient.weight_kg, weight)
    if exact_amount is not None and not (0 < exact_amount <= largest):
        reached.append("max_dose_mg")
        reasons.append(f"{amount_mg:g} mg is above the {float(largest):g} mg this patient may receive in one dose")
        never = True
    fixed = regimen.amount is not None and regimen.amount.fixed_mg is not None
    if amount_mg is not None and fixed and _child(patient, protocol):
        # Whatever the rules say: a fixed amount is an adult dose, never given to a child.
        reached.append("pediatric_fixed_dose")
        reasons.append(f"{amount_mg:g} mg is a fixed adult amount and this patient is a child: "
                       "dose by the pediatric protocol")
        never = True

    classes = [c for c in (protocol.drug_classes if protocol is not None else ())
               if c.escalation_steps and drug.id in c.members]
    stepped = bool(classes) and regimen.step is not None
    hard = _EnvelopeCheck(drug, regimen, amount_mg, exact_amount, weight, patient, envelope or default_envelope())
    intervals = [h for h in (limits.min_interval_h, regimen.interval_h) if h is not None]
    if patient.medications is None:
        hard.merge(reached, reasons, waits)
        never = never or hard.never
        if (hard.reads_history or intervals or limits.max_doses_per_course is not None or limits.max_doses_in_window is not None
                or limits.repeat_only_if_not_improving):
            reached.append("medication_history_unknown")
            reasons.append("the medication record is not given, so the interval and dose counts cannot be checked")
        return DoseCheck(not reached, largest, tuple(reached), tuple(reasons), None)
    # Two records of one drug at one time are one dose.
    given = sorted({m.given_at for m in patient.medications if m.drug == drug.id and m.given_at <= now})
    onset = patient.crs_onset_at
    course = [t for t in given if onset is None or t >= onset]

    if limits.max_doses_per_course is not None and len(course) >= limits.max_doses_per_course:
        reached.append("max_doses_per_course")
        if onset is None:
            reasons.append(f"{len(course)} doses recorded (at most {limits.max_doses_per_course} in the course); "
                           "the CRS onset is not recorded, so every recorded dose counts: recording "
                           "crs.onset_at would count only the doses of this episode")
        else:
            reasons.append(f"{len(course)} doses already given in this course, since the CRS onset "
                           f"(at most {limits.max_doses_per_course})")
        never = True

    if limits.max_doses_in_window is not None and limits.window_h is not None:
        window = timedelta(hours=limits.window_h)
        # A dose given exactly one window before now is outside the window (elapsed time: no
        # instant is computed that could fall before the start of the calendar).
        in_window = [t for t in given if now - t < window]
        if len(in_window) >= limits.max_doses_in_window:
            reached.append("max_doses_in_window")
            reasons.append(f"{len(in_window)} doses in the last {_hours(limits.window_h)} "
                           f"(at most {limits.max_doses_in_window})")
            # Eligible again when enough of them have left the window to make room for one more.
            leaving = in_window[len(in_window) - limits.max_doses_in_window]
            waits.append(leaving + window)

    if stepped and protocol is not None and intervals:
        assert regimen.step is not None
        members = {m for c in classes for m in c.members}
        doses = {(m.given_at, _step_of(protocol, m.drug, m.dose_mg))
                 for m in patient.medications if m.drug in members and m.given_at <= now}
        doses = {d for d in doses if d[1] > 0}
        if doses:
            last = max(t for t, _ in doses)
            last_step = max(step for t, step in doses if t == last)
            interval = max(intervals)
            if last_step >= regimen.step and now - last < timedelta(hours=interval):
                reached.append("class_interval_h")
                elapsed = (now - last).total_seconds() / 3600
                reasons.append(f"a {classes[0].id} dose at the same or a higher step was given {shown(elapsed, [interval])} h "
                               f"ago (at least {_hours(interval)} after it)")
                waits.append(last + timedelta(hours=interval))
    # The regimen's own spacing ("every 6 h", "twice daily") and the drug's minimum interval both
    # apply (for a regimen spaced as a class, by its step, above).
    if given and intervals and not stepped:
        interval = max(intervals)
        last = given[-1]
        if now - last < timedelta(hours=interval):
            reached.append("min_interval_h")
            elapsed = (now - last).total_seconds() / 3600
            reasons.append(f"last dose {shown(elapsed, [interval])} h ago (at least {_hours(interval)} between doses)")
            waits.append(last + timedelta(hours=interval))

    if limits.repeat_only_if_not_improving and given and patient.improving is True:
        reached.append("repeat_only_if_not_improving")
        reasons.append("the patient is improving: a repeat dose is given only without improvement")
        never = True

    hard.merge(reached, reasons, waits)
    never = never or hard.never
    next_eligible = None if never or not waits else _up_to_the_second(max(waits))
    return DoseCheck(not reached, largest, tuple(reached), tuple(reasons), next_eligible)


def _up_to_the_second(moment: datetime) -> datetime:
    # Decisions show times to the second: a time shown must never be before the dose is eligible
    # (a dose given at 03:00:00.5 is eligible 8 h later at 11:00:01, not at 11:00:00).
    if moment.microsecond:
        return moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment


class _EnvelopeCheck:
    """The same dose against the safety envelope's hard limits (``envelope``), owned apart from the
    pack: a pack that validated never reaches them before its own limits, so a limit the pack's
    check already reached is not named twice (its wait still counts: the later time applies)."""

    def __init__(self, drug: Drug, regimen: Regimen, amount_mg: float | None, exact_amount: Fraction | None,
                 weight: Fraction, patient: PatientState, envelope: Envelope) -> None:
        self.limits: list[tuple[str, str, str]] = []  # (the pack's limit it doubles, name, reason)
        self.waits: list[datetime] = []
        self.never = False
        hard = envelope.drug(drug.id)
        self.reads_history = hard is not None and hard.reads_history
        if hard is None:
            self.limits.append(("", "envelope_unknown_drug",
                                f"{drug.id} has no hard limits in the safety envelope, so no dose of it is proposed"))
            self.never = True
            return
        amount = exact_amount if exact_amount is not None else Fraction(0)  # no amount proposed: no cap to pass
        cap = hard.max_dose_for(regimen.id)
        if cap is not None and amount > _pack_exact(cap):
            self.limits.append(("max_dose_mg", "envelope_max_dose_mg",
                                f"{amount_mg:g} mg is above the safety envelope's hard limit of {cap:g} mg a dose "
                                f"of {drug.id}"))
            self.never = True
        band = hard.mg_per_kg_band(patient.weight_kg)
        if band is not None:
            per_kg = _pack_exact(band.max_mg_per_kg) * weight
            if amount > per_kg:
                self.limits.append(("max_dose_mg", "envelope_max_mg_per_kg",
                                    f"{amount_mg:g} mg is above the safety envelope's hard limit of "
                                    f"{band.max_mg_per_kg:g} mg/kg from {band.from_weight_kg:g} kg "
                                    f"({float(per_kg):g} mg for {patient.weight_kg:g} kg)"))
                self.never = True
        fixed = regimen.amount is not None and regimen.amount.fixed_mg is not None
        if amount_mg is not None and fixed and envelope.pediatric.is_child(patient.age_years, patient.weight_kg):
            # The envelope's own definition of a child, whatever the pack's (a pack may only widen it).
            self.limits.append(("pediatric_fixed_dose", "envelope_pediatric_fixed_dose",
                                f"{amount_mg:g} mg is a fixed adult amount and this patient is a child by the safety "
                                "envelope's definition: dose by the pediatric protocol"))
            self.never = True
        if patient.medications is None:
            return
        now = patient.assessed_at
        # Two records of one drug at one time are one dose; the course is the episode since the onset.
        given = sorted({m.given_at for m in patient.medications if m.drug == drug.id and m.given_at <= now})
        onset = patient.crs_onset_at
        course = [t for t in given if onset is None or t >= onset]
        # For a regimen on the escalation ladder, the interval counts doses of the same amount or
        # more: an escalation is never delayed. Any other dose counts whatever its amount.
        escalating = regimen.step is not None and amount_mg is not None
        spaced = sorted({m.given_at for m in patient.medications if m.drug == drug.id and m.given_at <= now
                         and (not escalating or m.dose_mg is None or amount_mg is None or m.dose_mg >= amount_mg)})
        if hard.max_doses_per_course is not None and len(course) >= hard.max_doses_per_course:
            self.limits.append(("max_doses_per_course", "envelope_max_doses_per_course",
                                f"{len(course)} doses already given in this course (the safety envelope allows "
                                f"at most {hard.max_doses_per_course})"))
            self.never = True
        if hard.max_doses_in_window is not None and hard.window_h is not None:
            window = timedelta(hours=hard.window_h)
            in_window = [t for t in given if now - t < window]
            if len(in_window) >= hard.max_doses_in_window:
                self.limits.append(("max_doses_in_window", "envelope_max_doses_in_window",
                                    f"{len(in_window)} doses in the last {_hours(hard.window_h)} (the safety "
                                    f"envelope allows at most {hard.max_doses_in_window})"))
                self.waits.append(in_window[len(in_window) - hard.max_doses_in_window] + window)
        interval = hard.min_interval_for(regimen.id)
        if spaced and interval is not None and now - spaced[-1] < timedelta(hours=interval):
            elapsed = (now - spaced[-1]).total_seconds() / 3600
            self.limits.append(("min_interval_h", "envelope_min_interval_h",
                                f"last dose {shown(elapsed, [interval])} h ago (the safety envelope requires at "
                                f"least {_hours(interval)} between doses)"))
            self.waits.append(spaced[-1] + timedelta(hours=interval))

    def merge(self, reached: list[str], reasons: list[str], waits: list[datetime]) -> None:
        """Add the envelope's findings to the pack's (once: a later call adds nothing)."""
        for doubles, name, reason in self.limits:
            # The pack's class spacing (by escalation step) is its interval for stepped regimens.
            pack_has_it = doubles in reached or (doubles == "min_interval_h" and "class_interval_h" in reached)
            if not pack_has_it and name not in reached:
                reached.append(name)
                reasons.append(reason)
        waits.extend(self.waits)
        self.limits, self.waits = [], []

"""The dose rules of the compiled chain: a dose proposed for every certainly-proposed action with a
drug, and one engine rule per limit of the drug that withholds it. Generated from ``dosing.yaml``, so
every number stays in the YAML; the amount is computed exactly (:func:`compute_amount`), the only place
of the chain with arithmetic on doses.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from typing import Any, Callable, Protocol, Sequence

from .engine import Firing
from .fact_kinds import HISTORY_UNKNOWN, FactKind
from .model import HOURS_PER_DAY, Drug, Regimen
from .numbers import exact_decimal

__all__ = ["Bookkeeping", "add_dose_rules", "compute_amount"]

Test = dict[str, Any]


class Bookkeeping(Protocol):
    """The once-per-evaluation record of conclusions (:class:`~crs_rules.compilation.CompiledProtocol`)."""

    def once(self, key: str, rule: str | None = None) -> bool: ...


def compute_amount(regimen: Regimen, drug: Drug, weight_kg: float) -> tuple[int | float, str]:
    """The amount of one dose, rounded down and capped, with how it was reached, in words."""
    amount = regimen.amount
    assert amount is not None, "validated packs give every regimen an amount"
    if amount.fixed_mg is not None:
        return _fixed_amount(amount.fixed_mg, amount.round_down_to_mg, drug.limits.max_dose_mg)
    # Numbers compare as the decimals they are written as (the shortest decimal that reads back
    # to a float orders as the float does), so the band is found without exact arithmetic.
    band = [b for b in amount.per_kg if b.from_weight_kg <= weight_kg][-1]
    value = _exact(band.mg_per_kg) * exact_decimal(weight_kg)
    how = f"{_number(band.mg_per_kg)} mg/kg x {_number(weight_kg)} kg = {_number(float(value))} mg"
    return _rounded_and_capped(value, how, amount.round_down_to_mg, drug.limits.max_dose_mg)


@lru_cache(maxsize=1024)
def _fixed_amount(fixed_mg: float, round_down_to_mg: float | None,
                  max_dose_mg: float | None) -> tuple[int | float, str]:
    """:func:`compute_amount` of a fixed amount (pack numbers only: kept)."""
    return _rounded_and_capped(_exact(fixed_mg), f"{_number(fixed_mg)} mg", round_down_to_mg, max_dose_mg)


def _rounded_and_capped(value: Fraction, how: str, round_down_to_mg: float | None,
                        max_dose_mg: float | None) -> tuple[int | float, str]:
    if round_down_to_mg is not None:
        step = _exact(round_down_to_mg)
        # Rounded down to a whole number of steps: the floor of the quotient, in whole numbers.
        steps = (value.numerator * step.denominator) // (value.denominator * step.numerator)
        value = Fraction(steps * step.numerator, step.denominator)
    if max_dose_mg is not None and value > _exact(max_dose_mg):
        value = _exact(max_dose_mg)
        how += f", capped at the maximum of {_number(max_dose_mg)} mg"
    result = int(value) if value.denominator == 1 else float(value)
    return result, how


@lru_cache(maxsize=1024)
def _exact(number: float) -> Fraction:
    """A number of the pack as the decimal it is written as (pack numbers are few: kept)."""
    return exact_decimal(number)


#: The kinds of the facts the handlers assert (an enum member's value read once).
DOSE, WITHHELD = FactKind.DOSE.value, FactKind.WITHHELD.value


def _handler_reads(drug: Drug) -> tuple[str, ...]:
    """The observation's paths the dose proposal of ``drug`` reads."""
    return ("patient.weight_kg", "patient.child", f"history.{drug.id}.hours_since_first_in_course")


def _number(value: float) -> str:
    return f"{value:g}" if float(value) != int(value) else str(int(value))


def add_dose_rules(drug: Drug, rules: dict[str, dict[str, Any]], handlers: dict[str, Callable[[Firing], None]],
                    holder: Sequence[Bookkeeping], classes: tuple[str, ...] = (),
                    reads: set[str] | None = None) -> None:
    """The dose proposal and the limit checks of one drug, generated from its limits. ``classes``:
    the drug's classes spaced by escalation step. ``reads``, when given, receives the paths of the
    observation the handlers read (beyond those the rules test)."""
    if reads is not None:
        reads.update(_handler_reads(drug))

    def _recorded(name: str, effect: Callable[[Firing], None]) -> Callable[[Firing], None]:
        def handler(firing: Firing) -> None:
            # Once per dose: a drug proposed by two rules gets two doses, each checked.
            key = f"{name}@{firing.matched['a' if 'a' in firing.matched else 'd']['rule']}"
            if holder[0].once(key, drug.rule_id):
                effect(firing)

        return handler
    observation = {"o": {"t": FactKind.OBSERVATION.value}}
    proposed_action = {"a": {"$and": [{"t": FactKind.ACTION.value}, {"drug": drug.id}]}}
    propose = f"{drug.rule_id}.propose"
    rules[propose] = {"all": [proposed_action, observation]}

    def propose_dose(firing: Firing) -> None:
        # Reads exactly the paths _handler_reads names (the observation holds only what is read).
        # Of the observation, only those values are read (it is not decoded whole).
        action, patient = firing.matched["a"], {"patient": firing.read("o", "patient")}
        regimen = drug.regimen(action["regimen"])
        assert regimen is not None, "validated packs name existing regimens"
        dose: dict[str, Any] = {"t": DOSE, "rule": action["rule"], "action": action["action"],
                                "drug": drug.id, "regimen": regimen.id}
        try:
            first = firing.read("o", "history", drug.id, "hours_since_first_in_course")
        except KeyError:
            first = None
        if (regimen.for_days is not None and regimen.then is not None and first is not None
                and first >= regimen.for_days * HOURS_PER_DAY):
            # The course is complete: what follows it (the taper), with no amount.
            dose.update(then_only=True, how=f"the {_number(regimen.for_days)}-day course is complete: {regimen.then}")
        elif patient["patient"].get("child") and regimen.amount is not None and regimen.amount.fixed_mg is not None:
            # A fixed amount is an adult dose: no amount for a child.
            dose.update(how="no amount: a child, dose by the pediatric protocol")
        else:
            amount, how = compute_amount(regimen, drug, patient["patient"]["weight_kg"])
            dose.update(amount_mg=amount, how=how)
        firing.assert_fact(dose)

    handlers[propose] = _recorded(propose, propose_dose)

    def limit_rule(limit: str, observation_test: Test, regimen: str | None = None) -> None:
        name = f"{drug.rule_id}.{limit}" + (f".{regimen}" if regimen else "")
        dose_tests: list[Test] = [{"t": FactKind.DOSE.value}, {"drug": drug.id}]
        if regimen:
            dose_tests.append({"regimen": regimen})
        rules[name] = {"all": [{"d": {"$and": dose_tests}},
                               {"o": {"$and": [{"t": FactKind.OBSERVATION.value}, observation_test]}}]}

        def withhold(firing: Firing) -> None:
            dose = firing.matched["d"]
            firing.assert_fact({"t": WITHHELD, "rule": dose["rule"], "action": dose["action"],
                                "drug": drug.id, "limit": limit})

        handlers[name] = _recorded(name, withhold)

    history = f"history.{drug.id}"
    limits = drug.limits
    reads_history = (
        limits.min_interval_h is not None or limits.max_doses_in_window is not None
        or limits.max_doses_per_course is not None or limits.repeat_only_if_not_improving
        or any(r.interval_h is not None for r in drug.regimens)
    )
    if reads_history:
        # Without the medication record no history limit can be checked: the dose waits for it.
        limit_rule(HISTORY_UNKNOWN, {"$nex": {f"{history}.given": 1}})
    if limits.max_doses_per_course is not None:
        limit_rule("max_doses_per_course", {"$gte": {f"{history}.doses_in_course": limits.max_doses_per_course}})
    if limits.max_doses_in_window is not None:
        limit_rule("max_doses_in_window", {"$gte": {f"{history}.doses_in_window": limits.max_doses_in_window}})
    for regimen in drug.regimens:
        intervals = [h for h in (limits.min_interval_h, regimen.interval_h) if h is not None]
        if classes and regimen.step is not None:
            # Spaced as a class: the same or a lower step waits for its interval after the class's
            # last dose; a higher step (escalation) does not wait.
            for class_id in classes:
                if intervals:
                    limit_rule("class_interval_h", {"$and": [
                        {"$gte": {f"history.{class_id}.last_step": regimen.step}},
                        {"$lt": {f"history.{class_id}.hours_since_last_step": max(intervals)}}]}, regimen.id)
        elif intervals:
            limit_rule("min_interval_h", {"$lt": {f"{history}.hours_since_last": max(intervals)}}, regimen.id)
    if limits.repeat_only_if_not_improving:
        limit_rule("repeat_only_if_not_improving",
                   {"$and": [{f"{history}.given": True}, {"crs.improving": True}]})

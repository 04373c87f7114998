"""Hypothesis strategies for patient states, valid and invalid.

Every valid state is a plain mapping following ``schemas/patient.schema.json`` (the input
contract), the way a caller builds one from JSON or YAML. The values crowd the places where the
protocol changes its answer: weights around 30 kg (the per-kg band) and 100 kg (where 8 mg/kg
reaches the 800 mg cap), temperatures around 38.0 °C and 100.4 °F, nasal cannula flows around
6 L/min, vasopressor sets with and without vasopressin, tocilizumab doses exactly 8 h and exactly
24 h before the assessment, corticosteroid doses either side of 6 h and 12 h, and date-times written
with every offset style the contract allows. Drug names in the medication record and the proposed
orders are written under any name the rule pack's vocabulary gives the drug (``rules/dosing.yaml``
``names``, plus a few written here by hand, such as ``ACTEMRA``), in any letter case, and a dose is
sometimes recorded twice under two of its names; :func:`drug_of` tells which drug a name stands for.

An invalid state is a valid one with exactly one thing made wrong (:func:`invalid_patient_states`).
The strategies know no protocol number beyond these boundaries, which they only aim at.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import yaml
from hypothesis import strategies as st

__all__ = [
    "OXYGEN_DEVICES",
    "VASOPRESSORS",
    "CORTICOSTEROIDS",
    "GM_CSF",
    "render_time",
    "weights_kg",
    "temperatures",
    "oxygen_support",
    "vasopressor_lists",
    "VASOPRESSOR_NAMES",
    "VASOPRESSIN_LIKE",
    "DRUG_NAMES",
    "drug_of",
    "written_names",
    "tocilizumab_histories",
    "steroid_histories",
    "medication_histories",
    "proposed_order_lists",
    "patient_states",
    "complete_patient_states",
    "febrile_hypotensive_states",
    "states_after_methylprednisolone",
    "invalid_patient_states",
]

OXYGEN_DEVICES = (
    "room_air",
    "blow_by",
    "nasal_cannula",
    "high_flow_nasal_cannula",
    "face_mask",
    "non_rebreather",
    "venturi",
    "cpap",
    "bipap",
    "mechanical_ventilation",
)
VASOPRESSORS = ("norepinephrine", "epinephrine", "phenylephrine", "dopamine", "vasopressin")
#: Other names of the vasopressors, as a prescriber may write them, and the drug each stands for.
VASOPRESSOR_NAMES = {
    **{name: name for name in VASOPRESSORS}, "noradrenaline": "norepinephrine", "Levophed": "norepinephrine",
    "NOREPINEPHRINE": "norepinephrine", "adrenaline": "epinephrine", "Adrenaline": "epinephrine",
    "argipressin": "vasopressin", "Vasostrict": "vasopressin", "terlipressin": "terlipressin",
    "angiotensin ii": "angiotensin_ii", "Giapreza": "angiotensin_ii",
}
_WRITTEN_PRESSORS = tuple(VASOPRESSOR_NAMES)
#: Looked up in lowercase: letter case does not matter.
VASOPRESSOR_NAMES = {name.lower(): drug for name, drug in VASOPRESSOR_NAMES.items()}
#: Vasopressin and its analogue: they do not count toward "multiple vasopressors".
VASOPRESSIN_LIKE = frozenset({"vasopressin", "terlipressin"})
CORTICOSTEROIDS = ("dexamethasone", "methylprednisolone", "hydrocortisone", "prednisone", "prednisolone")
GM_CSF = ("sargramostim", "molgramostim")
OTHER_DRUGS = ("acetaminophen", "cefepime", "siltuximab", "anakinra")

HOUR = timedelta(hours=1)
# Assessment moments: round hours, and moments with seconds and fractions of a second.
_BASE = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
_OFFSETS = (timezone.utc, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5)),
            timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-9, minutes=-30)))

Draw = Callable[..., Any]


# --------------------------------------------------------------------------------------------
# Date-times


def render_time(moment: datetime, zone: timezone, style: str) -> str | datetime:
    """``moment`` written in ``zone`` the way a caller may write it: ``Z`` (UTC only), an offset,
    a space instead of the T, no seconds (when there are none), or a timezone-aware datetime."""
    local = moment.astimezone(zone)
    if style == "datetime":
        return local
    text = local.isoformat()  # YYYY-MM-DDThh:mm:ss[.ffffff]+hh:mm
    if style == "short" and local.second == 0 and local.microsecond == 0:
        text = text[:16] + text[19:]
    if style == "space":
        text = text[:10] + " " + text[11:]
    if zone is timezone.utc and style != "offset":
        text = text.removesuffix("+00:00") + "Z"
    return text


_STYLES = ("Z", "Z", "offset", "space", "short", "datetime")
# One draw for both: how a time is written, and in which zone.
_WRITINGS = st.sampled_from(tuple((zone, style) for style in _STYLES for zone in _OFFSETS))
# Built once: strategies made inside a composite are validated again at every draw, which costs
# more than the evaluation under test. Rare extras are chosen by the highest value of a draw, so
# that shrinking (towards 0) leaves them out of a minimal failing example.
_booleans = st.booleans()
_quarter = st.integers(0, 3)
_fifth = st.integers(0, 4)
_hours_in_a_month = st.integers(0, 24 * 30)
_seconds_in_an_hour = st.integers(0, 3599)
_microseconds = st.integers(1, 999_999)
_minutes_in_three_days = st.integers(0, 72 * 60)
_unknown = st.sampled_from((True, False, None))
_ABSENT_OR_UNKNOWN = st.sampled_from(("absent", True, True, False, False, None, None))
_position = st.integers(0, 1_000)


# The edges of the calendar: the first day of year 1 (nothing before it exists), and the day
# before the last (every time a dose could become eligible again is still in the calendar).
_EARLIEST = datetime.min.replace(tzinfo=timezone.utc)
_EDGE_BASES = st.sampled_from((
    _EARLIEST, _EARLIEST + timedelta(hours=7, minutes=59, seconds=59), _EARLIEST + timedelta(hours=12),
    _EARLIEST + timedelta(days=1), datetime(9999, 12, 30, 0, 0, tzinfo=timezone.utc),
    datetime(9999, 12, 30, 23, 0, tzinfo=timezone.utc),
))
_one_in_twenty = st.integers(0, 19)


def _render(draw: Draw, moment: datetime) -> str | datetime:
    zone, style = draw(_WRITINGS)
    try:
        return render_time(moment, zone, style)
    except OverflowError:  # at the edges of the calendar, only UTC can write the moment
        return render_time(moment, timezone.utc, "Z")


def _before(moment: datetime, age: timedelta) -> datetime:
    """``age`` before ``moment``, or the first instant of the calendar if that is later. In UTC: a
    moment read back with its offset (year 1 at -05:00) cannot be compared near the calendar's edge."""
    moment = moment.astimezone(timezone.utc)
    return moment - age if moment - _EARLIEST >= age else _EARLIEST


def _assessment_time(draw: Draw) -> datetime:
    """An assessment moment: mostly whole hours, sometimes with seconds and microseconds, and now
    and then at an edge of the calendar."""
    if draw(_one_in_twenty) == 19:
        base: datetime = draw(_EDGE_BASES)
        return base
    moment = _BASE + timedelta(hours=draw(_hours_in_a_month))
    if draw(_booleans):
        moment += timedelta(seconds=draw(_seconds_in_an_hour))
    if draw(_quarter) == 3:
        moment += timedelta(microseconds=draw(_microseconds))
    return moment


# Time before the assessment: exactly 6 h, 8 h, 12 h and 24 h, either side of each by a second (or a
# minute), and anything in three days, sometimes with a fraction of a second.
_EDGE_AGES = st.sampled_from(tuple(
    timedelta(seconds=s)
    for s in (0, 1, 60, 4 * 3600, 6 * 3600 - 1, 6 * 3600, 8 * 3600 - 60, 8 * 3600 - 1, 8 * 3600, 8 * 3600 + 1,
              12 * 3600 - 1, 12 * 3600, 12 * 3600 + 1, 16 * 3600, 16 * 3600 + 1, 24 * 3600 - 60, 24 * 3600 - 1, 24 * 3600,
              24 * 3600 + 1, 24 * 3600 + 60, 32 * 3600, 48 * 3600)
))


def _dose_age(draw: Draw) -> timedelta:
    """How long before the assessment a dose was given (never after it)."""
    age: timedelta = draw(_EDGE_AGES) if draw(_booleans) else timedelta(minutes=draw(_minutes_in_three_days))
    if draw(_fifth) == 4:
        age += timedelta(microseconds=draw(_microseconds))
    return age


@st.composite
def assessment_times(draw: Draw) -> datetime:
    """An assessment moment: mostly whole hours, sometimes with seconds and microseconds."""
    return _assessment_time(draw)


@st.composite
def dose_ages(draw: Draw) -> timedelta:
    """How long before the assessment a dose was given: 0, exactly 8 h or 24 h (or a second or a
    minute either side), or anything in three days."""
    return _dose_age(draw)


# --------------------------------------------------------------------------------------------
# Single fields

_WEIGHTS = st.one_of(
    st.sampled_from((29.9, 29.99, 30, 30.0, 30.01, 30.1, 99.9, 99.99, 100, 100.0, 100.01, 100.1,
                     100.125, 24.3, 0.5, 650, 650.0)),
    st.integers(290, 310).map(lambda n: n / 10),
    st.integers(990, 1010).map(lambda n: n / 10),
    st.floats(29.0, 31.0),
    st.floats(99.0, 101.0),
    st.integers(1, 650),
    st.integers(5, 6500).map(lambda n: n / 10),
    st.floats(0.3, 650.0),
)


def weights_kg() -> st.SearchStrategy[int | float]:
    """Body weights: around 30 kg and 100 kg in tenths, hundredths and raw floats, the exact
    boundaries as int and float, and anything from a premature infant to the contract's limit."""
    return _WEIGHTS


_CELSIUS = st.one_of(
    st.sampled_from((37.9, 38.0, 38, 38.1, 37.99, 38.01, 37.999999999, 37.99999999999999)),
    st.integers(360, 410).map(lambda n: n / 10),
    st.floats(37.8, 38.2),
    st.floats(13.0, 47.0),
)
_FAHRENHEIT = st.one_of(
    st.sampled_from((100.4, 100.3, 100.5, 100.39, 100.41, 100, 101, 100.39999999999999)),
    st.integers(970, 1060).map(lambda n: n / 10),
    st.floats(100.0, 100.8),
    st.floats(55.4, 116.6),
)
_TEMPERATURES: st.SearchStrategy[dict[str, int | float]] = st.one_of(
    _CELSIUS.map(lambda t: {"temperature_c": t}),
    _CELSIUS.map(lambda t: {"temperature_c": t}),
    _FAHRENHEIT.map(lambda t: {"temperature_f": t}),
    st.just({}),
)
_FEVERS = st.one_of(st.sampled_from((38.0, 38, 39.2)), st.floats(38.0, 41.0))


def temperatures() -> st.SearchStrategy[dict[str, int | float]]:
    """A temperature in °C or °F, crowded around 38.0 °C and 100.4 °F; sometimes none."""
    return _TEMPERATURES


_DEVICES = st.sampled_from((None,) + OXYGEN_DEVICES + ("nasal_cannula", "nasal_cannula"))
_NASAL_FLOWS = st.one_of(
    st.sampled_from((6, 6.0, 5.9, 6.1, 5.99, 6.01, 6.000001, 0, 0.5, 15)),
    st.integers(0, 15),
    st.integers(0, 150).map(lambda n: n / 10),
    st.floats(5.0, 7.0),
)
_ROOM_AIR_FLOWS = st.sampled_from((0, 0.0))
_OTHER_FLOWS = st.one_of(st.integers(0, 60), st.floats(0.0, 100.0))


def _oxygen(draw: Draw) -> dict[str, Any] | None:
    device = draw(_DEVICES)
    if device is None:
        return None
    oxygen: dict[str, Any] = {"device": device}
    if device == "nasal_cannula":
        oxygen["flow_l_min"] = draw(_NASAL_FLOWS)
    elif device == "room_air":
        if draw(_booleans):
            oxygen["flow_l_min"] = draw(_ROOM_AIR_FLOWS)
    elif draw(_booleans):
        oxygen["flow_l_min"] = draw(_OTHER_FLOWS)
    return oxygen


@st.composite
def oxygen_support(draw: Draw) -> dict[str, Any] | None:
    """Oxygen support: every device; nasal cannula always with a flow, crowded around 6 L/min;
    room air with no flow or 0; other devices with or without a flow. None: no oxygen section."""
    return _oxygen(draw)


def _spellings(name: str, count: int) -> tuple[str, ...]:
    return tuple("".join(c.upper() if i >> (k % 16) & 1 else c for k, c in enumerate(name)) for i in range(count))


# Nearly as many names as the contract allows (20): one short, so that a property may add one;
# letter-case spellings of two vasopressors, which count as two.
_MANY_PRESSORS = _spellings("noradrenaline", 10) + _spellings("phenylephrine", 9)
_VASOPRESSOR_LISTS = st.one_of(
    st.sampled_from(((), ("vasopressin",), ("vasopressin", "norepinephrine"), ("norepinephrine", "epinephrine"),
                     (), ("vasopressin",), ("vasopressin", "norepinephrine"), ("norepinephrine", "epinephrine"),
                     _MANY_PRESSORS, ("vasopressin",) + _MANY_PRESSORS[:1])),
    st.lists(st.sampled_from(_WRITTEN_PRESSORS), min_size=1, max_size=5).map(tuple),
)


def vasopressor_lists() -> st.SearchStrategy[list[str]]:
    """Vasopressors running now: none, vasopressin alone or with others, two or more without it,
    sometimes a name repeated (which counts once)."""
    return _VASOPRESSOR_LISTS.map(list)


# --------------------------------------------------------------------------------------------
# Drug names: any name of the pack's vocabulary, in any letter case

_ROOT = Path(__file__).resolve().parent.parent


def _pack_vocabulary() -> dict[str, tuple[str, ...]]:
    """Each drug of the shipped pack's vocabulary and every name it may be written under."""
    data = yaml.safe_load((_ROOT / "rules" / "dosing.yaml").read_text(encoding="utf-8"))
    return {entry["id"]: (entry["id"], *entry["synonyms"]) for entry in data["names"]}


#: Names written here by hand, as a prescriber or a pharmacy system may write them, and the drug
#: each stands for: a pack that lost one of them, or gave it to another drug, fails the properties.
HAND_WRITTEN_NAMES = {
    "ACTEMRA": "tocilizumab", "Tocilizumab-AAZG": "tocilizumab", "RoActemra": "tocilizumab",
    "TYENNE": "tocilizumab", "tocilizumab-BAVI": "tocilizumab", "Tofidence": "tocilizumab",
    "Avtozma": "tocilizumab", "Leukine": "sargramostim", "Decadron": "dexamethasone",
    "Solu-Medrol": "methylprednisolone", "SoluMedrol": "methylprednisolone",
}
_NAMES_OF: dict[str, tuple[str, ...]] = _pack_vocabulary()
for _name, _drug in HAND_WRITTEN_NAMES.items():
    _NAMES_OF[_drug] = (*_NAMES_OF.get(_drug, (_drug,)), _name)
#: Every name (lowercase) and the drug it stands for.
DRUG_NAMES: dict[str, str] = {name.lower(): drug for drug, names in _NAMES_OF.items() for name in names}


def drug_of(name: str) -> str:
    """The drug a written name stands for, whatever its letter case: the vocabulary's drug, or the
    name itself in lowercase (a drug the vocabulary lists under its id only, or no drug of it)."""
    key = name.lower()
    return DRUG_NAMES.get(key, key)


# Built once per drug (see above): the drug's names, its id first, so that shrinking writes the id.
_NAME_CHOICES: dict[str, st.SearchStrategy[str]] = {}
_CASES = st.sampled_from(("as written", "as written", "upper", "title", "mixed"))
_CASE_MASKS = st.integers(0, 2**16 - 1)


def _written(draw: Draw, drug: str) -> str:
    """``drug`` written under one of its names, in one letter case."""
    choices = _NAME_CHOICES.get(drug)
    if choices is None:
        choices = _NAME_CHOICES[drug] = st.sampled_from(_NAMES_OF.get(drug, (drug,)))
    name: str = draw(choices)
    case = draw(_CASES)
    if case == "upper":
        return name.upper()
    if case == "title":
        return name.title()
    if case == "mixed":
        mask = draw(_CASE_MASKS)
        return "".join(c.upper() if mask >> (k % 16) & 1 else c for k, c in enumerate(name))
    return name


@st.composite
def written_names(draw: Draw, drug: str) -> str:
    """``drug`` under any of its names, in any letter case."""
    return _written(draw, drug)


# --------------------------------------------------------------------------------------------
# Medication history and orders

_GIVEN_MG = st.sampled_from((10, 500, 608, 656, 720, 800, 1000, 291.5))
_TOCILIZUMAB_COUNTS = st.sampled_from((0, 0, 1, 2, 3, 3, 4, 5, 6))
_STEROIDS = st.lists(st.sampled_from(CORTICOSTEROIDS), max_size=3)
_OTHERS = st.lists(st.sampled_from(OTHER_DRUGS + GM_CSF), max_size=2)


def _dose(draw: Draw, drug: str, assessed_at: datetime) -> dict[str, Any]:
    entry: dict[str, Any] = {"drug": _written(draw, drug), "given_at": _render(draw, _before(assessed_at, _dose_age(draw)))}
    if draw(_booleans):
        entry["dose_mg"] = draw(_GIVEN_MG)
    return entry


# Gaps between doses of a course: every 8 h (so three doses span exactly 16 h and a fourth falls
# exactly 24 h after the first), a second or a minute either side, or longer.
_GAPS = st.sampled_from(tuple(timedelta(seconds=s) for s in (
    8 * 3600, 8 * 3600, 8 * 3600, 8 * 3600 - 1, 8 * 3600 + 1, 8 * 3600 - 60, 12 * 3600, 16 * 3600, 24 * 3600)))


def _tocilizumab_history(draw: Draw, assessed_at: datetime) -> list[dict[str, Any]]:
    count = draw(_TOCILIZUMAB_COUNTS)
    if draw(_booleans):
        return [_dose(draw, "tocilizumab", assessed_at) for _ in range(count)]
    # A course: the last dose at some age, the earlier ones at schedule-like gaps before it.
    doses, age = [], _dose_age(draw)
    for _ in range(count):
        given = _before(assessed_at, age)
        entry: dict[str, Any] = {"drug": _written(draw, "tocilizumab"), "given_at": _render(draw, given)}
        doses.append(entry)
        age += draw(_GAPS)
    return doses


def _steroid_history(draw: Draw, assessed_at: datetime) -> list[dict[str, Any]]:
    return [_dose(draw, drug, assessed_at) for drug in draw(_STEROIDS)]


def _medication_history(draw: Draw, assessed_at: datetime) -> list[dict[str, Any]]:
    history = _tocilizumab_history(draw, assessed_at) + _steroid_history(draw, assessed_at)
    history += [_dose(draw, drug, assessed_at) for drug in draw(_OTHERS)]
    if history and draw(_quarter) == 3:
        # One dose recorded twice, under another (or the same) name: one dose.
        twice = dict(history[draw(_position) % len(history)])
        twice["drug"] = _written(draw, drug_of(twice["drug"]))
        history.append(twice)
    # Any order: each entry moves to a drawn place.
    mixed: list[dict[str, Any]] = []
    for entry in history:
        mixed.insert(draw(_position) % (len(mixed) + 1), entry)
    return mixed


@st.composite
def tocilizumab_histories(draw: Draw, assessed_at: datetime) -> list[dict[str, Any]]:
    """Tocilizumab doses already given: none to six (the course allows four), at edge ages, under
    any of its names."""
    return _tocilizumab_history(draw, assessed_at)


@st.composite
def steroid_histories(draw: Draw, assessed_at: datetime) -> list[dict[str, Any]]:
    """Corticosteroid doses already given: none to three, of any corticosteroid, under any name."""
    return _steroid_history(draw, assessed_at)


@st.composite
def medication_histories(draw: Draw, assessed_at: datetime) -> list[dict[str, Any]]:
    """Tocilizumab, corticosteroids and unrelated drugs given before the assessment, in any order,
    under any of their names; sometimes one dose recorded twice."""
    return _medication_history(draw, assessed_at)


_ORDERED_DRUGS = st.lists(
    st.sampled_from(GM_CSF + CORTICOSTEROIDS[:2] + ("tocilizumab",) + OTHER_DRUGS[:2]), max_size=4
)


def _orders(draw: Draw) -> list[dict[str, str]]:
    return [{"drug": _written(draw, drug)} for drug in draw(_ORDERED_DRUGS)]


@st.composite
def proposed_order_lists(draw: Draw) -> list[dict[str, str]]:
    """Orders someone is about to place: GM-CSF among others, under any of their names, repeats
    allowed."""
    return _orders(draw)


# --------------------------------------------------------------------------------------------
# Whole states


def _maybe_booleans(draw: Draw, names: tuple[str, ...]) -> dict[str, bool | None]:
    """Each named boolean: true, false, null (unknown) or absent."""
    section: dict[str, bool | None] = {}
    for name in names:
        value = draw(_ABSENT_OR_UNKNOWN)
        if value != "absent":
            section[name] = value
    return section


_AGES = st.one_of(st.sampled_from((0, 1, 1.9, 2, 7, 17, 18, 66, 130)), st.integers(0, 100))
_ONSET_AGES = st.one_of(
    st.sampled_from((timedelta(0), timedelta(days=3), timedelta(days=3, seconds=1), timedelta(days=3, seconds=-1))),
    st.integers(0, 10 * 24).map(lambda h: timedelta(hours=h)),
)
_NOT_REFRACTORY = st.sampled_from((False, None))


def _patient_state(draw: Draw, fever: bool | None, hypotension: bool | None, complete: bool = False) -> dict[str, Any]:
    assessed_at = _assessment_time(draw)
    state: dict[str, Any] = {"assessed_at": _render(draw, assessed_at)}

    patient: dict[str, Any] = {"weight_kg": draw(_WEIGHTS)}
    if draw(_booleans):
        patient["age_years"] = draw(_AGES)
    patient.update(_maybe_booleans(draw, ("neutropenic", "significant_comorbidities")))
    state["patient"] = patient

    if complete:
        state["therapy"] = {"car_t": True}
    elif draw(_quarter):
        state["therapy"] = _maybe_booleans(draw, ("car_t",))

    if complete or draw(_fifth):
        crs: dict[str, Any] = _maybe_booleans(draw, ("antipyretic_or_anticytokine", "improving", "suspected_mas"))
        if complete or draw(_booleans):
            crs["onset_at"] = _render(draw, _before(assessed_at, draw(_ONSET_AGES)))
        state["crs"] = crs

    if draw(_quarter) == 3:
        state["sepsis"] = _maybe_booleans(draw, ("septic_shock", "improving"))

    vitals: dict[str, Any] = {}
    if fever:
        vitals["temperature_c"] = draw(_FEVERS)
    else:
        vitals.update(draw(_TEMPERATURES))
        if complete and not vitals:
            vitals["temperature_c"] = draw(_FEVERS) if draw(_booleans) else 37.0
    low_pressure = hypotension if hypotension is not None else draw(st.booleans() if complete else _unknown)
    if low_pressure is not None or draw(_booleans):
        vitals["hypotension"] = low_pressure
    if low_pressure is True:
        if complete or draw(_quarter):
            vitals["vasopressors"] = list(draw(_VASOPRESSOR_LISTS))
        if draw(_booleans):
            vitals["refractory_hypotension"] = draw(_unknown)
    elif draw(_quarter) == 3:
        vitals["refractory_hypotension"] = draw(_NOT_REFRACTORY)
        if draw(_booleans):
            vitals["vasopressors"] = []
    oxygen = _oxygen(draw)
    if oxygen is None and complete:
        oxygen = {"device": "room_air"}
    if oxygen is not None:
        vitals["oxygen"] = oxygen
    if vitals or draw(_booleans):
        state["vitals"] = vitals

    if draw(_quarter) == 3:
        state["neuro"] = _maybe_booleans(draw, ("icans_signs",))

    if complete or draw(_fifth):
        state["medications"] = _medication_history(draw, assessed_at)
    if draw(_booleans):
        state["proposed_orders"] = _orders(draw)
    return state


@st.composite
def _states(draw: Draw, fever: bool | None, hypotension: bool | None, complete: bool = False) -> dict[str, Any]:
    return _patient_state(draw, fever, hypotension, complete)


_ANY_STATE = _states(None, None)
_FEBRILE_HYPOTENSIVE_STATE = _states(True, True)
_COMPLETE_STATE = _states(None, None, True)
_COMPLETE_FEBRILE_HYPOTENSIVE_STATE = _states(True, True, True)


def complete_patient_states(*, febrile_hypotensive: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    """Valid states in which every input that decides the grade and the tocilizumab dose is
    recorded: CAR T therapy, the temperature, blood pressure (with the vasopressors when
    hypotensive), the oxygen support, the CRS onset and the medication record. Other booleans may
    still be unknown."""
    return _COMPLETE_FEBRILE_HYPOTENSIVE_STATE if febrile_hypotensive else _COMPLETE_STATE


def patient_states(*, fever: bool | None = None, hypotension: bool | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """A valid patient state. Optional sections and fields are sometimes absent and booleans
    sometimes null. ``fever``/``hypotension`` True force a febrile or hypotensive patient (to
    reach the dosing rules more often); None leaves them to chance."""
    if fever is None and hypotension is None:
        return _ANY_STATE
    if fever is True and hypotension is True:
        return _FEBRILE_HYPOTENSIVE_STATE
    return _states(fever, hypotension)


def febrile_hypotensive_states() -> st.SearchStrategy[dict[str, Any]]:
    """Valid states with fever and hypotension, so at least grade 2: tocilizumab is always
    proposed, to be recommended or withheld."""
    return _FEBRILE_HYPOTENSIVE_STATE


_TWO_PRESSORS = st.tuples(st.sampled_from(("norepinephrine", "epinephrine")), st.sampled_from(("phenylephrine", "dopamine")))
_METHYLPREDNISOLONE_MG = st.sampled_from((None, 500, 500, 1000, 1000, 250, 750, 2000))
_IMPROVING = st.sampled_from((False, False, None, True))


@st.composite
def _after_methylprednisolone(draw: Draw) -> dict[str, Any]:
    state = _patient_state(draw, True, True, complete=draw(_booleans))
    assessed_at = _assessed(state)
    state["vitals"]["vasopressors"] = [_written(draw, drug) for drug in draw(_TWO_PRESSORS)]
    state.setdefault("crs", {})["improving"] = draw(_IMPROVING)
    dose: dict[str, Any] = {"drug": _written(draw, "methylprednisolone"),
                            "given_at": _render(draw, _before(assessed_at, _dose_age(draw)))}
    amount = draw(_METHYLPREDNISOLONE_MG)
    if amount is not None:
        dose["dose_mg"] = amount
    state["medications"] = [*state.get("medications", []), dose]
    return state


_AFTER_METHYLPREDNISOLONE = _after_methylprednisolone()


def states_after_methylprednisolone() -> st.SearchStrategy[dict[str, Any]]:
    """Fever and two vasopressors that count (grade 4 when CAR T is recorded), improvement not,
    unknown or (now and then) yes, and a methylprednisolone dose under any of its names, of
    500 mg, 1,000 mg, another amount or an unrecorded one, given at any dose age: where the
    1,000 mg escalation may replace the 500 mg regimen."""
    return _AFTER_METHYLPREDNISOLONE


# --------------------------------------------------------------------------------------------
# Invalid states: a valid state with one thing made wrong


def _vitals(state: dict[str, Any]) -> dict[str, Any]:
    vitals: dict[str, Any] = state.setdefault("vitals", {})
    return vitals


def _assessed(state: dict[str, Any]) -> datetime:
    value = state["assessed_at"]
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace(" ", "T").replace("Z", "+00:00"))


def _set_weight(value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(state: dict[str, Any]) -> None:
        state["patient"]["weight_kg"] = value
    return mutate


def _drop_weight(state: dict[str, Any]) -> None:
    del state["patient"]["weight_kg"]


def _drop_patient(state: dict[str, Any]) -> None:
    del state["patient"]


def _drop_assessed_at(state: dict[str, Any]) -> None:
    del state["assessed_at"]


def _set_temperature(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(state: dict[str, Any]) -> None:
        vitals = _vitals(state)
        vitals.pop("temperature_c", None)
        vitals.pop("temperature_f", None)
        vitals[key] = value
    return mutate


def _both_temperatures(state: dict[str, Any]) -> None:
    vitals = _vitals(state)
    vitals["temperature_c"] = 38.5
    vitals["temperature_f"] = 101.3


def _set_oxygen(oxygen: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(state: dict[str, Any]) -> None:
        _vitals(state)["oxygen"] = oxygen
    return mutate


def _offsetless_assessment(state: dict[str, Any]) -> None:
    state["assessed_at"] = _assessed(state).replace(tzinfo=None).isoformat()


def _offsetless_dose(state: dict[str, Any]) -> None:
    given = _before(_assessed(state), 2 * HOUR).astimezone(timezone.utc).replace(tzinfo=None)
    state.setdefault("medications", []).append({"drug": "tocilizumab", "given_at": given.isoformat()})


def _naive_datetime_assessment(state: dict[str, Any]) -> None:
    state["assessed_at"] = _assessed(state).replace(tzinfo=None)


def _dose_after_assessment(after: timedelta) -> Callable[[dict[str, Any]], None]:
    def mutate(state: dict[str, Any]) -> None:
        given = render_time(_assessed(state) + after, timezone.utc, "Z")
        state.setdefault("medications", []).append({"drug": "tocilizumab", "given_at": given})
    return mutate


def _onset_after_assessment(state: dict[str, Any]) -> None:
    state.setdefault("crs", {})["onset_at"] = render_time(_assessed(state) + HOUR, timezone.utc, "Z")


def _vasopressors_without_hypotension(value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(state: dict[str, Any]) -> None:
        vitals = _vitals(state)
        vitals["vasopressors"] = ["norepinephrine"]
        if value is _ABSENT:
            vitals.pop("hypotension", None)
        else:
            vitals["hypotension"] = value
    return mutate


def _set_field(section: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(state: dict[str, Any]) -> None:
        target = state.setdefault(section, {}) if section else state
        target[key] = value
    return mutate


def _bad_medication(entry: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(state: dict[str, Any]) -> None:
        state.setdefault("medications", []).append(entry)
    return mutate


_ABSENT = object()

#: (what is wrong, how to make it so). Each makes a valid state invalid in one way.
MUTATIONS: tuple[tuple[str, Callable[[dict[str, Any]], None]], ...] = (
    ("weight missing", _drop_weight),
    ("patient missing", _drop_patient),
    ("assessed_at missing", _drop_assessed_at),
    ("weight zero", _set_weight(0)),
    ("weight zero float", _set_weight(0.0)),
    ("weight negative", _set_weight(-70)),
    ("weight slightly negative", _set_weight(-0.1)),
    ("weight absurd", _set_weight(651)),
    ("weight absurd huge", _set_weight(10**6)),
    ("weight infinite", _set_weight(float("inf"))),
    ("weight NaN", _set_weight(float("nan"))),
    ("weight as text", _set_weight("70")),
    ("weight as boolean", _set_weight(True)),
    ("weight null", _set_weight(None)),
    ("temperature absurd high", _set_temperature("temperature_c", 47.1)),
    ("temperature absurd low", _set_temperature("temperature_c", 12.9)),
    ("temperature in kelvin", _set_temperature("temperature_c", 311.15)),
    ("temperature NaN", _set_temperature("temperature_c", float("nan"))),
    ("temperature as text", _set_temperature("temperature_c", "38.5")),
    ("fahrenheit absurd", _set_temperature("temperature_f", 120)),
    ("fahrenheit given as celsius", _set_temperature("temperature_f", 38.5)),
    ("both temperatures", _both_temperatures),
    ("unknown device", _set_oxygen({"device": "helmet"})),
    ("device in capitals", _set_oxygen({"device": "NASAL_CANNULA", "flow_l_min": 2})),
    ("negative flow", _set_oxygen({"device": "face_mask", "flow_l_min": -1})),
    ("negative nasal flow", _set_oxygen({"device": "nasal_cannula", "flow_l_min": -0.5})),
    ("absurd flow", _set_oxygen({"device": "high_flow_nasal_cannula", "flow_l_min": 101})),
    ("nasal cannula without flow", _set_oxygen({"device": "nasal_cannula"})),
    ("room air with flow", _set_oxygen({"device": "room_air", "flow_l_min": 2})),
    ("oxygen without device", _set_oxygen({"flow_l_min": 2})),
    ("oxygen as text", _set_oxygen("nasal_cannula")),
    ("assessed_at without offset", _offsetless_assessment),
    ("assessed_at naive datetime", _naive_datetime_assessment),
    ("assessed_at not a date", _set_field("", "assessed_at", "yesterday noon")),
    ("assessed_at impossible date", _set_field("", "assessed_at", "2026-02-30T12:00:00Z")),
    ("assessed_at as number", _set_field("", "assessed_at", 1773144000)),
    ("dose time without offset", _offsetless_dose),
    ("dose a second after assessment", _dose_after_assessment(timedelta(seconds=1))),
    ("dose a day after assessment", _dose_after_assessment(timedelta(days=1))),
    ("onset after assessment", _onset_after_assessment),
    ("vasopressors with hypotension false", _vasopressors_without_hypotension(False)),
    ("vasopressors with hypotension null", _vasopressors_without_hypotension(None)),
    ("vasopressors without hypotension", _vasopressors_without_hypotension(_ABSENT)),
    ("refractory without hypotension", lambda s: _vitals(s).update(hypotension=False, refractory_hypotension=True)),
    ("hypotension as text", _set_field("vitals", "hypotension", "true")),
    ("hypotension as number", _set_field("vitals", "hypotension", 1)),
    ("improving as text", _set_field("crs", "improving", "no")),
    ("car_t as number", _set_field("therapy", "car_t", 1)),
    ("age as text", _set_field("patient", "age_years", "61")),
    ("age negative", _set_field("patient", "age_years", -1)),
    ("age absurd", _set_field("patient", "age_years", 131)),
    ("vasopressors as text", lambda s: _vitals(s).update(hypotension=True, vasopressors="norepinephrine")),
    ("vasopressor misspelt", lambda s: _vitals(s).update(hypotension=True, vasopressors=["norepinephrin"])),
    ("inotrope as a vasopressor", lambda s: _vitals(s).update(hypotension=True, vasopressors=["dobutamine"])),
    ("unknown vasopressor", lambda s: _vitals(s).update(hypotension=True, vasopressors=["norepinephrine", "pressor7"])),
    ("medications as mapping", _set_field("", "medications", {"drug": "tocilizumab"})),
    ("medication without time", _bad_medication({"drug": "tocilizumab"})),
    ("medication without drug", _bad_medication({"given_at": "2020-01-01T00:00:00Z"})),
    ("medication zero dose", _bad_medication({"drug": "tocilizumab", "dose_mg": 0, "given_at": "2020-01-01T00:00:00Z"})),
    ("medication as text", _bad_medication("tocilizumab")),
    ("proposed order as text", _set_field("", "proposed_orders", ["sargramostim"])),
    ("unknown top-level key", _set_field("", "temprature_c", 38.5)),
    ("unknown patient key", _set_field("patient", "weight_lb", 150)),
    ("unknown vitals key", _set_field("vitals", "temprature_c", 38.5)),
    ("section as list", _set_field("", "crs", [])),
    ("vitals null", _set_field("", "vitals", None)),
)


_MUTATIONS = st.sampled_from(MUTATIONS)


@st.composite
def _invalid_states(draw: Draw) -> tuple[str, dict[str, Any]]:
    state = _patient_state(draw, None, None)
    name, mutate = draw(_MUTATIONS)
    mutate(state)
    return name, state


_INVALID_STATES = _invalid_states()


def invalid_patient_states() -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    """(what is wrong, a patient state with exactly that wrong): a valid state, one field made bad."""
    return _INVALID_STATES

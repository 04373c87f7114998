"""The names of drugs: the pack's vocabulary, and the patient's names mapped to it once, at the input.

Every drug name in a patient state (``medications``, ``proposed_orders``, ``vitals.vasopressors``)
is matched without regard to letter case against the pack's names (``dosing.yaml`` ``names``: each
drug's id and its synonyms, and every drug and class member id). A known name becomes the drug's
id, so every later stage (facts, compilation, the dose check) sees one name per drug. A name the
vocabulary does not know is kept as written: it is reported as unrecognised, and its doses count
toward no drug of the pack. ``vitals.vasopressors`` is a closed vocabulary: a name that is not a
member of the pack's vasopressor class (``vocabulary_of``) is an input error naming the value.

This module knows no drug name: every name comes from the pack.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterator

from ._patient_contract import replaced
from .errors import InvalidInputError, Problem
from .model import Protocol, Source
from .patient import Medication, PatientState, input_problem

__all__ = ["canonical_names", "normalise", "unrecognised", "vocabulary_problems", "key"]


def key(name: str) -> str:
    """How a name is matched: letter case and surrounding or repeated spaces do not matter."""
    return " ".join(name.split()).lower()


@lru_cache(maxsize=16)
def canonical_names(protocol: Protocol) -> dict[str, str]:
    """Every name the pack knows (lowercase) and the drug id it stands for."""
    names: dict[str, str] = {}
    for drug in protocol.drugs:
        names[drug.id] = drug.id
    for drug_class in protocol.drug_classes:
        for member in drug_class.members:
            names[member] = member
    for entry in protocol.names:
        names[entry.id] = entry.id
        for synonym in entry.synonyms:
            names.setdefault(key(synonym), entry.id)
    return names


def _canonical(protocol: Protocol, name: str) -> str:
    return canonical_names(protocol).get(key(name), name)


def unrecognised(patient: PatientState, protocol: Protocol) -> tuple[str, ...]:
    """The names in the medication record and the proposed orders the vocabulary does not know,
    as written, in order of first appearance."""
    known = canonical_names(protocol)
    written = [m.drug for m in patient.medications or ()] + list(patient.proposed_orders)
    return tuple(dict.fromkeys(n for n in written if key(n) not in known))


_VASOPRESSORS = ("vitals", "vasopressors")


@lru_cache(maxsize=16)
def _vasopressor_vocabulary(protocol: Protocol) -> tuple[frozenset[str], dict[str, str | None]]:
    """The drugs ``vitals.vasopressors`` accepts, and those it refuses with the reason."""
    list_path = ".".join(_VASOPRESSORS)
    accepted = frozenset(m for c in protocol.drug_classes if c.vocabulary_of == list_path for m in c.members)
    refused = {m: c.refusal for c in protocol.drug_classes if c.refused_from == list_path for m in c.members}
    return accepted, refused


def _vasopressor_problems(patient: PatientState, protocol: Protocol) -> Iterator[Problem]:
    if not patient.vasopressors:
        return
    accepted, refused = _vasopressor_vocabulary(protocol)
    if not accepted:
        return
    for name in patient.vasopressors:
        drug = _canonical(protocol, name)
        if drug in accepted:
            continue
        reason = refused.get(drug)
        message = f"is {name!r}, which {reason}" if reason else f"is {name!r}, not a vasopressor this rule pack knows"
        yield input_problem(patient, _VASOPRESSORS, name, message,
                            "vasopressors only: " + ", ".join(sorted(accepted)) + " (or one of their other names)",
                            "input.vasopressor-vocabulary")


def normalise(patient: PatientState, protocol: Protocol) -> PatientState:
    """The patient with every known drug name replaced by the drug's id (unknown names kept as
    written; the state itself when every name already is its id, in order). Raises
    :class:`InvalidInputError` naming each value of ``vitals.vasopressors`` that is not a
    vasopressor of the pack."""
    problems = list(_vasopressor_problems(patient, protocol))
    if problems:
        raise InvalidInputError(problems)
    names = canonical_names(protocol)
    medications = None
    if patient.medications is not None:
        medications = tuple(sorted(
            (Medication(names.get(key(m.drug), m.drug), m.given_at, m.dose_mg) for m in patient.medications),
            key=lambda m: (m.given_at, m.drug, m.dose_mg or 0.0)))
    vasopressors = (None if patient.vasopressors is None
                    else tuple(sorted({names.get(key(n), n) for n in patient.vasopressors})))
    proposed_orders = tuple(sorted({names.get(key(n), n) for n in patient.proposed_orders}))
    if (medications, vasopressors, proposed_orders) == (patient.medications, patient.vasopressors,
                                                        patient.proposed_orders):
        return patient  # every name already the pack's id, in order: the state as it is
    return replaced(patient, medications=medications, vasopressors=vasopressors, proposed_orders=proposed_orders)


def vocabulary_problems(protocol: Protocol) -> Iterator[tuple[Source, str, str, str]]:
    """(where, subject, message, expected) for every inconsistency of the pack's vocabulary: a name
    of two drugs, a synonym that is a drug or class id, an entry for a drug the pack does not name."""
    ids = {d.id for d in protocol.drugs} | {m for c in protocol.drug_classes for m in c.members}
    classes = {c.id for c in protocol.drug_classes}
    owner: dict[str, str] = {}
    for entry in protocol.names:
        subject = f"names.{entry.id}"
        if entry.id not in ids:
            yield (entry.source, subject, f"names {entry.id!r}, which is no drug or class member of the pack",
                   "the id of a drug or of a member of a drug class")
        if entry.id in owner:
            yield (entry.source, subject, f"{entry.id!r} has names in two entries", "one entry per drug")
        owner.setdefault(entry.id, entry.id)
    for entry in protocol.names:
        for synonym in entry.synonyms:
            name = key(synonym)
            subject = f"names.{entry.id}"
            if name in classes:
                yield (entry.source, subject, f"the name {synonym!r} is the id of a drug class",
                       "no name that shadows a class")
            elif name in ids or (name in owner and owner[name] != entry.id):
                other = owner.get(name, name)
                yield (entry.source, subject, f"the name {synonym!r} is already a name of {other}",
                       "each name belongs to one drug")
            owner[name] = entry.id

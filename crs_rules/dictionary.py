"""The data dictionary ``crs-rules facts`` prints: the input fields, and the names of drugs.

:func:`fields_table` is the patient contract as a pharmacist reads it (field, type, unit, what it
accepts, meaning), from :data:`crs_rules.fields.FIELDS`; the closed vocabulary of
``vitals.vasopressors`` is the pack's, so the table is a rule pack's. :func:`vocabulary` is the
pack's drug vocabulary for integrators: each drug and class member with the other names it may be
written under, the drug classes, and the closed vasopressor vocabulary with the names it refuses.
Both come as data (``*_data``, for ``--format json``) and as text (``render_*``).

This module knows no drug name and no protocol number: every name comes from the pack.
"""

from __future__ import annotations

from typing import Any, Sequence

from .fields import FIELDS, Field
from .model import Protocol

__all__ = ["fields_data", "render_fields", "vocabulary_data", "render_vocabulary"]

_TYPE_WORDS = {
    "date-time": "date-time",
    "number": "number",
    "boolean": "true/false",
    "choice": "choice",
    "name": "drug name",
    "records": "list of records",
}


def _type_words(entry: Field) -> str:
    words = _TYPE_WORDS.get(entry.type) or f"list of {'drug names' if entry.items == 'name' else 'choices'}"
    if entry.always_present:
        return f"{words}, required"
    if entry.required:
        parent = ".".join(entry.keys[:-1])
        return f"{words}, required in each" if parent.endswith("[]") else f"{words}, required in {parent}"
    return words


def _members(protocol: Protocol, class_id: str) -> tuple[str, ...]:
    return next((c.members for c in protocol.drug_classes if c.id == class_id), ())


def _accepts(entry: Field) -> str:
    if entry.vocabulary is None:
        return entry.accepts
    bound = f", at most {entry.max_items} items" if entry.max_items is not None else ""
    return f"the pack's {entry.vocabulary}s, by any name{bound}"


def fields_data(protocol: Protocol) -> list[dict[str, Any]]:
    """Every input field as a mapping: field, type, unit, minimum, above (exclusive), maximum,
    values, vocabulary (the pack's members), max_items, required, accepts (in words), meaning."""
    return [{
        "field": entry.path,
        "type": entry.type if entry.type != "list" else f"list of {entry.items}",
        "unit": entry.unit,
        "minimum": entry.minimum,
        "above": entry.above,
        "maximum": entry.maximum,
        "values": list(entry.values) if entry.values else None,
        "vocabulary": list(_members(protocol, entry.vocabulary)) if entry.vocabulary is not None else None,
        "max_items": entry.max_items,
        "required": entry.required,
        "accepts": _accepts(entry),
        "meaning": entry.meaning,
    } for entry in FIELDS]


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    return ["  ".join([*(cell.ljust(width) for cell, width in zip(row, widths)), row[-1]]).rstrip()
            for row in [header, *rows]]


def render_fields(protocol: Protocol) -> str:
    """The input fields as a table for people."""
    rows = [(entry.path, _type_words(entry), entry.unit or "", _accepts(entry), entry.meaning)
            for entry in FIELDS]
    lines = [
        f"Input fields of a patient state for {protocol.id} {protocol.version} (schemas/patient.schema.json).",
        "Absent means unknown, never no; only a true/false field may also be null. "
        "A field of a list's items is written list[].field.",
        "",
        *_table(("FIELD", "TYPE", "UNIT", "ACCEPTS", "MEANING"), rows),
        "",
    ]
    for entry in FIELDS:
        if entry.vocabulary is not None:
            lines.append(f"The pack's {entry.vocabulary}s ({entry.path}): "
                         f"{', '.join(_members(protocol, entry.vocabulary))}; "
                         "their other names: crs-rules facts --vocabulary.")
    return "\n".join(lines)


def _drugs(protocol: Protocol) -> list[str]:
    """Every drug the pack names, once: its dosed drugs, then the members of its classes."""
    return list(dict.fromkeys([*(d.id for d in protocol.drugs), *(m for c in protocol.drug_classes for m in c.members)]))


def vocabulary_data(protocol: Protocol) -> dict[str, Any]:
    """The pack's drug vocabulary: ``drugs`` (id, classes, other names), ``classes`` (id,
    description, members) and each closed list (``closed``: the input field, the members it
    accepts, and the names it refuses with the reason)."""
    names = {entry.id: list(entry.synonyms) for entry in protocol.names}
    classes_of: dict[str, list[str]] = {}
    for drug_class in protocol.drug_classes:
        for member in drug_class.members:
            classes_of.setdefault(member, []).append(drug_class.id)
    closed = [{
        "field": c.vocabulary_of,
        "accepts": list(c.members),
        "refuses": [{"names": list(r.members), "reason": r.refusal} for r in protocol.drug_classes
                    if r.refused_from == c.vocabulary_of],
    } for c in protocol.drug_classes if c.vocabulary_of is not None]
    return {
        "protocol": {"id": protocol.id, "version": protocol.version},
        "drugs": [{"id": drug, "classes": classes_of.get(drug, []), "names": names.get(drug, [])}
                  for drug in _drugs(protocol)],
        "classes": [{"id": c.id, "description": " ".join(c.description.split()), "members": list(c.members)}
                    for c in protocol.drug_classes],
        "closed": closed,
    }


def render_vocabulary(protocol: Protocol) -> str:
    """The drug vocabulary as text for people."""
    data = vocabulary_data(protocol)
    rows = [(drug["id"], ", ".join(drug["classes"]) or "-", ", ".join(drug["names"]) or "-")
            for drug in data["drugs"]]
    lines = [
        f"Drug names of {protocol.id} {protocol.version} (dosing.yaml names), matched without regard to letter case.",
        "A name in medications or proposed_orders that is none of these is accepted and reported "
        "(unrecognised_medication); doses recorded under it count toward no limit.",
        "",
        *_table(("DRUG", "CLASSES", "OTHER NAMES"), rows),
    ]
    for closed in data["closed"]:
        lines += ["", f"{closed['field']} is a closed vocabulary: {', '.join(closed['accepts'])}, under any of "
                      "their names; any other name is an input error."]
        lines += [f"Refused from {closed['field']}, with the reason: {', '.join(r['names'])} ({r['reason']})."
                  for r in closed["refuses"]]
    return "\n".join(lines)

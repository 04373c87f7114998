"""unique-ids: ids are unique where they are looked up.

Passes: two rules ``grade2.tocilizumab`` and ``grade3.tocilizumab``. Fails: two rules both written
``id: grade2.tocilizumab``, a rule written with the CRS definition's id, two regimens of one drug with
the same id, a drug class named like a drug.
"""

from __future__ import annotations

from typing import Iterator

from ..errors import Problem
from ..model import Protocol, Source
from .base import CheckId, problem


def check_unique_ids(protocol: Protocol) -> Iterator[Problem]:
    """Rule ids (every rule of :meth:`Protocol.rules`, the definition's included) are unique across
    the pack; so are action, drug, class, reference and statement ids."""
    groups: dict[str, list[tuple[str, Source]]] = {
        "rule": [(rule.id, rule.source) for rule in protocol.rules()],  # the CRS definition's id included
        "action": [(a.id, a.source) for a in protocol.actions],
        "drug or drug class": [(d.id, d.source) for d in protocol.drugs]
        + [(c.id, c.source) for c in protocol.drug_classes],
        "reference": [(r.id, r.source) for r in protocol.references],
        "statement": [(s.id, s.source) for s in protocol.statements],
    }
    for drug in protocol.drugs:
        groups[f"regimen of {drug.id}"] = [(r.id, r.source) for r in drug.regimens]
    for kind, entries in groups.items():
        first: dict[str, Source] = {}
        for identifier, source in entries:
            if identifier in first:
                where = first[identifier]
                yield problem(source, identifier,
                              f"duplicate {kind} id '{identifier}' (first defined at {where.file}:{where.line})",
                              f"expected each {kind} id once", CheckId.UNIQUE_IDS)
            else:
                first[identifier] = source

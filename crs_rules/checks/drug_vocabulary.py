"""vocabulary: the names drugs may be written under are unambiguous and name drugs of the pack.

No name belongs to two drugs or shadows a drug class; every entry names a drug of the pack;
escalation steps and replaced regimens are consistent. Fails: a synonym ``filgrastim`` for a drug
the pack does not have.
"""

from __future__ import annotations

from typing import Iterator

from ..errors import Problem
from ..model import Protocol
from ..vocabulary import vocabulary_problems
from .base import CheckId, problem


def check_vocabulary(protocol: Protocol) -> Iterator[Problem]:
    """No name belongs to two drugs or shadows a drug class; every entry names a drug of the pack;
    escalation steps and replaced regimens are consistent."""
    for source, subject, message, expected in vocabulary_problems(protocol):
        yield problem(source, subject, message, expected, CheckId.VOCABULARY)
    for drug in protocol.drugs:
        for regimen in drug.regimens:
            if regimen.replaces is not None and (regimen.replaces == regimen.id or drug.regimen(regimen.replaces) is None):
                yield problem(regimen.source, drug.rule_id, f"regimen {regimen.id} replaces {regimen.replaces!r}, "
                               "which is no other regimen of the drug", "the id of another regimen of the same drug",
                               CheckId.VOCABULARY)



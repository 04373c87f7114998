"""action-known, drug-known: rules propose actions of the actions list, and dose drugs and
regimens of dosing.yaml.

Passes: ``recommend: icu_transfer`` with ``icu_transfer`` in the actions list. Fails:
``recommend: icu_admission``, or ``dose: {drug: tocilizumab, regimen: weekly}`` when tocilizumab
has no regimen ``weekly``.
"""

from __future__ import annotations

from typing import Iterator

from ..errors import Problem
from ..model import Protocol
from .base import CheckId, problem


def check_actions_known(protocol: Protocol) -> Iterator[Problem]:
    """Rules propose actions of the actions list, and dose drugs and regimens of dosing.yaml."""
    actions = {a.id for a in protocol.actions}
    for rule in protocol.action_rules:
        if rule.action not in actions:
            yield problem(rule.source, rule.rule_id, f"unknown action '{rule.action}'",
                          "expected one of " + ", ".join(sorted(actions)), CheckId.ACTION_KNOWN)
        if rule.dose is not None:
            drug = protocol.drug(rule.dose.drug)
            if drug is None:
                yield problem(rule.dose.source, rule.rule_id, f"unknown drug '{rule.dose.drug}'",
                              "expected one of " + ", ".join(d.id for d in protocol.drugs), CheckId.DRUG_KNOWN)
            elif drug.regimen(rule.dose.regimen) is None:
                yield problem(rule.dose.source, rule.rule_id,
                              f"unknown regimen '{rule.dose.regimen}' of {drug.id}",
                              "expected one of " + ", ".join(r.id for r in drug.regimens), CheckId.DRUG_KNOWN)

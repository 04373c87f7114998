"""statement-encoded: every seed statement names rule ids that exist.

Passes: ``encoded_by: [severe.icu_transfer]``. Fails: ``encoded_by: [severe.icu_transfr]``.
"""

from __future__ import annotations

from typing import Iterator

from ..errors import Problem
from ..model import Protocol
from .base import CheckId, problem


def check_statements_encoded(protocol: Protocol) -> Iterator[Problem]:
    """Every seed statement names rule ids that exist."""
    known = set(protocol.rule_ids())
    for statement in protocol.statements:
        for rule_id in statement.encoded_by:
            if rule_id not in known:
                yield problem(statement.source, statement.id, f"names rule '{rule_id}', which does not exist",
                              "expected ids of rules of this pack", CheckId.STATEMENT_ENCODED)

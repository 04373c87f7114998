"""citation-resolves: every citation names an entry of the references file.

Passes: ``citations: [ref2]`` with ``ref2`` in references.yaml. Fails: ``citations: [ref3]`` when
references.yaml has no ``ref3``.
"""

from __future__ import annotations

from typing import Iterator

from ..errors import Problem
from ..model import Protocol
from .base import CheckId, cited, problem


def check_citations_resolve(protocol: Protocol) -> Iterator[Problem]:
    """Every citation names an entry of the references file. Fails: ``citations: [ref3]``."""
    known = {r.id for r in protocol.references}
    for rule_id, citations, source in cited(protocol):
        for citation in citations:
            if citation not in known:
                yield problem(source, rule_id, f"cites '{citation}', which is not in the references file",
                              "expected one of " + ", ".join(sorted(known)), CheckId.CITATION_RESOLVES)

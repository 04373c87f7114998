"""The fourth stage of ``crs-rules diff``: the report, in words for the pharmacist and as data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .model import Protocol
from .outcomes import Outcome
from .pack_diff import PackChange
from .population import Patient

__all__ = ["SubChange", "Example", "KindReport", "PackRef", "ImpactReport"]

# How many sub-changes of one kind the text shows before summing up the rest.
_SHOWN_SUB_CHANGES = 8



@dataclass(frozen=True)
class SubChange:
    """One change of one kind (``tocilizumab 800 mg -> 700 mg``) and the patients it happens to."""

    change: str
    patients: tuple[str, ...]


@dataclass(frozen=True)
class Example:
    """A worked example: one patient, described, with both outcomes."""

    patient: str
    description: str
    data: Mapping[str, Any] = field(repr=False)
    old: Outcome
    new: Outcome
    changes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"patient": self.patient, "description": self.description, "changes": list(self.changes),
                "input": dict(self.data), "old": self.old.to_dict(), "new": self.new.to_dict()}


@dataclass(frozen=True)
class KindReport:
    """Every patient with one kind of difference, each change with its patients, and an example."""

    kind: str
    patients: tuple[str, ...]
    changes: tuple[SubChange, ...]
    example: Example

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "patients": len(self.patients),
                "changes": [{"change": c.change, "patients": len(c.patients), "ids": list(c.patients)}
                            for c in self.changes],
                "example": self.example.to_dict()}


@dataclass(frozen=True)
class PackRef:
    """Which pack: its id, version, status and content digest, and the folder it was read from."""

    id: str
    version: str
    status: str
    digest: str
    path: str

    @classmethod
    def of(cls, protocol: Protocol) -> PackRef:
        return cls(protocol.id, protocol.version, protocol.status, protocol.digest, protocol.path)

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "version": self.version, "status": self.status, "digest": self.digest,
                "path": self.path}


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


@dataclass(frozen=True)
class ImpactReport:
    """What changed between two packs, and what that does to patients.

    ``kinds`` holds only the kinds of difference some patient has, in :data:`DIFFERENCE_KINDS`
    order; a patient whose decisions are the same under both packs appears nowhere. ``patients``
    are every patient evaluated (scenarios first), for programs that look further.
    """

    old: PackRef
    new: PackRef
    pack_changes: tuple[PackChange, ...]
    generated: int
    seed: int
    scenarios: int
    differing: tuple[str, ...]
    kinds: tuple[KindReport, ...]
    elapsed_seconds: float
    notes: tuple[str, ...] = ()
    patients: tuple[Patient, ...] = field(default=(), repr=False, compare=False)

    @property
    def population_size(self) -> int:
        return self.generated + self.scenarios

    def kind(self, name: str) -> KindReport | None:
        return next((k for k in self.kinds if k.kind == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old.to_dict(),
            "new": self.new.to_dict(),
            "version": {"old": self.old.version, "new": self.new.version},
            "pack_changes": [c.to_dict() for c in self.pack_changes],
            "population": {"patients": self.population_size, "generated": self.generated, "seed": self.seed,
                           "scenarios": self.scenarios},
            "patients_with_differences": len(self.differing),
            "differences": [k.to_dict() for k in self.kinds],
            "elapsed_seconds": round(self.elapsed_seconds, 2),
            "notes": list(self.notes),
        }

    def render(self) -> str:
        """The report in plain words for the pharmacist who made the change."""
        old, new = self.old, self.new
        version = (f"version {old.version} -> {new.version}" if old.version != new.version
                   else f"version {old.version} in both")
        if old.status != new.status:
            version += f", status {old.status} -> {new.status}"
        name = old.id if old.id == new.id else f"{old.id} -> {new.id}"
        lines = [f"Protocol {name}, {version}",
                 f"  old: {old.path} ({old.digest[:19]}...)",
                 f"  new: {new.path} ({new.digest[:19]}...)", ""]
        if self.pack_changes:
            lines.append(f"What changed in the pack: {_count(len(self.pack_changes), 'change')}")
            for pack_change in self.pack_changes:
                lines.append(f"  {pack_change.describe()}  ({pack_change.file}:{pack_change.line})")
                if pack_change.warning:
                    lines.append(f"    {pack_change.warning}")
                if pack_change.in_rule:
                    lines.append(f"    {pack_change.in_rule}")
        elif old.digest == new.digest:
            lines.append("What changed in the pack: nothing, the content is the same")
        else:
            lines.append("What changed in the pack: only the release record (version, changelog)")
        lines.append("")
        population = f"{_count(self.generated, 'generated patient')} (seed {self.seed})"
        if self.scenarios:
            population += f" and {_count(self.scenarios, 'scenario')}"
        timing = f"each evaluated under both packs; {self.elapsed_seconds:.1f} s in all"
        if not self.differing:
            lines.append("What that does to patients: no patient gets a different decision.")
            lines.append(f"  {population}, {timing}.")
        else:
            lines.append(f"What that does to patients: {len(self.differing):,} of "
                         f"{_count(self.population_size, 'patient')} get a different decision.")
            lines.append(f"  {population}, {timing}.")
            shown: set[str] = set()
            for kind in self.kinds:
                lines += ["", f"  {kind.kind}: {_count(len(kind.patients), 'patient')}"]
                for change in kind.changes[:_SHOWN_SUB_CHANGES]:
                    lines.append(f"    {change.change}: {_count(len(change.patients), 'patient')}")
                rest = kind.changes[_SHOWN_SUB_CHANGES:]
                if rest:
                    lines.append(f"    ... and {_count(len(rest), 'other change')} "
                                 f"({_count(sum(len(c.patients) for c in rest), 'patient')} in all)")
                example = kind.example
                if example.patient in shown:
                    lines.append(f"    Example, {example.patient} (as above): {'; '.join(example.changes)}")
                    continue
                shown.add(example.patient)
                lines.append(f"    Example, {example.patient}: {example.description}")
                lines.append(f"      differs: {'; '.join(example.changes)}")
                lines.append(f"      old: {example.old.summary()}")
                lines.append(f"      new: {example.new.summary()}")
        for note in self.notes:
            lines += ["", f"Note: {note}"]
        return "\n".join(lines)

"""The first stage of ``crs-rules diff``: what changed in the pack, by rule id and number.

Both packs' data is walked side by side, lists of elements with an ``id`` matched by id (not by
position), and every difference is reported by rule id and number, e.g. ``dose limits:
drugs.tocilizumab.limits.max_dose_mg: 800 -> 700``. The manifest's release record (version, digest,
changelog) is shown only as ``version 1.0.0 -> 1.1.0``, by the report.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .loading import LoadedDocument
from .model import PackRule, Protocol
from .pack import FILE_KINDS, pack_files

__all__ = ["PackChange", "pack_changes"]

#: Manifest keys that are the release record, not protocol content (version and status are shown
#: in the report's first line instead).
_RELEASE_KEYS = ("version", "status", "digest", "draft_of", "changelog", "files")


@dataclass(frozen=True)
class PackChange:
    """One difference between the two packs' data.

    ``change`` is ``changed`` (a value), ``added`` or ``removed`` (a key or an element). ``path``
    is dotted from the top of the file, elements of lists named by their ``id``
    (``drugs.tocilizumab.limits.max_dose_mg``) or, without ids, by index (``levels[1]``). ``line``
    is where it is written: in the new pack's file, or the old one's for a removal.
    """

    section: str
    file: str
    line: int
    path: str
    change: str
    old: Any
    new: Any
    rule: str | None = None
    """The rule (or drug class, or the definition) the change is inside, by id; None outside one."""
    rule_description: str | None = None
    """That rule's description in the pack's words (a drug's name; a grade's text)."""
    unit: str | None = None
    """The unit of a changed number (``mg``, ``mg/kg``, ``h``, ``kg``, ``°C``, ``L/min``, ``days``,
    ``years``, ``doses``), from the field's name or the fact it is compared with; None otherwise."""

    @property
    def shown_path(self) -> str:
        """The path as shown after the section: without its first key when that names the section."""
        head, _, rest = self.path.partition(".")
        if head == self.section and rest:
            return rest
        return self.path

    def describe(self) -> str:
        where = f"{self.section}: {self.shown_path}"
        if self.change == "added":
            return f"{where} added" + (f": {_show(self.new)}" if _is_short(self.new) else "")
        if self.change == "removed":
            return f"{where} removed" + (f" (was {_show(self.old)})" if _is_short(self.old) else "")
        if isinstance(self.old, str) and isinstance(self.new, str) and not (_is_short(self.old) and _is_short(self.new)):
            return f"{where}: {_text_change(self.old, self.new)}"
        if isinstance(self.old, list) and isinstance(self.new, list) and not (_is_short(self.old) and _is_short(self.new)):
            return f"{where}: {_list_change(self.old, self.new)}"
        if self.unit is not None and _is_number(self.old) and _is_number(self.new):
            return f"{where}: {_show(self.old)} {self.unit} -> {_show(self.new)} {self.unit}"
        return f"{where}: {_show(self.old)} -> {_show(self.new)}"

    @property
    def in_rule(self) -> str | None:
        """``rule dosing.tocilizumab (Tocilizumab)``: the rule the change is inside (or ``class
        ...``, ``action ...`` for the drug classes and the action catalogue), with its description;
        None outside one."""
        if self.rule is None:
            return None
        named = self.rule if " " in self.rule else f"rule {self.rule}"  # "class vasopressors" is no rule
        return named + (f" ({_shortened(self.rule_description)})" if self.rule_description else "")

    @property
    def warning(self) -> str | None:
        """For a number changed by a factor of 2 or more (up or down), a warning: a tenfold
        mistake (a slipped decimal point, an extra zero) looks like this. None otherwise."""
        old, new = self.old, self.new
        if self.change != "changed" or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                                               for v in (old, new)):
            return None
        factor = max(old, new) / min(old, new)
        if factor < 2:
            return None
        direction = "up" if new > old else "down"
        return (f"WARNING: {self.shown_path} {_show(old)} -> {_show(new)} changes by a factor of {factor:.3g} "
                f"({direction}): check it is meant (a slipped decimal point or an extra zero looks like this)")

    def to_dict(self) -> dict[str, Any]:
        return {"section": self.section, "file": self.file, "line": self.line, "path": self.path,
                "change": self.change, "old": self.old, "new": self.new, "unit": self.unit, "rule": self.rule,
                "rule_description": self.rule_description, "text": self.describe(), "warning": self.warning}


_PLAIN = re.compile(r"[A-Za-z0-9_.+\-]+")


def _show(value: Any) -> str:
    """A value as a pharmacist reads it in the YAML: flow style, plain words unquoted."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value if _PLAIN.fullmatch(value) else json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_show(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    return str(value)


def _is_short(value: Any) -> bool:
    return len(_show(value)) <= 60


def _text_change(old: str, new: str, context: int = 3) -> str:
    """A long text's change as the words that differ, with a few words around them."""
    a, b = old.split(), new.split()
    opcodes = [op for op in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes() if op[0] != "equal"]
    if not opcodes:  # only the spacing changed
        return "spacing changed"
    i1, j1 = max(opcodes[0][1] - context, 0), max(opcodes[0][3] - context, 0)
    i2, j2 = min(opcodes[-1][2] + context, len(a)), min(opcodes[-1][4] + context, len(b))

    def excerpt(words: list[str], start: int, end: int) -> str:
        text = " ".join(words[start:end])
        return json.dumps(("..." if start > 0 else "") + text + ("..." if end < len(words) else ""), ensure_ascii=False)

    return f"{excerpt(a, i1, i2)} -> {excerpt(b, j1, j2)}"


def _list_change(old: list[Any], new: list[Any]) -> str:
    """A long list's change as the items added and removed."""
    added = [item for item in new if not any(_same(item, o) for o in old)]
    removed = [item for item in old if not any(_same(item, n) for n in new)]
    parts = [f"added {', '.join(_show(i) for i in added)}" if added else "",
             f"removed {', '.join(_show(i) for i in removed)}" if removed else ""]
    return "; ".join(part for part in parts if part) or "reordered"


def _same(a: Any, b: Any) -> bool:
    """Equal as data: ``true`` is not ``1``, ``6`` is not ``6.0`` (the digest tells them apart too)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _by_id(items: Any) -> dict[str, Any] | None:
    """The items of a list of mappings by their ``id``, when every item has a distinct text id."""
    if not isinstance(items, list):
        return None
    ids = [item.get("id") if isinstance(item, dict) else None for item in items]
    if not all(isinstance(i, str) for i in ids) or len(set(ids)) != len(ids):
        return None
    return {str(item["id"]): item for item in items}


def _section(kind: str, path: tuple[str | int, ...]) -> str:
    top = path[0] if path else ""
    if kind == "dosing":
        if top == "drugs" and len(path) > 2 and path[2] == "limits":
            return "dose limits"
        return "drug classes" if top == "drug_classes" else "dosing"
    if kind == "actions":
        return "rules" if top == "rules" else "action catalogue"
    return {"statements": "traceability"}.get(kind, kind)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shortened(text: str, words: int = 16) -> str:
    parts = text.split()
    return " ".join(parts[:words]) + (" ..." if len(parts) > words else "")


# Lists of a pack file whose elements are named like rules though they are none (no condition
# fires them): the prefix their ``id`` is shown with. The rules themselves come from the registry.
_NAMED_LISTS = {("dosing", "drug_classes"): "class ", ("actions", "actions"): "action "}

# How a field or a fact names the unit of its numbers: the end of its name, first match wins.
_UNIT_ENDINGS = (("mg_per_kg", "mg/kg"), ("_mg", "mg"), ("_l_min", "L/min"), ("_kg", "kg"), ("temperature_c", "°C"),
                 ("temperature_f", "°F"), ("_years", "years"), ("_days", "days"), ("days_since_onset", "days"),
                 ("hours_since_last", "h"), ("_h", "h"), ("doses", "doses"), ("doses_in_course", "doses"),
                 ("doses_in_window", "doses"))

# Keys of a comparison whose number is in the unit of the compared fact.
_COMPARISON_KEYS = {"equals", "not_equals", "at_least", "above", "at_most", "below", "one_of"}


def _unit_of(name: str) -> str | None:
    return next((unit for ending, unit in _UNIT_ENDINGS if name.endswith(ending)), None)


def _rule_at(rules: Sequence[PackRule], kind: str, raw: tuple[str | int, ...]) -> PackRule | None:
    """The rule of ``rules`` written at (or around) ``raw`` in the file of ``kind``, None outside one."""
    return next((rule for rule in rules if rule.file_kind == kind and raw[:len(rule.path)] == rule.path), None)


def _described(node: Any) -> str | None:
    found = (node.get("description") or node.get("name") or node.get("text")) if isinstance(node, dict) else None
    return found if isinstance(found, str) else None


def _context(kind: str, data: Any, raw: tuple[str | int, ...],
             rules: Sequence[PackRule]) -> tuple[str | None, str | None, str | None]:
    """(rule id, its description, the unit of the value) at ``raw`` in a file's data; the rule
    looked up in the registry of the pack the data is from (:meth:`~crs_rules.model.Protocol.rules`)."""
    rule = description = None
    found = _rule_at(rules, kind, raw)
    if found is not None:
        rule, description = found.id, _described(_node_at(data, found.path))
    prefix = _NAMED_LISTS.get((kind, str(raw[0]))) if raw else None
    if prefix is not None and len(raw) > 1:
        item = _node_at(data, raw[:2])
        if isinstance(item, dict):
            rule, description = f"{prefix}{item.get('id')}", _described(item)
    parent, node = None, data
    for part in raw:
        parent = node
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return rule, description, None
    key = next((str(part) for part in reversed(raw) if isinstance(part, str)), "")
    unit = None
    if _is_number(node):
        fact = parent.get("fact") if isinstance(parent, dict) else None
        unit = _unit_of(fact) if key in _COMPARISON_KEYS and isinstance(fact, str) else _unit_of(key)
    return rule, description, unit


def _node_at(data: Any, raw: tuple[str | int, ...]) -> Any:
    node = data
    for part in raw:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


class _Walker:
    """Walks one file's data in both packs, collecting :class:`PackChange` values."""

    def __init__(self, kind: str, old: LoadedDocument | None, new: LoadedDocument | None,
                 old_rules: Sequence[PackRule], new_rules: Sequence[PackRule]) -> None:
        self.kind = kind
        self.old = old
        self.new = new
        self.old_rules = old_rules
        self.new_rules = new_rules
        self.changes: list[PackChange] = []

    def add(self, change: str, raw: tuple[str | int, ...], shown: tuple[str, ...], old: Any, new: Any) -> None:
        removed = change == "removed"
        document = (self.old if removed else self.new) or self.old or self.new
        rules = self.old_rules if removed else self.new_rules
        line = document.position(raw)[0] if document is not None else 0
        name = Path(document.file).name if document is not None else self.kind
        path = "".join(part if part.startswith("[") else "." + part for part in shown).lstrip(".")
        rule, description, unit = _context(self.kind, document.data if document is not None else None, raw,
                                            rules)
        self.changes.append(PackChange(_section(self.kind, raw), name, line, path, change, old, new, rule, description,
                                       unit))

    def walk(self, old: Any, new: Any, old_raw: tuple[str | int, ...], new_raw: tuple[str | int, ...],
             shown: tuple[str, ...]) -> None:
        if isinstance(old, dict) and isinstance(new, dict):
            for key in new:
                if key in old:
                    self.walk(old[key], new[key], (*old_raw, key), (*new_raw, key), (*shown, str(key)))
                else:
                    self.add("added", (*new_raw, key), (*shown, str(key)), None, new[key])
            for key in old:
                if key not in new:
                    self.add("removed", (*old_raw, key), (*shown, str(key)), old[key], None)
            return
        old_ids, new_ids = _by_id(old), _by_id(new)
        if old_ids is not None and new_ids is not None and (old_ids or new_ids):
            old_index = {key: i for i, key in enumerate(old_ids)}
            for j, (key, item) in enumerate(new_ids.items()):
                if key in old_ids:
                    self.walk(old_ids[key], item, (*old_raw, old_index[key]), (*new_raw, j), (*shown, key))
                else:
                    self.add("added", (*new_raw, j), (*shown, key), None, item)
            for key, item in old_ids.items():
                if key not in new_ids:
                    self.add("removed", (*old_raw, old_index[key]), (*shown, key), item, None)
            return
        if isinstance(old, list) and isinstance(new, list) and any(isinstance(x, (dict, list)) for x in old + new):
            self._walk_list(old, new, old_raw, new_raw, shown)
            return
        if not _same(old, new):
            self.add("changed", new_raw, shown, old, new)

    def _walk_list(self, old: list[Any], new: list[Any], old_raw: tuple[str | int, ...],
                   new_raw: tuple[str | int, ...], shown: tuple[str, ...]) -> None:
        """Lists of mappings without ids, aligned by content so an insertion is one change."""
        head, last = shown[:-1], shown[-1] if shown else ""
        matcher = difflib.SequenceMatcher(a=[_canonical(x) for x in old], b=[_canonical(x) for x in new], autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                continue
            paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
            for k in range(paired):
                self.walk(old[i1 + k], new[j1 + k], (*old_raw, i1 + k), (*new_raw, j1 + k), (*head, f"{last}[{j1 + k}]"))
            for i in range(i1 + paired, i2):
                self.add("removed", (*old_raw, i), (*head, f"{last}[{i}]"), old[i], None)
            for j in range(j1 + paired, j2):
                self.add("added", (*new_raw, j), (*head, f"{last}[{j}]"), None, new[j])


def pack_changes(old: Protocol, new: Protocol) -> tuple[PackChange, ...]:
    """Every difference between two packs' documents (as loaded with each,
    :attr:`~crs_rules.model.Protocol.files`), file by file in manifest order, each file in its own
    order. The rule a change is inside is the one the registry (:meth:`~crs_rules.model.Protocol.rules`)
    places there: the new pack's for a change or an addition, the old pack's for a removal. The
    manifest's release record (version, digest, changelog, file names) is left out."""
    old_documents, new_documents = pack_files(old).documents, pack_files(new).documents
    old_rules, new_rules = old.rules(), new.rules()
    changes: list[PackChange] = []
    for kind in ("manifest", *FILE_KINDS):
        old_doc, new_doc = old_documents.get(kind), new_documents.get(kind)
        old_data = old_doc.data if old_doc is not None else None
        new_data = new_doc.data if new_doc is not None else None
        if kind == "manifest":
            old_data = {k: v for k, v in (old_data or {}).items() if k not in _RELEASE_KEYS}
            new_data = {k: v for k, v in (new_data or {}).items() if k not in _RELEASE_KEYS}
        walker = _Walker(kind, old_doc, new_doc, old_rules, new_rules)
        walker.walk(old_data, new_data, (), (), ())
        changes.extend(walker.changes)
    return tuple(changes)

"""YAML loading, stage 2: the node tree, composed without acting on hidden content, then built.

The composer is PyYAML's ``SafeLoader`` with one change: anchors, aliases and explicit tags are
recorded, never acted on, so each one is reported where it is written. :class:`TreeBuilder` then
walks the node tree once: it records every position, reports every trap (stage 3,
:mod:`crs_rules._yaml_scalars`) and builds the plain Python data, so no YAML constructor ever sees a
value that was not checked first.
"""

from __future__ import annotations

from typing import Any, Callable, cast

import yaml
from yaml.error import Mark
from yaml.events import AliasEvent, Event, NodeEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ._yaml_scalars import alias_trap, anchor_trap, duplicate_trap, key_trap, plain_value, scalar_trap, tag_trap
from ._yaml_words import NULL, TIMESTAMP, Marked, PathKey, Position, Trap, mark_position, node_position, trap_problem
from .errors import Problem

__all__ = ["MAX_DEPTH", "AliasNode", "TooDeep", "RecordingComposer", "compose", "TreeBuilder"]

#: How deeply mappings and lists may nest. Rule packs need a handful of levels; the limit keeps
#: PyYAML's recursive composer (and this module's builder) far from Python's recursion limit.
MAX_DEPTH = 50


# --------------------------------------------------------------------------------------------
# Composing: PyYAML's SafeLoader composer, made to record hidden content instead of using it
# --------------------------------------------------------------------------------------------


class AliasNode(ScalarNode):
    """Stands where an alias (``*name``) was written; it carries nothing but the name."""

    def __init__(self, event: NodeEvent) -> None:
        super().__init__(NULL, "", cast(Mark, event.start_mark), cast(Mark, event.end_mark))
        self.anchor = event.anchor or ""


class TooDeep(Exception):
    """Nesting went past :data:`MAX_DEPTH`; raised to stop composing, caught in this module."""

    def __init__(self, mark: Marked | None) -> None:
        super().__init__("nested too deeply")
        self.position = mark_position(mark)


class RecordingComposer(yaml.SafeLoader):
    """SafeLoader whose composer records anchors, aliases and tags instead of acting on them.

    Stock PyYAML turns an alias into the very node object of its anchor (so shared content can no
    longer be told apart from content written out), raises on an unknown alias and on a reused
    anchor name. Here every alias becomes an inert :class:`AliasNode` and the anchor table is kept
    empty, so each anchor, alias and tag can be reported at its own position, all at once.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.anchored: dict[int, str] = {}
        self.tagged: dict[int, str] = {}
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            return AliasNode(cast(NodeEvent, self._next_event(self.get_event)))
        event = cast(NodeEvent, self._next_event(self.peek_event))
        if self._depth >= MAX_DEPTH:
            raise TooDeep(event.start_mark)
        self.anchors.clear()
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None:
            if event.anchor is not None:
                self.anchored[id(node)] = event.anchor
            tag: str | None = getattr(event, "tag", None)
            if tag is not None:
                self.tagged[id(node)] = tag
        return node

    @staticmethod
    def _next_event(take: Callable[[], Any]) -> Event:
        """The parser's event accessors are untyped in the stubs; this gives them a type."""
        return cast(Event, take())


def compose(text: str) -> tuple[Node | None, RecordingComposer]:
    composer = RecordingComposer(text)
    try:
        return composer.get_single_node(), composer
    finally:
        composer.dispose()


class TreeBuilder:
    """Walks the composed node tree once: records every position, reports every trap, and builds
    the plain Python data (which is thrown away if anything was reported)."""

    def __init__(self, file: str, composer: RecordingComposer, times_as_text: bool = False) -> None:
        self.times_as_text = times_as_text
        self.file = file
        self.anchored = composer.anchored
        self.tagged = composer.tagged
        self.problems: list[Problem] = []
        self.values: dict[PathKey, Position] = {}
        self.keys: dict[PathKey, Position] = {}

    def report(self, node: Node, trap: Trap, path: PathKey) -> None:
        self.problems.append(trap_problem(self.file, node_position(node), trap, path))

    def build(self, node: Node, path: PathKey) -> Any:
        self.values[path] = node_position(node)
        if self.report_hidden(node, path):
            return None
        if isinstance(node, MappingNode):
            return self.mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.build(item, path + (index,)) for index, item in enumerate(node.value)]
        return self.scalar(cast(ScalarNode, node), path)

    def report_hidden(self, node: Node, path: PathKey) -> bool:
        """Report anchors, aliases and tags on this node; True if it is an alias (no content)."""
        if isinstance(node, AliasNode):
            self.report(node, alias_trap(node.anchor), path)
            return True
        anchor = self.anchored.get(id(node))
        if anchor is not None:
            self.report(node, anchor_trap(anchor), path)
        tag = self.tagged.get(id(node))
        if tag is not None:
            self.report(node, tag_trap(tag), path)
        return False

    def scalar(self, node: ScalarNode, path: PathKey) -> Any:
        if id(node) in self.tagged:
            return node.value
        if self.times_as_text and node.style is None and node.tag == TIMESTAMP:
            # The caller checks date-times itself (patient input): keep exactly what was written.
            return node.value
        trap = scalar_trap(node)
        if trap is not None:
            self.report(node, trap, path)
            return None
        return plain_value(node)

    def mapping(self, node: MappingNode, path: PathKey) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = self.key(key_node, path)
            if key is None:
                shown = key_node.value if isinstance(key_node, ScalarNode) else "?"
                self.build(value_node, path + (str(shown),))
                continue
            child = path + (key,)
            line = node_position(key_node)[0]
            if key in first_lines:
                self.report(key_node, duplicate_trap(key, first_lines[key]), child)
            else:
                first_lines[key] = line
            self.keys[child] = node_position(key_node)
            result[key] = self.build(value_node, child)
        return result

    def key(self, node: Node, path: PathKey) -> str | None:
        """The key as text, or None (after reporting) when it cannot be a name."""
        shown = node.value if isinstance(node, ScalarNode) else "?"
        if self.report_hidden(node, path + (str(shown),)):
            return None
        trap = key_trap(node)
        if trap is not None:
            self.report(node, trap, path + (str(shown),))
            return None
        return cast(str, node.value)

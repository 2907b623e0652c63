"""Where a config problem is in its file: line and column of `nodes[i]` and `nodes[i].<field>`.

The loader turns YAML into plain values and forgets where they came from, so this module parses the
same text a second time, into YAML's node tree, which keeps a mark per node. Only `datakit
validate` needs positions; a proxy loading its config never pays for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from ..errors import ConfigIssue


@dataclass(frozen=True)
class Position:
    line: int  # 1-based, as editors and compilers print them
    column: int  # 1-based


def _position(node: Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


class SourceMap:
    """Positions inside one config text. Every lookup answers None rather than raise: a position is a
    convenience on top of the message, never a reason to lose the message."""

    def __init__(self, config: Node | None, syntax_error: Position | None = None) -> None:
        self._config = config  # the node holding `nodes`, `debug`, ... (inside `config:` of a plugin entity)
        self.syntax_error = syntax_error  # where the YAML itself is broken

    @classmethod
    def parse(cls, text: str) -> SourceMap:
        try:
            root = YAML(typ="safe", pure=True).compose(text)
        except MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            return cls(None, Position(mark.line + 1, mark.column + 1) if mark else None)
        except (YAMLError, RecursionError):  # RecursionError: nested a few thousand deep; the loader says so
            return cls(None)
        return cls(_config_node(root))

    def locate(self, issue: ConfigIssue) -> Position | None:
        """The most precise position of an issue: its field's key, else its node, else the file's top."""
        if self._config is None:
            return self.syntax_error
        path: list[str | int] = []
        if issue.node_index is not None:
            path += ["nodes", issue.node_index - 1]
        if issue.field:
            path += issue.field.split(".")
        return _position(_deepest(self._config, path))


def _config_node(root: Node | None) -> Node | None:
    """The loader accepts a bare config or a plugin entity (`name: datakit` + `config`); follow it."""
    if not isinstance(root, MappingNode):
        return root
    entries = {str(key.value): value for key, value in root.value}
    name, config = entries.get("name"), entries.get("config")
    if name is not None and name.value == "datakit" and isinstance(config, MappingNode):
        return config
    return root


def _deepest(node: Node, path: list[str | int]) -> Node:
    """Walk `path` as far as the file goes. Mapping steps land on the key, which is what an editor
    should highlight; a dotted field (`inputs.a.b`, where `a.b` is one jq input name) matches the
    longest key first."""
    current, located = node, node
    remaining = list(path)
    while remaining:
        step = remaining[0]
        if isinstance(step, int):
            if not isinstance(current, SequenceNode) or not 0 <= step < len(current.value):
                break
            current = located = current.value[step]
            remaining.pop(0)
            continue
        if not isinstance(current, MappingNode):
            break
        match = _match_key(current, [str(s) for s in remaining])
        if match is None:
            break
        used, key, value = match
        located, current = key, value
        del remaining[:used]
    return located


def _match_key(mapping: MappingNode, parts: list[str]) -> tuple[int, Node, Node] | None:
    keys = {str(key.value): (key, value) for key, value in mapping.value}
    for used in range(len(parts), 0, -1):
        found = keys.get(".".join(parts[:used]))
        if found is not None:
            return used, *found
    return None

"""The config file as text: read it into plain values, or edit it and write it back.

Edits (the Admin API's) go through ruamel.yaml's round-trip mode, which keeps the user's comments,
key order and quoting: a file someone maintains by hand stays theirs. A `.json` file is written back
as JSON. YAML 1.2 throughout, as decK and Kong read it (`on`, `yes`, `NO` are strings).
"""

from __future__ import annotations

import io
import json
from collections.abc import MutableMapping, MutableSequence
from typing import Any

from ruamel.yaml import YAML

from .entities import Location


class EditableDocument:
    """A config file's tree, edited in place by location and dumped back to text."""

    def __init__(self, text: str, *, as_json: bool) -> None:
        self._yaml = YAML()
        self._yaml.preserve_quotes = True
        self.as_json = as_json
        if as_json:
            try:
                self.root: Any = json.loads(text)
                return
            except ValueError:
                self.as_json = False  # YAML in a `.json` file (it loads): edit it as the YAML it is
        self.root = self._yaml.load(text)

    def get(self, location: Location) -> Any:
        node = self.root
        for step in location:
            node = node[step]
        return node

    def set(self, location: Location, value: Any) -> None:
        if not location:
            self.root = value
            return
        self.get(location[:-1])[location[-1]] = value

    def delete(self, location: Location) -> None:
        container: MutableMapping[Any, Any] | MutableSequence[Any] = self.get(location[:-1])
        del container[location[-1]]  # type: ignore[arg-type]

    def append(self, key: str, value: Any) -> None:
        """Add an entry to a top-level array such as `plugins`, creating it if needed."""
        if self.root.get(key) is None:
            self.root[key] = []
        self.root[key].append(value)

    def dump(self) -> str:
        if self.as_json:
            return json.dumps(self.root, indent=2, ensure_ascii=False) + "\n"
        out = io.StringIO()
        self._yaml.dump(self.root, out)
        return out.getvalue()

"""Read a Datakit config from YAML or JSON text (JSON is YAML, so one parser reads both).

YAML 1.2 (ruamel.yaml), as decK and Kong read it: `on`, `yes`, `NO` are strings, not booleans, so a
node named `NO` or a header value `on` means what it says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from ..errors import ConfigError, ConfigIssue


def load_config(text: str, *, source: str = "<config>") -> dict[str, Any]:
    """Parse config text into the plugin's `config` object.

    Accepts the bare `config` object (`nodes: ...`) or a whole plugin entity
    (`name: datakit` + `config: {...}`), as the Admin API and decK files carry it.
    """
    try:
        document = YAML(typ="safe", pure=True).load(text)
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError([ConfigIssue(f"{source}: invalid YAML{where}: {problem}")]) from None
    if document is None:
        raise ConfigError([ConfigIssue(f"{source}: the file is empty")])
    if not isinstance(document, dict):
        raise ConfigError([ConfigIssue(f"{source}: expected a map at the top level")])
    if document.get("name") == "datakit":
        # A plugin entity: without this check a non-map `config` would surface as confusing
        # "unknown field: name/config" issues of a bare config.
        if not isinstance(document.get("config"), dict):
            raise ConfigError([ConfigIssue(f"{source}: the datakit plugin's `config` must be a map")])
        return document["config"]
    return document


def load_config_file(path: str | Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([ConfigIssue(f"cannot read {path}: {e.strerror or e}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigIssue(f"{path}: not UTF-8 text")]) from None
    return load_config(text, source=str(path))

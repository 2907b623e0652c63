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
    refuse_non_json(document, source=source)
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


_JSON_SCALARS = (str, int, float, bool, type(None))


def _non_json(value: Any, path: str) -> tuple[str, Any] | None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, _JSON_SCALARS):
                return path or "(top level)", key
            found = _non_json(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _non_json(item, f"{path}[{index}]")
            if found:
                return found
    elif not isinstance(value, _JSON_SCALARS):
        return path, value
    return None


def refuse_non_json(document: dict[str, Any], *, source: str) -> None:
    """ConfigError for a value JSON has no type for: an unquoted date (`name: 2024-01-01`), `!!binary`,
    `!!set`. YAML gives them as Python dates, bytes or sets, which the checks after this one never expect."""
    found = _non_json(document, "")
    if found:
        path, value = found
        message = f"{source}: a YAML {type(value).__name__} is not a JSON value; quote it to keep it as text"
        raise ConfigError([ConfigIssue(message, field=path)])

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
    document = parse_document(text, source=source)
    if document.get("name") == "datakit":
        # A plugin entity: without this check a non-map `config` would surface as confusing
        # "unknown field: name/config" issues of a bare config.
        if not isinstance(document.get("config"), dict):
            raise ConfigError([ConfigIssue(f"{source}: the datakit plugin's `config` must be a map")])
        return document["config"]
    return document


def parse_document(text: str, *, source: str) -> dict[str, Any]:
    """The file's top-level map; ConfigError for a syntax error, an empty file, another top level or a value JSON
    cannot hold."""
    try:
        document = YAML(typ="safe", pure=True).load(text)
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError([ConfigIssue(f"{source}: invalid YAML{where}: {problem}")]) from None
    except RecursionError:  # the parser recurses per level: `[[[[...` a few thousand deep
        raise ConfigError([ConfigIssue(f"{source}: invalid YAML: nested too deeply")]) from None
    if document is None:
        raise ConfigError([ConfigIssue(f"{source}: the file is empty")])
    if not isinstance(document, dict):
        raise ConfigError([ConfigIssue(f"{source}: expected a map at the top level")])
    refuse_non_json(document, source=source)
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


def _non_json(value: Any, path: str, enclosing: set[int]) -> tuple[str, str] | None:
    """The first value JSON cannot hold, as (where, why); `enclosing` holds the containers `value` is inside."""
    if isinstance(value, (dict, list)):
        if id(value) in enclosing:  # `&a [*a]`: an alias inside its own anchor
            return path or "(top level)", "a YAML alias refers to a value that contains it; JSON has no such value"
        enclosing.add(id(value))
        is_map = isinstance(value, dict)
        for key, item in value.items() if is_map else enumerate(value):
            if is_map and not isinstance(key, _JSON_SCALARS):
                return path or "(top level)", _not_json_reason(key)
            if not is_map:
                where = f"{path}[{key}]"
            else:
                where = f"{path}.{key}" if path else str(key)
            found = _non_json(item, where, enclosing)
            if found:
                return found
        enclosing.discard(id(value))
    elif not isinstance(value, _JSON_SCALARS):
        return path, _not_json_reason(value)
    return None


def _not_json_reason(value: Any) -> str:
    return f"a YAML {type(value).__name__} is not a JSON value; quote it to keep it as text"


def refuse_non_json(document: dict[str, Any], *, source: str) -> None:
    """ConfigError for a value JSON has no type for: an unquoted date (`name: 2024-01-01`), `!!binary`,
    `!!set`, an alias inside its own anchor. YAML gives them as Python dates, bytes, sets or a value that
    contains itself, which the checks after this one never expect."""
    try:
        found = _non_json(document, "", set())
    except RecursionError:
        raise ConfigError([ConfigIssue(f"{source}: invalid YAML: nested too deeply")]) from None
    if found:
        path, reason = found
        raise ConfigError([ConfigIssue(f"{source}: {reason}", field=path)])

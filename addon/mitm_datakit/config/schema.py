"""Declarative field rules for node types and the top-level config (Kong's schema constraints)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Kind = str  # "string" | "integer" | "boolean" | "string_list" | "string_map" | "object" | "any"


@dataclass(frozen=True)
class Field:
    """One config field of a node type. `null` means "not set" for every optional field, as in Kong."""

    kind: Kind
    required: bool = False
    default: Any = None
    minimum: int | None = None  # integers: smallest value; strings and lists: shortest length
    maximum: int | None = None
    choices: tuple[Any, ...] = ()
    pattern: str | None = None
    description: str = ""
    extra_check: Callable[[Any], str | None] | None = field(default=None, compare=False)


def _length_problem(size: int, rule: Field, unit: str) -> str | None:
    if rule.minimum is not None and size < rule.minimum:
        return f"length must be at least {rule.minimum}" if unit else f"value must be at least {rule.minimum}"
    if rule.maximum is not None and size > rule.maximum:
        return f"length must be at most {rule.maximum}" if unit else f"value must be at most {rule.maximum}"
    return None


def check_value(value: Any, rule: Field) -> str | None:
    """The reason `value` breaks `rule`, or None. Messages follow Kong's schema wording."""
    kind = rule.kind
    if kind == "string":
        if not isinstance(value, str):
            return "expected a string"
        problem = _length_problem(len(value), rule, "chars")
        if problem:
            return problem
        if rule.pattern and not re.fullmatch(rule.pattern, value):
            return f"invalid value: {value}"
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return "expected an integer"
        problem = _length_problem(value, rule, "")
        if problem:
            return problem
    elif kind == "boolean":
        if not isinstance(value, bool):
            return "expected a boolean"
    elif kind == "string_list":
        if not isinstance(value, list):
            return "expected an array"
        problem = _length_problem(len(value), rule, "items")
        if problem:
            return problem
        for item in value:
            if not isinstance(item, str):
                return "expected an array of strings"
            if rule.choices and item not in rule.choices:
                return f"expected one of: {', '.join(map(str, rule.choices))}"
        return rule.extra_check(value) if rule.extra_check else None
    elif kind == "string_map":
        if not isinstance(value, dict):
            return "expected a map"
        for key, item in value.items():
            if not isinstance(key, str) or not isinstance(item, str):
                return "expected a map of strings to strings"
    elif kind == "object":
        if not isinstance(value, dict):
            return "expected a map"
    if rule.choices and kind != "string_list" and value not in rule.choices:
        return f"expected one of: {', '.join(map(str, rule.choices))}"
    return rule.extra_check(value) if rule.extra_check else None


def check_fields(
    values: Mapping[str, Any], rules: Mapping[str, Field], report: Callable[[str, str], None]
) -> dict[str, Any]:
    """Check `values` against `rules`; report (field, reason) for each problem.

    Returns the settings with defaults filled in. Unknown keys are the caller's business, since
    which keys are known depends on more than the type's own fields.
    """
    settings: dict[str, Any] = {}
    for name, rule in rules.items():
        value = values.get(name)
        if value is None:
            if rule.required:
                report(name, "required field missing")
            settings[name] = rule.default
            continue
        problem = check_value(value, rule)
        if problem:
            report(name, problem)
        settings[name] = value
    return settings

"""Resolving `resources.vault` references (spec §2.4). Only Kong's `env` vault exists outside Kong.

A secret is resolved when a request needs it, never at config time, so validating a config does
not need the secrets it names.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class MissingSecret:
    """Stands in for a secret that could not be resolved; a node that reads it fails with `reason`."""

    reason: str


def env_variable_name(name: str) -> str:
    """Kong's env vault: `{vault://env/my-secret}` reads MY_SECRET (upper case, `-` as `_`)."""
    return name.upper().replace("-", "_")


def resolve(reference: str, environ: Mapping[str, str] = os.environ) -> str | MissingSecret:
    """`{vault://env/NAME}` or `{vault://env/NAME/key}` (the variable holds a JSON object)."""
    body = reference.strip()[len("{vault://") : -1]
    backend, _, rest = body.partition("/")
    if backend != "env":
        return MissingSecret(f"vault backend '{backend}' is not available here (only env)")
    name, _, key = rest.partition("/")
    variable = env_variable_name(name)
    value = environ.get(variable)
    if value is None:
        return MissingSecret(f"vault secret not found: environment variable {variable} is not set")
    if not key:
        return value
    try:
        document = json.loads(value)
    except ValueError:
        return MissingSecret(f"vault secret {variable} is not a JSON object, cannot read key '{key}'")
    if not isinstance(document, dict) or key not in document:
        return MissingSecret(f"vault secret {variable} has no key '{key}'")
    return str(document[key])

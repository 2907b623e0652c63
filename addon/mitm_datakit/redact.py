"""Keeping secrets out of traces, logs and error bodies (spec §7.5)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from .types import Value

REDACTED = "********"

# Kong's Debugger masks these header names by default; cookies carry sessions, so they are masked too.
MASKED_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "api-key",
        "x-api-key",
        "apikey",
        "cookie",
        "set-cookie",
        "x-consumer-username",
        "x-consumer-custom-id",
        "x-consumer-id",
        "x-credential-identifier",
    }
)


def mask_headers(value: Value) -> Value:
    """A copy of `value` in which every key that names a secret-bearing header is masked, at any depth."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and k.lower() in MASKED_HEADERS else mask_headers(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_headers(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of a secret in `text`, raw or JSON-escaped (values derived from a
    vault secret, such as `Bearer <secret>`, keep the secret as a substring)."""
    for secret in secrets:
        if not secret:
            continue
        text = text.replace(secret, REDACTED)
        # Both JSON spellings: traces are dumped with ensure_ascii=False, error bodies with True; a secret
        # with a quote or backslash *and* non-ASCII characters only matches the first in a trace.
        for ascii_only in (True, False):
            escaped = json.dumps(secret, ensure_ascii=ascii_only)[1:-1]
            if escaped != secret:
                text = text.replace(escaped, REDACTED)
    return text


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def log_safe(text: str) -> str:
    """`text` with control characters escaped (`\\n`, `\\x1b`): an error message that carries client input
    stays one log line, and can neither forge another line nor drive the terminal."""
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


def failure_log_line(index: int | None, name: str, message: str) -> str:
    """Kong's log line for a failed node (`node #2 (AUTH) failed with error: "..."`), kept to one line."""
    return f'node #{index} ({name}) failed with error: "{log_safe(message)}"'

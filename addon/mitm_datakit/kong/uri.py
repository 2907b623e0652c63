"""The request path as Kong's router sees it, and as it is sent upstream.

Kong matches routes against a normalized path (kong/tools/uri.lua): percent-encoded characters are
decoded unless they are reserved (so `/a%2Fb` stays one segment), dot segments are resolved and
repeated slashes merged. The upstream path is built from that normalized path, escaped again.
"""

from __future__ import annotations

import re
from urllib.parse import quote

# RFC 3986 gen-delims and sub-delims, plus `%` itself: decoding these would change what the path means.
RESERVED = frozenset(":/?#[]@!$&'()*+,;=%")
_TRIPLET = re.compile(r"%([0-9A-Fa-f]{2})")
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"  # `%` stays: what is left of it is a valid triplet


def _decode(match: re.Match[str]) -> str:
    code = int(match.group(1), 16)
    char = chr(code)
    if code >= 0x80 or char in RESERVED:  # non-ASCII bytes stay encoded: one byte is not a character
        return "%" + match.group(1).upper()
    return char


def normalize_path(raw_path: str) -> str:
    if raw_path in ("", "/"):
        return "/"
    path = _TRIPLET.sub(_decode, raw_path) if "%" in raw_path else raw_path
    path = re.sub(r"//+", "/", path)
    if "." not in path:
        return path
    output: list[str] = []
    segments = path.split("/")
    for segment in segments[1:]:
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    trailing = segments[-1] in (".", "..")  # `/a/.` is the directory `/a/`
    return "/" + "/".join(output) + ("/" if trailing and output else "")


def escape_path(path: str) -> str:
    """Encode again what the normalization decoded and a request line cannot carry (spaces, ...)."""
    return quote(path, safe=_PATH_SAFE)

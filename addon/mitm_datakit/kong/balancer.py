"""Upstream targets and Kong's weighted round robin over them."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .entities import Target

DEFAULT_TARGET_PORT = 8000  # Kong's default when a target names no port
_TARGET = re.compile(r"^(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]+))(?::(?P<port>[0-9]{1,5}))?$")


def parse_target(text: str, weight: int) -> Target:
    """`host`, `host:port`, `[ipv6]:port`; raises ValueError with Kong's wording."""
    match = _TARGET.match(text.strip())
    port = int(match.group("port") or DEFAULT_TARGET_PORT) if match else 0
    if not match or not 0 < port < 65536:
        raise ValueError(f"Invalid target ('{text}'); not a valid hostname or ip address")
    return Target(match.group("ipv6") or match.group("host"), port, weight)


class RoundRobin:
    """Smooth weighted round robin (nginx's): a target of weight 2 is picked twice as often as one of
    weight 1, interleaved rather than in bursts. Targets of weight 0 are disabled, as in Kong."""

    def __init__(self, targets: Sequence[Target]) -> None:
        self._targets = [t for t in targets if t.weight > 0]
        self._current = [0] * len(self._targets)
        self._total = sum(t.weight for t in self._targets)

    def pick(self) -> Target | None:
        if not self._targets:
            return None
        best = 0
        for i, target in enumerate(self._targets):
            self._current[i] += target.weight
            if self._current[i] > self._current[best]:
                best = i
        self._current[best] -= self._total
        return self._targets[best]

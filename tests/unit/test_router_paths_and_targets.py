"""What the router sees of a path (kong/uri.py), and where an upstream sends flows (kong/balancer.py)."""

from __future__ import annotations

from collections import Counter

import pytest
from mitm_datakit.kong.balancer import RoundRobin, parse_target
from mitm_datakit.kong.entities import Target
from mitm_datakit.kong.uri import escape_path, normalize_path


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/a//b///c", "/a/b/c"),
        ("/a/./b/../c", "/a/c"),
        ("/a/b/..", "/a/"),
        ("/../../x", "/x"),
        ("/%61%62c", "/abc"),  # unreserved characters are decoded
        ("/a%2Fb", "/a%2Fb"),  # a reserved one is not: it stays one segment
        ("/a%2fb", "/a%2Fb"),
        ("/%25", "/%25"),
        ("/caf%C3%A9", "/caf%C3%A9"),  # non-ASCII bytes stay encoded
        ("/a%20b", "/a b"),
    ],
)
def test_normalize_path(raw: str, normalized: str) -> None:
    assert normalize_path(raw) == normalized


@pytest.mark.parametrize(
    ("path", "escaped"),
    [("/a b", "/a%20b"), ("/a%2Fb", "/a%2Fb"), ("/x:y@z;k=v", "/x:y@z;k=v"), ("/é", "/%C3%A9")],
)
def test_escape_path(path: str, escaped: str) -> None:
    assert escape_path(path) == escaped


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("10.0.0.1:8080", Target("10.0.0.1", 8080, 100)),
        ("backend.local", Target("backend.local", 8000, 100)),  # Kong's default target port
        ("[::1]:9000", Target("::1", 9000, 100)),
    ],
)
def test_parse_target(text: str, target: Target) -> None:
    assert parse_target(text, 100) == target


@pytest.mark.parametrize("text", ["host:0", "host:70000", "a:b:c", ""])
def test_invalid_targets_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="not a valid hostname or ip address"):
        parse_target(text, 100)


def test_round_robin_follows_weights_and_interleaves() -> None:
    heavy, light, off = Target("a", 1, 2), Target("b", 1, 1), Target("c", 1, 0)
    balancer = RoundRobin([heavy, light, off])
    picks = [balancer.pick() for _ in range(6)]
    assert Counter(picks) == {heavy: 4, light: 2}
    assert picks[:3] == [heavy, light, heavy]  # smooth: never three of one in a row here


def test_round_robin_without_usable_targets_picks_nothing() -> None:
    assert RoundRobin([Target("a", 1, 0)]).pick() is None
    assert RoundRobin([]).pick() is None

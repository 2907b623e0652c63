#!/usr/bin/env python3
"""Summarize py-spy "raw" (collapsed) stacks written by `scripts/bench.py --profile DIR`.

    python scripts/bench/stacks.py DIR/dk_transform.txt [--requests N] [--match mitm_datakit] [--top 40]

For each function: its share of all samples inclusive of what it calls, and its self share. With --cpu-us (the
variant's CPU µs per request, from the same run) the shares become µs per request. With --rate (py-spy's -r) and
--units (the requests or flows done while sampling) samples become µs per unit directly, which is the right scale
for a CPU-bound run such as bench/hooks_micro.py. --within keeps only samples whose stack contains that text;
--match keeps only functions whose frame contains it.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# "func (path/to/file.py:123)": the line number differs per call site; merge them per function.
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def function_of(frame: str) -> str:
    m = FRAME.match(frame.strip())
    return f"{m.group('func')} ({m.group('file')})" if m else frame.strip()


def summarize(path: Path, within: str = "") -> tuple[int, Counter[str], Counter[str]]:
    total = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit() or within not in stack:
            continue
        count = int(count_text)
        total += count
        functions = [function_of(f) for f in stack.split(";")]
        for name in set(functions):  # recursion counts once per sample
            inclusive[name] += count
        own[functions[-1]] += count
    return total, inclusive, own


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--cpu-us", type=float, help="the variant's CPU µs per request (shares become µs)")
    parser.add_argument("--rate", type=float, help="py-spy's sampling rate (-r), with --units")
    parser.add_argument("--units", type=float, help="requests or flows done while sampling, with --rate")
    parser.add_argument("--within", default="", help="only samples whose stack contains this text")
    parser.add_argument("--match", default="", help="only functions whose frame contains this text")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--self", dest="by_self", action="store_true", help="sort by self time")
    args = parser.parse_args()
    total, inclusive, own = summarize(args.file, args.within)
    if not total:
        raise SystemExit(f"{args.file}: no samples")
    if args.rate and args.units:
        unit, scale = "us/unit", 1e6 / args.rate / args.units
    elif args.cpu_us:
        unit, scale = "us/req", args.cpu_us / total
    else:
        unit, scale = "%", 100 / total
    ranking = own if args.by_self else inclusive
    print(f"{total} samples; columns: inclusive {unit}, self {unit}")
    shown = 0
    for name, _ in ranking.most_common():
        if args.match not in name:
            continue
        print(f"{inclusive[name] * scale:9.1f} {own[name] * scale:9.1f}  {name}")
        shown += 1
        if shown >= args.top:
            break


if __name__ == "__main__":
    main()

"""What a finished run leaves on its flow: a one-line `flow.comment`, a mark when the plan failed, and
the node timeline in `flow.metadata["datakit"]` that the "datakit" content view renders.

Everything here reads data the run already holds (statuses, errors, each node's inputs, output and
timing): keeping the record must not slow a request down noticeably.
The record is saved with the flow (`-w`, mitmweb "Save"), so it holds JSON-friendly values only.
"""

from __future__ import annotations

import json
import logging
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

import orjson
from mitmproxy import http

from ..legacy.runtime import LegacyRun
from ..redact import MASKED_HEADERS, mask_headers, scrub
from ..runtime import COMPLETE, FAILED, PLAN_ERROR, Run
from ..types import SELF, Value

logger = logging.getLogger("mitm_datakit")

KEY = "datakit"
COMMENT_PREFIX = "datakit"
FAILED_MARK = ":red_circle:"
# An output larger than this (as JSON text) is left out of the record: the record is for reading, and a
# big body would make every saved flow carry a second copy of it.
MAX_OUTPUT_CHARS = 1024
MAX_COMMENT_CHARS = 300


def finish(flow: http.HTTPFlow, run: Run | LegacyRun, elapsed: float, *, record: bool) -> None:
    """Comment, mark and (when `record`) the node timeline for a flow whose run has stopped.

    `elapsed` is the seconds spent running the plan. A 3.9/3.10 run gets the summary without a
    timeline. This is bookkeeping only: an exception in it is logged, never raised into the flow.
    """
    try:
        summary = _summary(run, elapsed)
        if record and isinstance(run, Run):
            summary["nodes"] = _timeline(run)
        flow.metadata[KEY] = summary
        flow.comment = comment_line(summary)
        if summary["status"] == PLAN_ERROR:
            flow.marked = FAILED_MARK
    except Exception:
        logger.exception("datakit: could not record the run on its flow")


def _summary(run: Run | LegacyRun, elapsed: float) -> dict[str, Any]:
    """The fields every Datakit flow carries, for current and legacy runs alike."""
    secrets = run.secrets if isinstance(run, Run) else []
    # A legacy run with a trace requested reports no `failure` (the trace replaced the 500): its
    # comment then says PLAN_ERROR without naming the node.
    failure = run.failure
    summary: dict[str, Any] = {
        "status": run.plan_status,
        "request_id": run.ctx.request_id,
        "elapsed_ms": round(elapsed * 1000, 3),
        "ran": _ran(run),
        "total": len(run.plan.user_nodes),
    }
    if failure is not None:
        summary["failed_node"] = failure.node.name
        summary["error"] = scrub(failure.message, secrets)
    return summary


def _ran(run: Run | LegacyRun) -> int:
    if isinstance(run, Run):
        return sum(1 for n in run.plan.user_nodes if run.status[n.id] in (COMPLETE, FAILED))
    return sum(run.started)  # only user nodes are ever started


def comment_line(summary: dict[str, Any]) -> str:
    """`datakit PLAN_ERROR: 1/2 nodes ran in 4.2 ms; AUTH failed: non-2XX response code: 403`."""
    line = (
        f"{COMMENT_PREFIX} {summary['status']}: {summary['ran']}/{summary['total']} nodes ran"
        f" in {summary['elapsed_ms']:.1f} ms"
    )
    if "failed_node" in summary:
        line += f"; {summary['failed_node']} failed: {summary['error']}"
        line = " ".join(line.split())  # one line, whatever the error message holds
    return line if len(line) <= MAX_COMMENT_CHARS else line[: MAX_COMMENT_CHARS - 1] + "…"


def _timeline(run: Run) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    for node in run.plan.user_nodes:
        entry: dict[str, Any] = {"name": node.name, "type": node.type_name, "status": run.status[node.id]}
        started = run.started.get(node.id)
        if started is not None:
            entry["start_ms"] = round(started * 1000, 3)
            took = run.took.get(node.id)
            if took is not None:
                entry["duration_ms"] = round(took * 1000, 3)
        inputs = run.inputs.get(node.id)
        if inputs:
            # A node-wise input (`input: request.body`) is shown as the value itself, not under "$self".
            shown = _small_json(inputs[SELF] if len(inputs) == 1 and SELF in inputs else inputs, run.secrets)
            if shown is not None:
                entry["inputs"] = shown
        if node.id in run.errors:
            entry["error"] = run.errors[node.id]
        elif run.status[node.id] == COMPLETE and run.values[node.id] is not None:
            output = _small_json(run.values[node.id], run.secrets)
            if output is not None:
                entry["output"] = output
        nodes.append(entry)
    return nodes


def _small_json(value: Value, secrets: list[str]) -> str | None:
    """`value` as compact JSON with secret headers masked and vault secrets scrubbed, or None when it
    is too large to be worth keeping. Kept as text: the view prints it, nothing parses it again."""
    if isinstance(value, (str, bytes)) and len(value) > MAX_OUTPUT_CHARS:
        return None  # the common large case, rejected before serializing anything
    text = _encode(value)
    if len(text) > MAX_OUTPUT_CHARS:
        return None
    # Masking walks and copies the whole value in Python, several times the cost of encoding it: do it
    # only for the few values that have a secret-bearing header name as a key (only objects have keys).
    if isinstance(value, (dict, list)):
        lowered = text.lower()
        for key in _MASKED_KEYS:  # a loop, not any(...): no generator to allocate per value
            if key in lowered:
                text = _encode(mask_headers(value))
                break
    return scrub(text, secrets) if secrets else text


def _plain(value: object) -> str:
    # Bytes (a call's raw body) read as text, as mask_headers reads them; anything else by its repr.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else repr(value)


# orjson first: it encodes a record's values about ten times faster than json's C encoder (docs/decisions.md).
# What it refuses (an integer beyond 64 bits, a non-string key from YAML, nesting deeper than 255) goes through
# json's C encoder, built once: json.dumps, and JSONEncoder.encode too, build a new C encoder per call, which costs
# more than encoding a small value. It has no check for circular values: no JSON or YAML value a run holds is
# circular, and one would end in RecursionError instead of ValueError, which `finish` logs the same way.
_C_ENCODER = (
    c_make_encoder(None, _plain, encode_basestring, None, ":", ",", False, False, True)
    if c_make_encoder
    else None
)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_plain)


def _encode(value: Value) -> str:
    """Compact JSON as json.dumps(ensure_ascii=False) writes it, except NaN and infinities, written as null."""
    try:
        return orjson.dumps(value, default=_plain).decode("utf-8")
    except (TypeError, orjson.JSONEncodeError):
        pass
    if _C_ENCODER is None:  # a Python without the json C accelerator
        return _ENCODER.encode(value)
    return "".join(_C_ENCODER(value, 0))


# A masked header name as an object key (substring tests measured faster than one regex here).
_MASKED_KEYS = tuple(f'"{name}":' for name in MASKED_HEADERS)


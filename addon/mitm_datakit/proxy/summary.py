"""What a finished run leaves on its flow: a one-line `flow.comment`, a mark when the plan failed, and
the node timeline in `flow.metadata["datakit"]` that the "datakit" content view renders.

Everything here reads data the run already holds (statuses, errors, each node's inputs, output and
timing): keeping the record must not slow a request down noticeably.
The record is saved with the flow (`-w`, mitmweb "Save"), so it holds JSON-friendly values only.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from mitmproxy import http

from ..legacy.runtime import LegacyRun
from ..redact import MASKED_HEADERS, mask_headers, scrub
from ..runtime import COMPLETE, FAILED, PLAN_ERROR, Run
from ..types import SELF, Value
from ..values import compact_json_encoder

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
        if isinstance(run, Run):
            summary = _run_summary(run, elapsed, record)
        else:
            # Only user nodes are ever started in a 3.9/3.10 run; it has no vault secrets to scrub.
            summary = _summary(run.plan_status, run, sum(run.started), elapsed, [])
        flow.metadata[KEY] = summary
        flow.comment = comment_line(summary)
        if summary["status"] == PLAN_ERROR:
            flow.marked = FAILED_MARK
    except Exception:
        logger.exception("datakit: could not record the run on its flow")


def _summary(status: str, run: Run | LegacyRun, ran: int, elapsed: float, secrets: list[str]) -> dict[str, Any]:
    """The fields every Datakit flow carries, for current and legacy runs alike."""
    # A legacy run with a trace requested reports no `failure` (the trace replaced the 500): its
    # comment then says PLAN_ERROR without naming the node.
    summary: dict[str, Any] = {
        "status": status,
        "request_id": run.ctx.request_id,
        "elapsed_ms": round(elapsed * 1000, 3),
        "ran": ran,
        "total": len(run.plan.user_nodes),
    }
    failure = run.failure
    if failure is not None:
        summary["failed_node"] = failure.node.name
        summary["error"] = scrub(failure.message, secrets)
    return summary


def _run_summary(run: Run, elapsed: float, record: bool) -> dict[str, Any]:
    """The summary of a 3.11+ run, with its timeline when `record`; "ran" counts the nodes that completed or
    failed."""
    statuses = run.status
    ran = 0
    for node in run.plan.user_nodes:
        if statuses[node.id] in _RAN:
            ran += 1
    summary = _summary(run.plan_status, run, ran, elapsed, run.secrets)
    if record:
        summary["nodes"] = _timeline(run)
    return summary


_RAN = (COMPLETE, FAILED)


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
    statuses, started, took, inputs_of, errors, values = (
        run.status, run.started, run.took, run.inputs, run.errors, run.values)
    secrets = run.secrets
    for node in run.plan.user_nodes:
        node_id = node.id
        status = statuses[node_id]
        entry: dict[str, Any] = {"name": node.name, "type": node.type_name, "status": status}
        start = started.get(node_id)
        if start is not None:
            entry["start_ms"] = _ms(start)
            duration = took.get(node_id)
            if duration is not None:
                entry["duration_ms"] = _ms(duration)
        inputs = inputs_of.get(node_id)
        if inputs:
            # A node-wise input (`input: request.body`) is shown as the value itself, not under "$self".
            shown = _small_json(inputs[SELF] if len(inputs) == 1 and SELF in inputs else inputs, secrets)
            if shown is not None:
                entry["inputs"] = shown
        if node_id in errors:
            entry["error"] = errors[node_id]
        elif status == COMPLETE and values[node_id] is not None:
            output = _small_json(values[node_id], secrets)
            if output is not None:
                entry["output"] = output
        nodes.append(entry)
    return nodes


def _ms(seconds: float) -> float:
    """Seconds as ms with three decimals, the value round(seconds * 1000, 3) gives except in the last digit of a
    halfway case; round() with digits costs about four times as much, and this runs twice per node."""
    return int(seconds * 1_000_000 + 0.5) / 1000


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
    if isinstance(value, (dict, list)) and _names_a_masked_header(text.lower()):
        text = _encode(mask_headers(value))
    return scrub(text, secrets) if secrets else text


def _names_a_masked_header(lowered: str) -> bool:
    """Whether compact JSON text (lower-cased) has a masked header name as an object key."""
    # Half as many scans for the values that have none (nearly all): each name's key ends in one of the endings.
    for ending in _MASKED_KEY_ENDINGS:  # loops, not any(...): no generator to allocate per value
        if ending in lowered:
            for key in _MASKED_KEYS:
                if key in lowered:
                    return True
            return False
    return False


def _plain(value: object) -> str:
    # Bytes (a call's raw body) read as text, as mask_headers reads them; anything else by its repr.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else repr(value)


# orjson first: it encodes a record's values about ten times faster than json's C encoder (docs/decisions.md).
# What it refuses (an integer beyond 64 bits, a non-string key from YAML, nesting deeper than 255) goes through
# json's encoder, built once. A circular value (none a run holds) would end in RecursionError instead of
# ValueError, which `finish` logs the same way.
_json_text = compact_json_encoder(_plain, allow_nan=True)


def _encode(value: Value) -> str:
    """Compact JSON as json.dumps(ensure_ascii=False) writes it, except NaN and infinities, written as null."""
    try:
        return orjson.dumps(value, default=_plain).decode("utf-8")
    except (TypeError, orjson.JSONEncodeError):
        return _json_text(value)


# A masked header name as an object key (substring tests measured faster than one regex here), and the endings of
# those keys (every masked name ends in one of these; tests/unit/test_proxy_hot_path.py checks it).
_MASKED_KEYS = tuple(f'"{name}":' for name in MASKED_HEADERS)
_MASKED_KEY_ENDINGS = ('authorization":', 'key":', 'cookie":', 'username":', 'er-id":', 'om-id":', 'identifier":')


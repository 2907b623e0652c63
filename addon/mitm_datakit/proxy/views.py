"""The "datakit" content view: the node timeline that `summary.finish` kept on the flow, as text.

mitmproxy 11.0.2's legacy `contentviews.View` API (ARCHITECTURE anchors §A.9): a view is called with
the message body and the flow, and answers a description and lines of (style, text) pieces. The
record lives in `flow.metadata`, which mitmweb does not show on its own; this view is how it gets there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mitmproxy import contentviews, flow as mflow

from .summary import KEY, comment_line

Line = list[tuple[str, str]]


class DatakitView(contentviews.View):
    name = "datakit"

    def __call__(
        self, data: bytes, *, flow: mflow.Flow | None = None, **unknown: Any
    ) -> tuple[str, Iterator[Line]]:
        record = flow.metadata.get(KEY) if flow is not None else None
        if not isinstance(record, dict) or "status" not in record:
            return "Datakit", iter([[("text", "Datakit did not run a plan for this flow.")]])
        return "Datakit run", iter(render(record))

    def render_priority(self, data: bytes, **metadata: Any) -> float:
        return 0  # chosen by name only: "auto" keeps showing the body


def render(record: dict[str, Any]) -> list[Line]:
    """The record as lines: the summary, then one line per node with its timing, then its inputs and its error
    or output."""
    lines: list[Line] = [[("header", comment_line(record))]]
    if "request_id" in record:
        lines.append([("text", f"request id {record['request_id']}")])
    nodes = record.get("nodes")
    if nodes is None:
        lines.append([("text", "No node timeline (datakit_record is off, or a 3.9/3.10 config ran).")])
        return lines
    lines.append([("text", "")])
    lines.append([("header", f"{'start ms':>9} {'took ms':>9}  {'status':<13} node")])
    for node in nodes:
        status = str(node.get("status", ""))
        style = "error" if status == "NODE_ERROR" else "text"
        lines.append(
            [
                ("text", f"{_ms(node.get('start_ms')):>9} {_ms(node.get('duration_ms')):>9}  "),
                (style, f"{status:<13}"),
                ("text", f" {node.get('name')} ({node.get('type')})"),
            ]
        )
        if "inputs" in node:
            lines.append([("text", " " * 22), ("key", "inputs: "), ("text", str(node["inputs"]))])
        if "error" in node:
            lines.append([("text", " " * 22), ("error", f"error: {node['error']}")])
        elif "output" in node:
            lines.append([("text", " " * 22), ("key", "output: "), ("text", str(node["output"]))])
    return lines


def _ms(value: object) -> str:
    # A node that never started (skipped, cancelled before its turn) has no timing.
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


view = DatakitView()


def register() -> None:
    """Add the view, replacing one an earlier load of the addon left (contentviews.add refuses duplicates)."""
    unregister()
    contentviews.add(view)


def unregister() -> None:
    for existing in [v for v in contentviews.views if v.name == DatakitView.name]:
        contentviews.remove(existing)

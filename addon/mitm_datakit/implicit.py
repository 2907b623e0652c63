"""The implicit nodes every plan has (spec §4): where request data comes from and where writes go."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .types import DkType

REQUEST = "request"
SERVICE_REQUEST = "service_request"
SERVICE_RESPONSE = "service_response"
RESPONSE = "response"
VAULT = "vault"


@dataclass(frozen=True)
class ImplicitNode:
    name: str
    inputs: Mapping[str, DkType]  # what may be written to it (a sink)
    outputs: Mapping[str, DkType]  # what may be read from it (a source)


IMPLICIT_NODES: dict[str, ImplicitNode] = {
    REQUEST: ImplicitNode(
        REQUEST,
        inputs={},
        outputs={
            "body": DkType.ANY,
            "headers": DkType.MAP,
            "query": DkType.MAP,
            "path": DkType.STRING,
            "raw_path": DkType.STRING,
            "port": DkType.NUMBER,
            "method": DkType.STRING,
            "scheme": DkType.STRING,
            "version": DkType.NUMBER,
        },
    ),
    SERVICE_REQUEST: ImplicitNode(
        SERVICE_REQUEST, inputs={"body": DkType.ANY, "headers": DkType.MAP, "query": DkType.MAP}, outputs={}
    ),
    SERVICE_RESPONSE: ImplicitNode(
        SERVICE_RESPONSE,
        inputs={},
        outputs={"body": DkType.ANY, "headers": DkType.MAP, "status": DkType.NUMBER, "raw_body": DkType.STRING},
    ),
    RESPONSE: ImplicitNode(RESPONSE, inputs={"body": DkType.ANY, "headers": DkType.MAP}, outputs={}),
    # vault's outputs are the config's `resources.vault` keys; the plan fills them in.
    VAULT: ImplicitNode(VAULT, inputs={}, outputs={}),
}

RESERVED_NAMES = frozenset(IMPLICIT_NODES)

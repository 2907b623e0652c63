"""`jwt_decode`: a JWT's header, payload and signature, without checking anything (spec §5.10, Kong 3.14+).

The input may carry a `Bearer ` prefix (any case). A token that cannot be read fails the node.
"""

from __future__ import annotations


from ..errors import NodeError
from ..jose import JoseError
from ..jose.tokens import decode, token_text
from ..types import SELF, DkType, Value
from .base import NodeSpec, NodeType, SyncRun


class JwtDecode(NodeType):
    type_name = "jwt_decode"
    input_fields = {}
    self_input = DkType.STRING
    # The header and claims have keys known only at run time: maps, so they can feed map inputs.
    output_fields = {
        "header": DkType.MAP,
        "payload": DkType.MAP,
        "signature": DkType.STRING,
    }
    self_output = DkType.OBJECT

    def build(self, spec: NodeSpec) -> SyncRun:
        def run(inputs: dict[str, Value], ctx: object) -> Value:
            try:
                header, payload, signature = decode(token_text(inputs.get(SELF)))
            except JoseError as e:
                raise NodeError(f"jwt_decode: {e}") from None
            return {"header": header, "payload": payload, "signature": signature}

        return run

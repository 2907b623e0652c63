"""Planted secrets never show up in anything Datakit produces (issue 8, spec §7.5), through a real mitmdump.

Three secrets are planted: a vault value (an env variable) that becomes a call's `Authorization` header, the
client's own `Authorization` header, and a session cookie plus the echoed vault-derived header in the answer
of a third-party API (once answering 200, once 401 so the node fails). Each run sends the four combinations
of success/failure and with/without the trace header, with mitmproxy's most verbose log, and saves the flows
with `-w`. Then every place is searched: the proxy's log, what the client got (bodies and headers), every
saved flow's comment and metadata, our answers in the flow file, the flow file as a whole, and the text of
the "datakit" view of each saved flow.

What is fair to demand: mitmproxy's own dumper prints the traffic it proxies (at `flow_detail` >= 2 the
client's request headers, so the client's own `Authorization`), and the flow file records the client's request
as sent. Those are the client's bytes shown by a traffic inspector, not something Datakit wrote, so the client
secret is searched for in the log only at `flow_detail=0` and in the flow file only outside the recorded
request. The vault secret and the third party's secrets are never part of the client's traffic: they are
searched for everywhere, the raw flow file included.

Elsewhere: the trace needs `debug: true` (tests/e2e/test_addon.py::test_debug_trace_needs_debug_true); `call`
verifies TLS by default
(tests/unit/test_call_tls.py::test_without_ca_certificates_the_system_store_does_not_know_the_ca); the Admin
API's token (tests/e2e/test_admin_api.py::test_the_token_is_required_and_never_shown).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from mitmproxy import http, io

from harness import StubRequest
from mitm_datakit.proxy import views

VAULT_SECRET = "v4ult-pl4nted-6b1f0c"
CLIENT_SECRET = "cl1ent-pl4nted-93ad27"
THIRD_PARTY_SECRET = "th1rd-p4rty-pl4nted-e5c8"
ALL_SECRETS = (VAULT_SECRET, CLIENT_SECRET, THIRD_PARTY_SECRET)
NOT_CLIENT_TRAFFIC = (VAULT_SECRET, THIRD_PARTY_SECRET)

CONFIG = """
debug: {debug}
resources:
  vault:
    token: "{{vault://env/dk-planted-token}}"
nodes:
- name: CALL_HEADERS
  type: jq
  inputs:
    key: vault.token
  jq: '{{Authorization: ("Bearer " + .key), "X-Api-Key": .key}}'
- name: API
  type: call
  url: {stub}/protected
  inputs:
    headers: CALL_HEADERS
    query: request.query
- name: CLIENT_HEADERS
  type: jq
  input: request.headers
  jq: .
- name: ANSWER
  type: jq
  inputs:
    api: API.body
    client: CLIENT_HEADERS
  jq: '{{ok: .api.ok, client_sent_auth: ((.client.Authorization // .client.authorization) != null)}}'
- name: EXIT
  type: exit
  inputs:
    body: ANSWER
"""


def third_party(request: StubRequest) -> tuple[int, dict[str, str], dict[str, object]]:
    """Answers with a session cookie and echoes the Authorization it got; 401 unless `?mode=ok`."""
    status = 200 if request.query.get("mode") == "ok" else 401
    headers = {"Set-Cookie": f"sid={THIRD_PARTY_SECRET}", "Authorization": f"Bearer {THIRD_PARTY_SECRET}"}
    return status, headers, {"ok": status == 200, "you_sent": request.header("Authorization")}


@dataclass
class Search:
    """Every place searched, and which secret turned up where."""

    places: int = 0
    leaks: list[str] = field(default_factory=list)

    def check(self, place: str, text: str, secrets: tuple[str, ...] = ALL_SECRETS) -> None:
        self.places += 1
        self.leaks += [f"{secret} in {place}" for secret in secrets if secret in text]


def message_text(message: http.Message) -> str:
    head = "\n".join(f"{k}: {v}" for k, v in message.headers.items(multi=True))
    return head + "\n\n" + (message.get_content(strict=False) or b"").decode("utf-8", "replace")


def view_text(flow: http.HTTPFlow) -> str:
    assert flow.response is not None
    _, lines = views.view(flow.response.raw_content or b"", flow=flow)
    return "\n".join("".join(text for _, text in line) for line in lines)


@pytest.fixture
def datakit_view() -> Iterator[None]:
    views.register()
    yield
    views.unregister()


@pytest.mark.parametrize(
    ("debug", "flow_detail"),
    [(True, 0), (False, 0), (True, 4)],
    ids=["debug-on", "debug-off", "debug-on-flow-detail-4"],
)
def test_planted_secrets_appear_nowhere(
    mitmdump, stub, tmp_path, datakit_view, reliability, debug, flow_detail
):
    stub.route("GET", "/protected", handler=third_party)
    saved = tmp_path / "flows.out"
    proxy = mitmdump(
        CONFIG.format(debug=str(debug).lower(), stub=stub.url),
        "-w", str(saved),
        "--set", "termlog_verbosity=debug",
        # The harness sets flow_detail=0 with --set; the --flow-detail argument is applied after it.
        "--flow-detail", str(flow_detail),
        env={"DK_PLANTED_TOKEN": VAULT_SECRET},
    )
    search = Search()
    answers: list[httpx.Response] = []
    # Its own client, closed before the proxy stops: a connection still open at shutdown makes mitmproxy log
    # the cancelled connection handler's traceback, which the mitmdump fixture counts as an unhandled error.
    with httpx.Client(trust_env=False, timeout=10.0) as client:
        for mode in ("ok", "fail"):
            for trace in ("off", "on"):
                answers.append(
                    client.get(
                        f"{proxy.url}/?mode={mode}",
                        headers={"Authorization": f"Bearer {CLIENT_SECRET}", "X-DataKit-Debug-Trace": trace},
                    )
                )
    proxy.stop()  # flushes the flow file and the log

    # The secrets were really used: the third party got the vault value, the client's header reached a node.
    assert stub.requests_to("/protected")[0].header("Authorization") == f"Bearer {VAULT_SECRET}"
    assert [a.status_code for a in answers] == [200, 200, 500, 500]
    if debug:
        assert answers[0].json() != answers[1].json()  # the second is the trace
        assert answers[3].json()["nodes"], "the failed run's trace lists its nodes"
        assert "********" in answers[1].text and "********" in answers[3].text  # there, and masked
    else:
        assert answers[1].json() == answers[0].json() == {"ok": True, "client_sent_auth": True}
        assert set(answers[3].json()) == {"message", "request_id"}  # no trace, no error details

    log = proxy.output()
    search.check("the proxy's log", log, ALL_SECRETS if flow_detail == 0 else NOT_CLIENT_TRAFFIC)
    for n, answer in enumerate(answers):
        head = "\n".join(f"{k}: {v}" for k, v in answer.headers.multi_items())
        search.check(f"answer {n} seen by the client", head + "\n\n" + answer.text)

    flow_file = saved.read_bytes()
    search.check("the flow file", flow_file.decode("latin-1"), NOT_CLIENT_TRAFFIC)
    with saved.open("rb") as f:
        flows = [flow for flow in io.FlowReader(f).stream() if isinstance(flow, http.HTTPFlow)]
    assert len(flows) == 4
    for flow in flows:
        assert flow.response is not None
        where = f"saved flow {flow.request.path} ({flow.response.status_code})"
        search.check(f"{where}: comment", flow.comment)
        search.check(f"{where}: metadata", json.dumps(flow.metadata, default=str))
        search.check(f"{where}: our answer", message_text(flow.response))
        search.check(f"{where}: datakit view", view_text(flow))

    reliability.secrets_checked(search.places, len(search.leaks))
    assert search.leaks == []
    # The failing call's record says why without any of the secrets around it.
    failed = [flow for flow in flows if flow.response is not None and flow.response.status_code == 500]
    assert all("API failed: non-2XX response code: 401" in flow.comment for flow in failed)


def test_the_admin_api_on_a_bare_port_listens_on_loopback_only(mitmdump, upstream, tmp_path):
    """`datakit_admin_listen=PORT` binds 127.0.0.1, not every interface (the token: test_admin_api.py)."""
    proxy = mitmdump(
        {"nodes": [{"name": "S", "type": "static", "values": {"a": 1}}]},
        "--set", "datakit_admin_listen=0",
    )
    listening = proxy.wait_for_output(r"Admin API listening at (http://\S+)").group(1)
    assert listening.startswith("http://127.0.0.1:")
    assert "without datakit_admin_token" not in proxy.output()  # loopback: no warning needed

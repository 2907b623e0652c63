"""Hostile input never crashes the engine (issue 8): property-based tests with hypothesis.

Random and mutated configs give a Plan or a ConfigError whose issues name what is wrong; random bodies,
headers and query strings go through the codecs, jq and templates and give values or a NodeError.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mitm_datakit.config import load_config
from mitm_datakit.dialect import plan_config
from mitm_datakit.errors import ConfigError, NodeError
from mitm_datakit.values import (
    MessageWrite,
    decode_body,
    encode_body,
    header_ops,
    headers_to_map,
    parse_query,
)

from .support import run_config

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)

NAMES = ["A", "B", "C", "request", "response", "service_request", "service_response", "vault", "NOPE", ""]
REFS = [f"{n}{f}" for n in NAMES for f in ("", ".body", ".headers", ".query", ".x", ".headers.authorization")]
TYPES = ["call", "jq", "exit", "static", "property", "handlebars", "branch", "cache", "xml_to_json", "json_to_xml",
         "jwt_decode", "jwt_sign", "jwt_verify", "teleport", None]

node_fields = st.fixed_dictionaries(
    {"name": st.sampled_from(NAMES + [None, 1, "x" * 300]), "type": st.sampled_from(TYPES)},
    optional={
        "input": st.sampled_from(REFS) | json_values,
        "inputs": st.dictionaries(st.sampled_from(["body", "headers", "query", "url", "a", "key", "$self"]),
                                  st.sampled_from(REFS) | json_values, max_size=3) | json_values,
        "output": st.sampled_from(REFS) | json_values,
        "outputs": st.dictionaries(st.sampled_from(["body", "headers", "then", "x"]), st.sampled_from(REFS), max_size=2),
        "jq": st.sampled_from([".", "{a: 1,}", "{", ".a.b", "error(\"x\")", "$a"]) | json_values,
        "url": st.sampled_from(["http://127.0.0.1:1/", "not a url", "https://[::1/x"]) | json_values,
        "values": json_values,
        "status": st.integers(-5, 1000) | json_values,
        "property": st.sampled_from(["kong.ctx.shared.a", "kong.service.target", "kong.client.ip", "x"]) | json_values,
        "template": st.sampled_from(["{{a}}", "{{#if}}", "{{"]) | json_values,
        "then": st.lists(st.sampled_from(NAMES), max_size=3) | json_values,
        "method": st.sampled_from(["GET", "post", ""]) | json_values,
        "timeout": st.integers(-2, 10**10) | json_values,
    },
)
configs = st.fixed_dictionaries(
    {"nodes": st.lists(node_fields, max_size=5) | json_values},
    optional={"debug": json_values, "resources": json_values, "extra": json_values},
)


def _check_outcome(config: Any, compat: str) -> None:
    try:
        plan_config(config, compat)
    except ConfigError as e:
        assert e.issues, "a ConfigError always lists its issues"
        for issue in e.issues:
            assert issue.message and str(issue)


@FUZZ
@given(configs, st.sampled_from(["auto", "3.10", "3.11"]))
def test_random_configs_plan_or_fail_cleanly(reliability, config, compat):
    reliability.fuzz_cases(1)
    _check_outcome(config, compat)


VALID = {
    "nodes": [
        {"name": "A", "type": "call", "url": "http://127.0.0.1:1/", "inputs": {"headers": "request.headers"}},
        {"name": "B", "type": "jq", "inputs": {"a": "A.body", "q": "request.query"}, "jq": "."},
        {"name": "C", "type": "exit", "inputs": {"body": "B"}, "status": 201},
    ]
}


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["nodes", 0, 1, 2]), st.sampled_from(["name", "type", "inputs", "jq", "url", "status", "input", "output"]), json_values), max_size=4))
def test_mutated_valid_config_plans_or_fails_cleanly(reliability, mutations):
    reliability.fuzz_cases(1)
    config = copy.deepcopy(VALID)
    for index, key, value in mutations:
        if index == "nodes":
            config["nodes"] = value
        elif isinstance(config["nodes"], list) and index < len(config["nodes"]) and isinstance(config["nodes"][index], dict):
            config["nodes"][index][key] = value
    _check_outcome(config, "auto")


@FUZZ
@given(st.text(max_size=200))
def test_random_yaml_text_loads_or_fails_cleanly(reliability, text):
    reliability.fuzz_cases(1)
    try:
        load_config(text)
    except ConfigError as e:
        assert e.issues


content_types = st.sampled_from(
    [None, "", "application/json", "application/json; charset=latin-1", "application/problem+json",
     "application/x-www-form-urlencoded", "text/plain", "application/xml", "multipart/form-data; boundary=x"]
)


@FUZZ
@given(st.binary(max_size=300), content_types, st.booleans())
def test_random_bodies_decode_to_values_or_a_clear_error(reliability, raw, content_type, decode_form):
    reliability.fuzz_cases(1)
    try:
        value = decode_body(raw, content_type, decode_form=decode_form)
    except ValueError as e:
        assert "invalid JSON body" in str(e)
        return
    body, implied = encode_body(value, content_type)
    assert isinstance(body, bytes)
    if isinstance(value, (bytes, str)):
        assert body == (value if isinstance(value, bytes) else value.encode())  # text passes through unchanged


header_names = st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=":"), min_size=1, max_size=10)


@FUZZ
@given(st.lists(st.tuples(header_names, st.text(max_size=20)), max_size=8))
def test_random_headers_map_and_back(reliability, fields):
    reliability.fuzz_cases(1)
    mapped = headers_to_map(fields)
    ops = header_ops(mapped)
    sent = [(name.lower(), value) for name, values in ops for value in values or []]
    assert sorted(sent) == sorted((name.lower(), value) for name, value in fields)


@FUZZ
@given(st.text(max_size=100))
def test_random_query_strings_parse(reliability, raw):
    reliability.fuzz_cases(1)
    parsed = parse_query(raw)
    assert all(isinstance(k, str) for k in parsed)


@FUZZ
@given(json_values, json_values)
def test_message_writes_accept_any_values(reliability, headers, body):
    reliability.fuzz_cases(1)
    write = MessageWrite.from_inputs({"headers": headers, "body": body}, has_body=True)
    assert isinstance(write.body, bytes)
    json.dumps([name for name, _ in write.header_ops])


PIPELINE = """
nodes:
- name: J
  type: jq
  inputs: {body: request.body, headers: request.headers, query: request.query}
  jq: '{b: .body, h: (.headers | keys), q: .query}'
- name: H
  type: handlebars
  inputs: {body: request.body, j: J}
  template: '{{body}} {{j.q}}'
- name: E
  type: exit
  inputs: {body: J}
"""


@settings(max_examples=150, deadline=None)
@given(json_values | st.binary(max_size=50), st.dictionaries(header_names, st.text(max_size=10) | st.lists(st.text(max_size=5), max_size=3), max_size=4),
       st.dictionaries(st.text(max_size=5), st.text(max_size=5) | st.just(True), max_size=3))
async def test_random_requests_through_jq_and_templates(reliability, body, headers, query):
    reliability.fuzz_cases(1)
    run = await run_config(PIPELINE, request={"body": body, "headers": headers, "query": query})
    assert run.exit is not None or run.failure is not None
    if run.failure is not None:
        assert isinstance(run.failure.message, str) and run.failure.message
    else:
        json.loads(run.exit.write.body)


def test_node_errors_are_the_only_failures_of_a_hostile_jq_program():
    """A jq runtime error is a NodeError with jq's message, never another exception."""
    import asyncio

    async def go() -> None:
        run = await run_config({"nodes": [{"name": "J", "type": "jq", "jq": "[limit(3; repeat(1))] | .[10].x.y | error"}]})
        assert run.failure is not None and isinstance(run.failure.message, str)

    asyncio.run(go())
    assert issubclass(NodeError, Exception)

"""Codecs between HTTP messages and Datakit values (spec §3.3 runtime checks, §4.1-§4.3)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mitm_datakit.types import DkType
from mitm_datakit.values import (
    MessageWrite,
    coerce,
    decode_body,
    encode_body,
    encode_form,
    encode_query,
    header_map_lookup,
    header_ops,
    headers_to_map,
    is_json_content_type,
    parse_json,
    parse_query,
)

# -- content types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("application/json;charset=UTF-8", True),
        ("Application/JSON", True),
        ("  application/json  ", True),
        ("application/problem+json", True),
        ("application/vnd.api+json; charset=utf-8", True),
        ("APPLICATION/HAL+JSON", True),
        ("text/plain", False),
        ("text/json", False),  # not an application/* type
        ("application/jsonp", False),
        ("application/json-patch", False),
        ("application/x-www-form-urlencoded", False),
        ("application/xml", False),
        ("", False),
        (None, False),
    ],
)
def test_is_json_content_type(content_type: str | None, expected: bool) -> None:
    assert is_json_content_type(content_type) is expected


# -- decode_body -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "content_type", "expected"),
    [
        (b'{"a": 1, "b": [true, null]}', "application/json", {"a": 1, "b": [True, None]}),
        (b"[1, 2.5]", "application/json; charset=utf-8", [1, 2.5]),
        (b'"text"', "application/problem+json", "text"),
        (b"42", "application/json", 42),
        (b"true", "application/json", True),
        ('{"name": "Zoë"}'.encode(), "application/json", {"name": "Zoë"}),
        # Not JSON by type: the body stays text, even if it looks like JSON.
        (b'{"a": 1}', "text/plain", '{"a": 1}'),
        (b'{"a": 1}', None, '{"a": 1}'),
        (b"hello", "application/octet-stream", "hello"),
        # A form body is a string unless the caller asks for form decoding.
        (b"a=1&b=2", "application/x-www-form-urlencoded", "a=1&b=2"),
    ],
)
def test_decode_body(raw: bytes, content_type: str | None, expected: Any) -> None:
    assert decode_body(raw, content_type) == expected


@pytest.mark.parametrize("raw", [b"{not json", b'{"a": 1', b"\xff\xfe", b"1 2"])
def test_decode_body_invalid_json_raises_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError, match="invalid JSON body"):
        decode_body(raw, "application/json")


# -- parse_json: json.loads, faster -------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down (1 == 1.0 and 0.0 == -0.0 do not count), NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _outcome(parse: Any, raw: bytes) -> tuple[str, Any]:
    try:
        return "value", parse(raw)
    except (ValueError, RecursionError) as e:
        return "error", (type(e), str(e))


def _assert_parses_as_json_loads(raw: bytes) -> None:
    ours, theirs = _outcome(parse_json, raw), _outcome(json.loads, raw)
    assert ours[0] == theirs[0], (raw, ours, theirs)
    if ours[0] == "value":
        assert _same(ours[1], theirs[1]), (raw, ours, theirs)
    else:
        assert ours[1] == theirs[1]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id": 4711, "names": ["a", "b"], "total": 22.75, "ok": true, "none": null}',
        b' \n{"a" : [1 , 2]}\n ',
        b'{"a": 1, "b": 2, "a": 3}',  # a repeated key: the last value, at the first key's place
        # Integers at and beyond the 64-bit range orjson holds (beyond it, orjson would give a float)
        b"18446744073709551615",
        b"18446744073709551616",
        b"-9223372036854775808",
        b"-9223372036854775809",
        b'{"big": [123456789012345678901234567890]}',
        b'"1234567890123456789 in a string takes json\'s way too"',
        b"1" + b"0" * 5000,  # beyond int's 4,300 digits: json's ValueError
        # Floats: rounding, negative zero, subnormals, overflow
        b"-0",
        b"-0.0",
        b"0.30000000000000004",
        b"1.7976931348623157e308",
        b"5e-324",
        b"2.4703282292062327e-324",
        b"1e400",
        b"-1e400",
        b"123456789012345678901234567890.5",
        # What orjson refuses and json accepts
        b"NaN",
        b"[Infinity, -Infinity]",
        b'"\\ud800"',
        b'"\xed\xa0\x80"',  # a surrogate written as UTF-8 bytes: json reads it (surrogatepass)
        b'\xef\xbb\xbf{"bom": 1}',
        '{"utf16": 1}'.encode("utf-16"),
        b"[" * 1100 + b"]" * 1100,  # deeper than orjson's 1,024
        # Invalid for both: the error is json's
        b"",
        b"{not json",
        b"[1, 2,]",
        b'{"a": 1} trailing',
        b'"a\x01b"',
        b"\xff",
        b"[" * 100_000 + b"]" * 100_000,  # json.loads: RecursionError
    ],
)
def test_parse_json_is_json_loads(raw: bytes) -> None:
    _assert_parses_as_json_loads(raw)


_JSON_ATOMS = st.sampled_from(
    [b"true", b"false", b"null", b"NaN", b"-Infinity", b'"x"', b'"\\u00e9\\ud83d\\ude00"', b'"\\ud800"', b'"\\n"',
     "\"é\"".encode(), b"\xff"]
)
_NUMBER_LIKE = st.lists(st.sampled_from([b"0", b"1", b"9", b"-", b"+", b".", b"e", b"E", b"00", b"123456789"]),
                        min_size=1, max_size=30).map(b"".join)
_JSONISH = st.recursive(
    _JSON_ATOMS | _NUMBER_LIKE | st.floats(allow_nan=False, allow_infinity=False).map(lambda f: repr(f).encode()),
    lambda inner: st.lists(inner, max_size=4).map(lambda items: b"[" + b",".join(items) + b"]")
    | st.lists(st.tuples(st.sampled_from([b'"a"', b'"b"', b'"\\u0061"']), inner), max_size=4).map(
        lambda pairs: b"{" + b",".join(k + b":" + v for k, v in pairs) + b"}"),
    max_leaves=12,
)


@settings(max_examples=2000, deadline=None)
@given(_JSONISH)
def test_parse_json_is_json_loads_for_json_like_text(raw: bytes) -> None:
    _assert_parses_as_json_loads(raw)


@pytest.mark.parametrize(
    "content_type", ["application/json", "text/plain", "application/x-www-form-urlencoded", None]
)
def test_decode_body_empty_is_null(content_type: str | None) -> None:
    assert decode_body(b"", content_type) is None
    assert decode_body(b"", content_type, decode_form=True) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"a=1&b=2", {"a": "1", "b": "2"}),
        (b"b=1&b=2&a=x&b=3", {"b": ["1", "2", "3"], "a": "x"}),
        (b"name=John+Doe&amp=%26&slash=%2F", {"name": "John Doe", "amp": "&", "slash": "/"}),
        (b"empty=&x=1", {"empty": "", "x": "1"}),
        (b"city=S%C3%A3o+Paulo", {"city": "São Paulo"}),
    ],
)
def test_decode_body_form_to_map(raw: bytes, expected: dict[str, Any]) -> None:
    assert decode_body(raw, "application/x-www-form-urlencoded; charset=utf-8", decode_form=True) == expected


def test_decode_body_form_flag_ignored_for_other_types() -> None:
    assert decode_body(b"a=1", "text/plain", decode_form=True) == "a=1"


def test_decode_body_non_utf8_text_keeps_bytes() -> None:
    raw = b"\x89PNG\r\n\x1a\n\xff\x00"
    value = decode_body(raw, "image/png")
    assert isinstance(value, bytes)
    assert value == raw


# -- encode_body -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"id": 123, "name": "Datakit"}, {"id": 123, "name": "Datakit"}),
        ([1, "two", None], [1, "two", None]),
        (5, 5),
        (2.5, 2.5),
        (True, True),
        (False, False),
        ({}, {}),
    ],
)
def test_encode_body_structured_values_are_json(value: Any, expected: Any) -> None:
    body, content_type = encode_body(value, None)
    assert content_type == "application/json"
    assert json.loads(body) == expected


def test_encode_body_json_is_compact_utf8() -> None:
    body, _ = encode_body({"a": [1, 2], "name": "Zoë"}, None)
    assert body == '{"a":[1,2],"name":"Zoë"}'.encode()


@pytest.mark.parametrize("content_type", [None, "application/json", "text/plain"])
def test_encode_body_string_is_verbatim(content_type: str | None) -> None:
    # A string is sent as is and implies no content type, whatever the sink's headers say.
    assert encode_body('{"not": "re-encoded"}', content_type) == (b'{"not": "re-encoded"}', None)
    assert encode_body("grant_type=client_credentials", content_type) == (
        b"grant_type=client_credentials",
        None,
    )


def test_encode_body_bytes_verbatim() -> None:
    assert encode_body(b"\xff\x00", None) == (b"\xff\x00", None)


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "Application/X-WWW-Form-Urlencoded; charset=utf-8"]
)
def test_encode_body_object_with_form_type_is_form_encoded(content_type: str) -> None:
    body, implied = encode_body(
        {"grant_type": "client_credentials", "client_id": "my_client_id"}, content_type
    )
    assert body == b"grant_type=client_credentials&client_id=my_client_id"
    assert implied is None  # the sink's own Content-Type stays


def test_encode_form_repeats_escapes_and_stringifies() -> None:
    text = encode_form({"scope": ["a b", "c&d"], "n": 10, "flag": True, "gone": None})
    assert text == "scope=a+b&scope=c%26d&n=10&flag=true"


def test_encode_body_array_with_form_type_stays_json() -> None:
    # Only objects have a form encoding (spec §4.3).
    body, implied = encode_body([1, 2], "application/x-www-form-urlencoded")
    assert (json.loads(body), implied) == ([1, 2], "application/json")


def test_encode_body_null_is_empty() -> None:
    assert encode_body(None, None) == (b"", None)
    assert encode_body(None, "application/json") == (b"", None)


def test_encode_body_rejects_nan() -> None:
    # NaN is not JSON; failing loudly beats sending a body no JSON parser accepts.
    with pytest.raises(ValueError):
        encode_body({"x": float("nan")}, None)


# -- query maps --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", {}),
        ("b=123&a=true", {"b": "123", "a": "true"}),  # spec §4.2: values stay strings
        ("a=1&a=2&a=3", {"a": ["1", "2", "3"]}),
        ("flag", {"flag": True}),
        ("a=1&flag&b=", {"a": "1", "flag": True, "b": ""}),
        ("q=hello+world", {"q": "hello world"}),
        ("q=%2Fpath%3Fx%3D1%26y", {"q": "/path?x=1&y"}),
        ("na%20me=v", {"na me": "v"}),
        ("k=v=w", {"k": "v=w"}),
        ("&&a=1&", {"a": "1"}),
        ("city=S%C3%A3o%20Paulo", {"city": "São Paulo"}),
    ],
)
def test_parse_query(raw: str, expected: dict[str, Any]) -> None:
    assert parse_query(raw) == expected


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        ({"a": True, "b": 10}, "a=true&b=10"),  # RF-26
        ({"b": "123", "a": "true"}, "b=123&a=true"),
        ({"x": ["1", "2"]}, "x=1&x=2"),
        ({"off": False, "pi": 3.5, "whole": 2.0}, "off=false&pi=3.5&whole=2"),
        ({"drop": None, "keep": "k"}, "keep=k"),
        ({"q": "a b&c=d/e"}, "q=a%20b%26c%3Dd%2Fe"),
        ({"é": "ü"}, "%C3%A9=%C3%BC"),
        ({}, ""),
    ],
)
def test_encode_query(mapping: dict[str, Any], expected: str) -> None:
    assert encode_query(mapping) == expected


def test_query_round_trip() -> None:
    mapping = {"a": ["1", "2"], "space": "x y", "amp": "&", "plus": "+"}
    assert parse_query(encode_query(mapping)) == mapping


# -- header maps -------------------------------------------------------------------------------


def test_headers_to_map_keeps_first_casing_and_collects_repeats() -> None:
    fields = [
        ("Content-Type", "application/json"),
        ("X-Multi", "1"),
        ("x-multi", "2"),
        ("X-MULTI", "3"),
        ("x-lower", "v"),
    ]
    assert headers_to_map(fields) == {
        "Content-Type": "application/json",
        "X-Multi": ["1", "2", "3"],
        "x-lower": "v",
    }


def test_headers_to_map_single_values_are_strings() -> None:
    result = headers_to_map([("Accept", "*/*")])
    assert result == {"Accept": "*/*"}
    assert isinstance(result["Accept"], str)


@pytest.mark.parametrize("name", ["Authorization", "authorization", "AUTHORIZATION", "AuThOrIzAtIoN"])
def test_header_map_lookup_is_case_insensitive(name: str) -> None:
    assert header_map_lookup({"Authorization": "Bearer x", "Other": "y"}, name) == "Bearer x"


def test_header_map_lookup_missing_is_null() -> None:
    assert header_map_lookup({"A": "1"}, "b") is None


def test_header_ops() -> None:
    ops = header_ops(
        {
            "X-Ignored": None,
            "X-Add-Me": "added",
            "X-Multi": ["first", "second"],
            "x-hit": True,  # EX-07's `x-hit: true` is a YAML boolean
            "x-miss": False,
            "X-Count": 10,
            "X-Ratio": 1.5,
            "X-Whole": 3.0,
            "X-Holes": ["a", None, 2],
        }
    )
    assert ops == [
        ("X-Ignored", None),
        ("X-Add-Me", ["added"]),
        ("X-Multi", ["first", "second"]),
        ("x-hit", ["true"]),
        ("x-miss", ["false"]),
        ("X-Count", ["10"]),
        ("X-Ratio", ["1.5"]),
        ("X-Whole", ["3"]),
        ("X-Holes", ["a", "2"]),
    ]


# -- coerce (spec §3.3 runtime conversions) ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected_type", "expected"),
    [
        # null passes every type: the input is simply unset.
        (None, DkType.STRING, None),
        (None, DkType.NUMBER, None),
        (None, DkType.MAP, None),
        (None, DkType.OBJECT, None),
        (None, DkType.BOOLEAN, None),
        # any: copied as is.
        ({"a": [1]}, DkType.ANY, {"a": [1]}),
        ("s", DkType.ANY, "s"),
        (b"\xff", DkType.ANY, b"\xff"),
        # string: numbers and booleans convert.
        ("text", DkType.STRING, "text"),
        (10, DkType.STRING, "10"),
        (1.5, DkType.STRING, "1.5"),
        (2.0, DkType.STRING, "2"),
        (True, DkType.STRING, "true"),
        (False, DkType.STRING, "false"),
        (b"bytes", DkType.STRING, "bytes"),
        # number: strings that are numbers convert.
        (5, DkType.NUMBER, 5),
        (2.5, DkType.NUMBER, 2.5),
        ("42", DkType.NUMBER, 42),
        ("-7", DkType.NUMBER, -7),
        ("4.5", DkType.NUMBER, 4.5),
        ("2.0", DkType.NUMBER, 2.0),
        # boolean, map, object: same type only.
        (True, DkType.BOOLEAN, True),
        (False, DkType.BOOLEAN, False),
        ({"k": "v"}, DkType.MAP, {"k": "v"}),
        ({}, DkType.OBJECT, {}),
    ],
)
def test_coerce_converts(value: Any, expected_type: DkType, expected: Any) -> None:
    result = coerce(value, expected_type)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "expected_type", "message"),
    [
        ({"a": 1}, DkType.STRING, "expected string, got object"),
        ([1], DkType.STRING, "expected string, got array"),
        ("abc", DkType.NUMBER, "expected number, got string"),
        ("", DkType.NUMBER, "expected number, got string"),
        ("nan", DkType.NUMBER, "expected number, got string"),
        ("inf", DkType.NUMBER, "expected number, got string"),
        (True, DkType.NUMBER, "expected number, got boolean"),
        ({"a": 1}, DkType.NUMBER, "expected number, got object"),
        ("true", DkType.BOOLEAN, "expected boolean, got string"),
        (1, DkType.BOOLEAN, "expected boolean, got number"),
        ("oops, not an object/map", DkType.MAP, "expected map, got string"),
        ([["a", "b"]], DkType.MAP, "expected map, got array"),
        (3, DkType.OBJECT, "expected object, got number"),
        ([], DkType.OBJECT, "expected object, got array"),
    ],
)
def test_coerce_rejects(value: Any, expected_type: DkType, message: str) -> None:
    with pytest.raises(TypeError) as info:
        coerce(value, expected_type)
    assert str(info.value) == message


# -- MessageWrite.from_inputs ------------------------------------------------------------------


def test_message_write_drops_framing_headers() -> None:
    write = MessageWrite.from_inputs(
        {
            "headers": {
                "Content-Length": "999",
                "transfer-encoding": "chunked",
                "Connection": "keep-alive",
                "Keep-Alive": "timeout=5",
                "TE": "trailers",
                "Upgrade": "websocket",
                "X-Kept": "yes",
            }
        },
        has_body=False,
    )
    assert write.header_ops == [("X-Kept", ["yes"])]


def test_message_write_object_body_implies_json() -> None:
    write = MessageWrite.from_inputs({"body": {"id": 123, "name": "Datakit"}}, has_body=True)
    assert json.loads(write.body or b"") == {"id": 123, "name": "Datakit"}
    assert write.content_type == "application/json"
    assert write.header_ops == []


@pytest.mark.parametrize("header_name", ["Content-Type", "content-type", "CONTENT-TYPE"])
def test_message_write_given_content_type_wins(header_name: str) -> None:
    write = MessageWrite.from_inputs(
        {"headers": {header_name: "application/vnd.custom"}, "body": {"a": 1}}, has_body=True
    )
    assert write.content_type is None  # nothing implied: the header op sets it
    assert write.header_ops == [(header_name, ["application/vnd.custom"])]
    assert json.loads(write.body or b"") == {"a": 1}


def test_message_write_form_content_type_form_encodes() -> None:
    write = MessageWrite.from_inputs(
        {
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            "body": {"grant_type": "client_credentials", "client_id": "my_client_id"},
        },
        has_body=True,
    )
    assert write.body == b"grant_type=client_credentials&client_id=my_client_id"
    assert write.content_type is None


def test_message_write_string_body_implies_nothing() -> None:
    write = MessageWrite.from_inputs({"body": "plain text"}, has_body=True)
    assert (write.body, write.content_type) == (b"plain text", None)


def test_message_write_without_body_input_keeps_message_body() -> None:
    write = MessageWrite.from_inputs({"body": {"ignored": True}, "headers": {"A": "1"}}, has_body=False)
    assert write.body is None
    assert write.content_type is None


def test_message_write_connected_null_body_is_empty() -> None:
    write = MessageWrite.from_inputs({"body": None}, has_body=True)
    assert (write.body, write.content_type) == (b"", None)


def test_message_write_query_only_when_map() -> None:
    assert MessageWrite.from_inputs({"query": {"a": "1"}}, has_body=False).query == {"a": "1"}
    assert MessageWrite.from_inputs({"query": "a=1"}, has_body=False).query is None
    assert MessageWrite.from_inputs({}, has_body=False).query is None


def test_message_write_null_header_is_a_removal() -> None:
    write = MessageWrite.from_inputs({"headers": {"X-Ignored": None, "X-Add-Me": "added"}}, has_body=False)
    assert write.header_ops == [("X-Ignored", None), ("X-Add-Me", ["added"])]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({1: "one", "X-A": "a"}, [("1", ["one"]), ("X-A", ["a"])]),
        ({True: "t", None: "n", 1.5: "f"}, [("true", ["t"]), ("null", ["n"]), ("1.5", ["f"])]),
    ],
)
def test_header_names_from_yaml_keys_that_are_not_text_are_named_as_json_names_them(headers, expected) -> None:
    """A static header map with `1:` as a key ended in an internal error (AttributeError) at the sink."""
    assert header_ops(headers) == expected

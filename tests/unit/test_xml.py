"""`xml_to_json` and `json_to_xml` (spec §5.8, §5.9): the documented conversion both ways, every field,
XPath, and hostile documents (entity expansion, external entities), which must be refused."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from lxml import etree
from mitm_datakit.errors import ConfigError
from mitm_datakit.plan import build_plan
from mitm_datakit.runtime import Run
from mitm_datakit.values import MessageWrite, XmlText, encode_body

from .conftest import value_of
from .support import run_config

BOUND = 5.0

SPEC_XML = (
    "<root><name>Alice</name><age>30</age><is_student>false</is_student><courses>Math</courses>"
    "<courses>Science</courses><address><street>123 Main St</street><city>Wonderland</city></address>"
    "<null_value>null</null_value></root>"
)
SPEC_JSON = {
    "root": {
        "name": "Alice",
        "age": 30,
        "is_student": False,
        "courses": ["Math", "Science"],
        "address": {"street": "123 Main St", "city": "Wonderland"},
        "null_value": None,
    }
}
SOAP = (
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
    '<soap:Body><m:GetPrice xmlns:m="urn:shop" currency="EUR"><m:Item>Apple</m:Item></m:GetPrice></soap:Body>'
    "</soap:Envelope>"
)


async def convert(node: dict[str, Any], body: Any) -> Run:
    run = await asyncio.wait_for(
        run_config({"nodes": [{"name": "X", "input": "request.body", **node}]}, request={"body": body}), BOUND
    )
    return run


def to_json_node(**fields: Any) -> dict[str, Any]:
    return {"type": "xml_to_json", "attributes_name_prefix": "-", **fields}


def to_xml_node(**fields: Any) -> dict[str, Any]:
    return {"type": "json_to_xml", **fields}


async def xml_to_json(xml: str, **fields: Any) -> Any:
    run = await convert(to_json_node(**fields), xml)
    assert run.failure is None, run.failure
    return value_of(run, "X")


async def json_to_xml(value: Any, **fields: Any) -> str:
    run = await convert(to_xml_node(**fields), value)
    assert run.failure is None, run.failure
    return str(value_of(run, "X"))


async def failure(node: dict[str, Any], body: Any) -> str:
    run = await convert(node, body)
    assert run.failure is not None, "the node was expected to fail"
    return run.failure.message


# =============================================================================================
# xml_to_json
# =============================================================================================


async def test_documented_example() -> None:
    assert await xml_to_json(SPEC_XML) == SPEC_JSON


async def test_recognize_type_off_keeps_text() -> None:
    result = await xml_to_json(SPEC_XML, recognize_type=False)
    assert result["root"]["age"] == "30"
    assert result["root"]["is_student"] == "false"
    assert result["root"]["null_value"] == "null"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42),
        ("-1.5e3", -1500.0),
        (" 7 ", 7),
        ("007", "007"),
        ("1e400", "1e400"),
        ("0x1A", "0x1A"),
        ("True", "True"),
        ("true", True),
        ("null", None),
        ("12 apples", "12 apples"),
    ],
)
async def test_type_recognition(text: str, expected: Any) -> None:
    result = await xml_to_json(f"<v>{text}</v>")
    assert result == {"v": expected}
    assert type(result["v"]) is type(expected)


@pytest.mark.parametrize(
    ("xml", "fields", "expected"),
    [
        ("<a/>", {}, {"a": {}}),
        ("<a></a>", {}, {"a": {}}),
        ('<a id="1"/>', {}, {"a": {"-id": 1}}),
        ('<a id="1">x</a>', {}, {"a": {"-id": 1, "#text": "x"}}),
        ('<a id="1">x</a>', {"text_block_name": "_text"}, {"a": {"-id": 1, "_text": "x"}}),
        (
            '<a id="1" k="v">x</a>',
            {"attributes_block_name": "#attr", "attributes_name_prefix": None},
            {"a": {"#attr": {"id": 1, "k": "v"}, "#text": "x"}},
        ),
        (
            '<a id="1"/>',
            {"attributes_block_name": "@", "attributes_name_prefix": "-"},
            {"a": {"@": {"id": 1}}},
        ),
        ("<a><b>1</b></a>", {"text_as_property": True}, {"a": {"b": {"#text": 1}}}),
        ("<a><b/></a>", {"text_as_property": True}, {"a": {"b": {}}}),
        ("<p>one <b>two</b> three</p>", {}, {"p": {"b": "two", "#text": "one  three"}}),
        ("<a><![CDATA[<not> markup]]></a>", {}, {"a": "<not> markup"}),
        ("<a><!-- note --><b>1</b><?pi x?></a>", {}, {"a": {"b": 1}}),
        ("<a>\n  <b>1</b>\n  <b>2</b>\n  <c/>\n</a>", {}, {"a": {"b": [1, 2], "c": {}}}),
        ("<a><b>1</b><c>x</c><b>2</b></a>", {}, {"a": {"b": [1, 2], "c": "x"}}),
        ('<a xml:lang="en">hi</a>', {}, {"a": {"-xml:lang": "en", "#text": "hi"}}),
    ],
    ids=[
        "empty-self-closing",
        "empty",
        "attribute-prefix",
        "attribute-and-text",
        "text-block-name",
        "attribute-block",
        "block-wins-over-prefix",
        "text-as-property",
        "text-as-property-empty",
        "mixed-content",
        "cdata",
        "comments-and-pis-dropped",
        "pretty-printed",
        "repeats-apart",
        "xml-namespace-attribute",
    ],
)
async def test_conversion_rules(xml: str, fields: dict[str, Any], expected: Any) -> None:
    assert await xml_to_json(xml, **fields) == expected


async def test_namespaces_keep_prefixes_and_declarations() -> None:
    result = await xml_to_json(SOAP, attributes_block_name="#attr", attributes_name_prefix=None)
    assert result == {
        "soap:Envelope": {
            "#attr": {"xmlns:soap": "http://schemas.xmlsoap.org/soap/envelope/"},
            "soap:Body": {
                "m:GetPrice": {"#attr": {"xmlns:m": "urn:shop", "currency": "EUR"}, "m:Item": "Apple"},
            },
        }
    }


async def test_encoding_declaration_of_decoded_text_is_ignored() -> None:
    xml = '<?xml version="1.0" encoding="ISO-8859-1"?><city>Zürich</city>'
    assert await xml_to_json(xml) == {"city": "Zürich"}


@pytest.mark.parametrize(
    ("xpath", "expected"),
    [
        ("/root/address", {"address": {"street": "123 Main St", "city": "Wonderland"}}),
        ("//courses", {"courses": ["Math", "Science"]}),
        ("/root/name | /root/age", {"name": "Alice", "age": 30}),
        ("//courses/text()", ["Math", "Science"]),
        ("/root/age/text()", 30),
        ("count(//courses)", 2),
        ("string(/root/name)", "Alice"),
        ("boolean(//missing)", False),
        ("//missing", None),
    ],
)
async def test_xpath(xpath: str, expected: Any) -> None:
    assert await xml_to_json(SPEC_XML, xpath=xpath) == expected


async def test_xpath_attributes_and_namespace_prefixes() -> None:
    assert await xml_to_json(SOAP, xpath="//m:GetPrice/@currency") == "EUR"
    assert await xml_to_json(SOAP, xpath="//m:Item") == {"m:Item": "Apple"}


async def test_xpath_default_namespace_needs_local_name() -> None:
    xml = '<feed xmlns="urn:feed"><entry>1</entry></feed>'
    assert await xml_to_json(xml, xpath="//entry") is None  # XPath 1.0 has no default namespace
    assert await xml_to_json(xml, xpath="//*[local-name()='entry']") == {"entry": 1}


async def test_xpath_with_an_undeclared_prefix_fails_the_node() -> None:
    message = await failure(to_json_node(xpath="//x:item"), SPEC_XML)
    assert message.startswith("xml_to_json: xpath: ")


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'
        for i in range(1, 10)
    )
    + "]><lolz>&lol9;</lolz>"
)


@pytest.mark.parametrize(
    "xml",
    [
        BILLION_LAUGHS,
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
        '<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://127.0.0.1:1/evil.dtd"><r>x</r>',
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><r/>',
        "<!DOCTYPE r><r/>",
    ],
    ids=["billion-laughs", "external-entity", "external-dtd", "parameter-entity", "bare-doctype"],
)
async def test_hostile_documents_are_refused(xml: str) -> None:
    started = time.monotonic()
    message = await failure(to_json_node(), xml)
    assert time.monotonic() - started < 1
    assert (
        message
        == "xml_to_json: a document with a DOCTYPE is refused (DTDs and entity declarations are not allowed)"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("<a><b></a>", "xml_to_json: invalid XML: Opening and ending tag mismatch: b line 1 and a"),
        ("not xml", "xml_to_json: invalid XML: Start tag expected, '<' not found"),
        ("<a>&undefined;</a>", "xml_to_json: invalid XML: Entity 'undefined' not defined"),
        ("   ", "xml_to_json: empty document"),
        (None, "xml_to_json: no XML (the input is null)"),
    ],
)
async def test_bad_input_fails_the_node(body: Any, message: str) -> None:
    assert (await failure(to_json_node(), body)).startswith(message)


async def test_deeply_nested_document_hits_the_parser_limit() -> None:
    depth = 300  # libxml2 refuses more than 256 levels without huge_tree
    message = await failure(to_json_node(), "<a>" * depth + "</a>" * depth)
    assert message.startswith("xml_to_json: invalid XML: ")


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (
            {"type": "xml_to_json", "input": "request.body"},
            "field 'attributes_block_name': At least one of attributes_block_name or attributes_name_prefix",
        ),
        (to_json_node(input="request.body", xpath="//["), "field 'xpath': invalid XPath expression"),
        (to_json_node(inputs={"a": "request.body"}), 'a xml_to_json node does not accept "inputs"'),
        (
            to_json_node(input="request.body", outputs={"a": "response.body"}),
            'a xml_to_json node does not accept "outputs"',
        ),
        (to_json_node(input="request"), "type mismatch: object -> string"),
        (
            to_json_node(input="request.body", text_block_name="x" * 33),
            "field 'text_block_name': length must be at most 32",
        ),
    ],
)
def test_xml_to_json_config_problems(node: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_plan({"nodes": [{"name": "X", **node}]})
    assert expected in str(caught.value)


# =============================================================================================
# json_to_xml
# =============================================================================================


async def test_documented_example_back_to_xml() -> None:
    assert await json_to_xml(SPEC_JSON, root_element_name="root") == SPEC_XML
    assert await json_to_xml(SPEC_JSON) == SPEC_XML  # the single top-level key is the root


@pytest.mark.parametrize(
    ("value", "fields", "expected"),
    [
        ({"a": {"b": [], "c": {}, "d": ""}}, {}, "<a><b/><c/><d/></a>"),
        (
            {"a": {"t": True, "f": False, "n": None, "i": 2.0, "x": 1.5}},
            {},
            "<a><t>true</t><f>false</f><n>null</n><i>2</i><x>1.5</x></a>",
        ),
        ({"a": {"b": [1, [2, 3]]}}, {}, "<a><b>1</b><b>2</b><b>3</b></a>"),
        ({"a": {"-id": 7, "#text": "hi"}}, {"attributes_name_prefix": "-"}, '<a id="7">hi</a>'),
        (
            {"a": {"#attr": {"id": 7, "on": True}, "b": 1}},
            {"attributes_block_name": "#attr"},
            '<a id="7" on="true"><b>1</b></a>',
        ),
        ({"a": {"_text": "x"}}, {"text_block_name": "_text"}, "<a>x</a>"),
        ({"x": 1, "y": 2}, {"root_element_name": "root"}, "<root><x>1</x><y>2</y></root>"),
        ({"person": {"n": 1}}, {"root_element_name": "root"}, "<root><person><n>1</n></person></root>"),
        ([1, 2], {"root_element_name": "list"}, None),
        (5, {"root_element_name": "r"}, "<r>5</r>"),
        ({"a": "x < y & z"}, {}, "<a>x &lt; y &amp; z</a>"),
        ({"a": {"-q": 'say "hi"'}}, {"attributes_name_prefix": "-"}, '<a q="say &quot;hi&quot;"/>'),
    ],
    ids=[
        "empty-values",
        "scalars",
        "nested-arrays-flatten",
        "prefix-attributes",
        "attribute-block",
        "text-block-name",
        "wrap-several-keys",
        "wrap-another-single-key",
        "root-array-refused",
        "root-number-wrapped",
        "escaped-text",
        "escaped-attribute",
    ],
)
async def test_json_to_xml_rules(value: Any, fields: dict[str, Any], expected: str | None) -> None:
    if expected is None:
        message = await failure(to_xml_node(**fields), value)
        assert message.startswith("json_to_xml: the root element cannot be an array (a document has one root")
    else:
        assert await json_to_xml(value, **fields) == expected


async def test_json_text_input_is_parsed() -> None:
    assert await json_to_xml('{"a": {"b": 1}}') == "<a><b>1</b></a>"


async def test_free_inputs_form_the_object() -> None:
    run = await asyncio.wait_for(
        run_config(
            {
                "nodes": [
                    {"name": "S", "type": "static", "values": {"id": 5, "tags": ["x", "y"]}},
                    {
                        "name": "X",
                        "type": "json_to_xml",
                        "root_element_name": "order",
                        "inputs": {"id": "S.id", "tags": "S.tags"},
                    },
                ]
            }
        ),
        BOUND,
    )
    assert str(value_of(run, "X")) == "<order><id>5</id><tags>x</tags><tags>y</tags></order>"


@pytest.mark.parametrize(
    "xml",
    [SPEC_XML, SOAP, '<a id="1" xml:lang="en">x<b k="v">2</b></a>'],
    ids=["spec", "soap", "attributes"],
)
async def test_round_trip(xml: str) -> None:
    fields = {"attributes_block_name": "#attr"}
    as_json = await xml_to_json(xml, attributes_name_prefix=None, **fields)
    back = await json_to_xml(as_json, **fields)
    assert etree.tostring(etree.fromstring(back), method="c14n") == etree.tostring(
        etree.fromstring(xml), method="c14n"
    )


@pytest.mark.parametrize(
    ("value", "fields", "message"),
    [
        (
            {"a": 1, "b": 2},
            {},
            "json_to_xml: the input is an object with 2 keys; an XML document needs one root",
        ),
        ([1], {}, "json_to_xml: the input is not an object; an XML document needs one root element"),
        ("{oops", {}, "json_to_xml: the input string is not JSON: "),
        ({"first name": 1}, {}, "json_to_xml: cannot write <first name>: Invalid tag name"),
        (
            {"s:a": 1},
            {},
            "json_to_xml: namespace prefix 's' of 's:a' is not declared (add an xmlns:s attribute)",
        ),
        ({"a": "\x00"}, {}, "json_to_xml: cannot write <a>: All strings must be XML compatible"),
        (
            {"a": {"-x": {"deep": 1}}},
            {"attributes_name_prefix": "-"},
            "json_to_xml: an attribute or text value must be a string, number, boolean or null",
        ),
        (
            {"a": {"#attr": "nope"}},
            {"attributes_block_name": "#attr"},
            "json_to_xml: '#attr' must be an object of attributes",
        ),
    ],
)
async def test_json_to_xml_failures(value: Any, fields: dict[str, Any], message: str) -> None:
    assert (await failure(to_xml_node(**fields), value)).startswith(message)


def test_xml_text_is_sent_as_application_xml() -> None:
    assert encode_body(XmlText("<a/>"), None) == (b"<a/>", "application/xml")
    assert encode_body("<a/>", None) == (b"<a/>", None)  # a plain string keeps the message's type
    given = MessageWrite.from_inputs(
        {"body": XmlText("<a/>"), "headers": {"Content-Type": "text/xml"}}, has_body=True
    )
    assert given.content_type is None  # the sink's own Content-Type wins


async def test_json_to_xml_output_into_exit_is_application_xml() -> None:
    run = await asyncio.wait_for(
        run_config(
            {
                "nodes": [
                    {"name": "X", "type": "json_to_xml", "input": "request.body"},
                    {"name": "EXIT", "type": "exit", "inputs": {"body": "X"}},
                ]
            },
            request={"body": {"a": 1}},
        ),
        BOUND,
    )
    assert run.exit is not None
    assert (run.exit.write.body, run.exit.write.content_type) == (b"<a>1</a>", "application/xml")

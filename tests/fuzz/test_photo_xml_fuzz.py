"""Hypothesis fuzz of the Pho.to ``image_process_call`` parser (compat.photo.render).

Valid calls are drawn from the seed's grammar and must parse back to what was drawn; then the
same documents are cut, repeated, re-encoded and salted with the XML features an attacker
reaches for (DTDs, entities, CDATA, processing instructions, NULs, lone surrogates). Whatever
comes in, the parser returns a well-formed call or raises a FaceplaneError with a 4xx code.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from hypothesis import given, settings
from hypothesis import strategies as st

from faceplane.compat.photo.parse import PhotoCall, parse_image_process_call
from faceplane.errors import Err, FaceplaneError

SCALE = max(1, int(os.environ.get("FACEPLANE_FUZZ_SCALE", "1")))
PARSER_CODES = frozenset(
    {Err.INVALID_ARGUMENT, Err.MISSING_ARGUMENT, Err.INVALID_TYPE, Err.PAYLOAD_TOO_LARGE}
)

# Text XML 1.0 can carry, without the whitespace the parser strips from both ends.
_XML_CHAR = st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="\ufffe\uffff")
_WORD = st.text(st.characters(whitelist_categories=["Ll", "Lu", "Nd"]), min_size=1, max_size=12)
_TEXT = st.text(_XML_CHAR, min_size=1, max_size=30).map(str.strip).filter(bool)
_PARAM_KEY = _WORD
_PARAM_VALUE = st.text(
    st.characters(blacklist_categories=["Cs", "Cc", "Zs", "Zl", "Zp"], blacklist_characters=";"),
    max_size=12,
).map(str.strip)


@dataclass(frozen=True)
class Drawn:
    """A call as drawn: what the XML says, to compare with what the parser read."""

    urls: list[tuple[int | None, str]]
    methods: list[tuple[int | None, str, dict[str, str]]]
    ints: dict[str, int]
    bools: dict[str, str]
    extra: dict[str, str]


def _order(value: int | None) -> str:
    return "" if value is None else f" order={quoteattr(str(value))}"


def render(call: Drawn) -> str:
    """The XML text of a drawn call, in the seed's layout."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<image_process_call>"]
    lines += [f"  <image_url{_order(o)}>{escape(url)}</image_url>" for o, url in call.urls]
    lines.append("  <methods_list>")
    for order, name, params in call.methods:
        text = ";".join(f"{k}={v}" for k, v in params.items())
        lines.append(
            f"    <method{_order(order)}><name>{escape(name)}</name>"
            f"<params>{escape(text)}</params></method>"
        )
    lines.append("  </methods_list>")
    for tag, value in [*call.ints.items(), *call.bools.items(), *call.extra.items()]:
        lines.append(f"  <{tag}>{escape(str(value))}</{tag}>")
    lines.append("</image_process_call>")
    return "\n".join(lines)


_ORDER = st.none() | st.integers(-5, 10**6)
drawn_calls = st.builds(
    Drawn,
    urls=st.lists(st.tuples(_ORDER, _TEXT), min_size=1, max_size=3),
    methods=st.lists(
        st.tuples(_ORDER, _WORD, st.dictionaries(_PARAM_KEY, _PARAM_VALUE, max_size=3)),
        min_size=1,
        max_size=3,
    ),
    ints=st.dictionaries(
        st.sampled_from(["result_size", "result_quality", "thumb1_size", "thumb2_size"]),
        st.integers(1, 10**30),
    ),
    bools=st.dictionaries(
        st.sampled_from(["template_watermark", "crop_portrait", "abort_methods_chain_on_error"]),
        st.sampled_from(["true", "false", "1", "0", "TRUE"]),
    ),
    extra=st.dictionaries(st.sampled_from(["lang", "result_format", "x_extra"]), _TEXT),
)


def _by_order(items: list[Any]) -> list[Any]:
    keyed = sorted(enumerate(items), key=lambda p: (p[1][0] is None, p[1][0] or 0, p[0]))
    return [item for _, item in keyed]


def assert_contract(data: bytes | str) -> PhotoCall | None:
    """A well-formed call, or a FaceplaneError with one of the parser's 4xx codes."""
    try:
        call = parse_image_process_call(data)
    except FaceplaneError as exc:
        assert exc.err in PARSER_CODES, exc.err
        return None
    assert call.images and all(image.url for image in call.images)
    assert call.methods and all(name for name, _ in call.methods)
    for value in (call.result_size, call.result_quality, call.thumb1_size, call.thumb2_size):
        assert value is None or value > 0
    return call


# What an attacker splices into a document.
HOSTILE = [
    '<!DOCTYPE image_process_call [<!ENTITY a "aaaaaaaaaa">]>',
    '<!DOCTYPE x SYSTEM "file:///etc/passwd">',
    '<!ENTITY % p SYSTEM "http://127.0.0.1/">',
    "&a;",
    "&#0;",
    "&#x110000;",
    "&amp;",
    "&lt;",
    "<![CDATA[<image_url>x</image_url>]]>",
    "]]>",
    "<?xml version='1.0' encoding='ebcdic-cp-us'?>",
    "<?php ?>",
    "<!-- -->",
    "\x00",
    "\ud800",
    "\udfff",
    "\ufeff",
    "<image_url>",
    "</methods_list>",
    "<method><name></name></method>",
    '<image_url order="x">',
    '<image_url order="99999999999999999999999999">u</image_url>',
    "<result_size>-1</result_size>",
    "<result_size>" + "9" * 5000 + "</result_size>",
    "<crop_portrait>maybe</crop_portrait>",
    "<params>a</params>",
    "<params>a=1;a=2</params>",
    "<ns:image_url xmlns:ns='u'>x</ns:image_url>",
    "<" * 50,
    "<a>" * 200,
]


@st.composite
def text_edit(draw: Any) -> tuple[str, int, int, str]:
    return (
        draw(st.sampled_from(["insert", "cut", "repeat", "truncate", "char"])),
        draw(st.integers(0, 10**6)),
        draw(st.integers(1, 80)),
        draw(st.sampled_from(HOSTILE) | st.text(max_size=4)),
    )


def edit(text: str, edits: list[tuple[str, int, int, str]]) -> str:
    """Apply text edits; positions are taken modulo the current length."""
    for kind, pos, span, snippet in edits:
        pos %= len(text) + 1
        if kind == "insert":
            text = text[:pos] + snippet + text[pos:]
        elif kind == "cut":
            text = text[:pos] + text[pos + span :]
        elif kind == "repeat":
            text = text[:pos] + text[pos : pos + span] * 3 + text[pos:]
        elif kind == "truncate":
            text = text[:pos]
        else:
            text = text[:pos] + (snippet[:1] or "<") + text[pos + 1 :]
    return text


def encode(text: str, how: str) -> bytes | str:
    """The document as the parser may get it: text, or bytes in some encoding."""
    if how == "str":
        return text
    if how == "utf-16":
        return text.encode("utf-16", "surrogatepass")
    if how == "latin-1":
        return text.encode("latin-1", "replace")
    return text.encode("utf-8", "surrogatepass")


def _profile(n: int) -> settings:
    return settings(settings.get_profile("faceplane-fuzz"), max_examples=n * SCALE)


def test_drawn_calls_parse_back_to_what_was_drawn() -> None:
    @_profile(100)
    @given(call=drawn_calls)
    def run(call: Drawn) -> None:
        parsed = parse_image_process_call(render(call))
        assert [i.url for i in parsed.images] == [u for _, u in _by_order(call.urls)]
        assert [i.order for i in parsed.images] == [o for o, _ in _by_order(call.urls)]
        methods = [(name, params) for _, name, params in _by_order(call.methods)]
        assert parsed.methods == methods
        for tag, value in call.ints.items():
            assert getattr(parsed, tag) == value
        for tag, value in call.bools.items():
            assert getattr(parsed, tag) is (value.lower() in ("true", "1"))
        assert parsed.lang == call.extra.get("lang")
        assert parsed.extra == (
            {"x_extra": call.extra["x_extra"]} if "x_extra" in call.extra else {}
        )

    run()


def test_arbitrary_text_and_bytes_parse_or_raise_a_faceplane_error(fuzz_time: Any) -> None:
    anything = st.one_of(
        st.text(st.characters(), max_size=300),
        st.text(st.characters(codec=None, categories=["Cs", "Cc", "Lo", "Po"]), max_size=50),
        st.binary(max_size=400),
        st.binary(max_size=400).map(lambda b: b"<image_process_call>" + b),
    )

    @_profile(200)
    @given(data=anything)
    def run(data: bytes | str) -> None:
        assert_contract(data)

    start = time.monotonic()
    run()
    fuzz_time("Pho.to XML: arbitrary input", time.monotonic() - start, f"{200 * SCALE} inputs")


def test_mutated_valid_calls_parse_or_raise_a_faceplane_error(fuzz_time: Any) -> None:
    @_profile(300)
    @given(
        call=drawn_calls,
        edits=st.lists(text_edit(), min_size=1, max_size=5),
        how=st.sampled_from(["str", "utf-8", "utf-16", "latin-1"]),
    )
    def run(call: Drawn, edits: list[tuple[str, int, int, str]], how: str) -> None:
        assert_contract(encode(edit(render(call), edits), how))

    start = time.monotonic()
    run()
    fuzz_time("Pho.to XML: mutated calls", time.monotonic() - start, f"{300 * SCALE} inputs")


def test_a_call_with_a_lone_surrogate_is_an_invalid_argument() -> None:
    # Found by this fuzz: a str with "\ud800" raised UnicodeEncodeError out of the parser.
    # (The HTTP route cannot send one: form decoding replaces bad UTF-8 with U+FFFD.)
    try:
        parse_image_process_call("<image_process_call>\ud800</image_process_call>")
    except FaceplaneError as exc:
        assert exc.err is Err.INVALID_ARGUMENT and exc.details == {"reason": "encoding"}
    else:
        raise AssertionError("a lone surrogate was parsed")

"""The Pho.to dialect (seed 000): the ``<image_process_response>`` XML and ``image_process_call``.

Pho.to reports every outcome inside the XML body: ``<status>`` is ``OK``, ``InProgress``,
``Error``, ``SecurityError`` or ``WrongID`` and ``<err_code>`` carries the number. The seed
names no HTTP status for any of them, so every answer is HTTP 200 (:data:`HTTP_STATUS`):
clients written against Pho.to read ``<status>``, and many HTTP libraries raise on a 4xx/5xx
before the body is read, which would break exactly the clients this dialect exists for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree

from faceplane.errors import Err, FaceplaneError

__all__ = [
    "HTTP_STATUS",
    "MEDIA_TYPE",
    "TAGS",
    "URL_TAGS",
    "PhotoCall",
    "PhotoImage",
    "parse_image_process_call",
    "parse_params",
    "photo_status",
    "render_added",
    "render_error",
    "render_task",
]

HTTP_STATUS = 200
# text/xml without a charset defaults to US-ASCII (RFC 3023), so the charset is explicit.
MEDIA_TYPE = "text/xml; charset=utf-8"

# The seed's common response, in its order; an answer holds a subset of these, never others.
TAGS: tuple[str, ...] = (
    "request_id",
    "status",
    "description",
    "err_code",
    "result_url",
    "thumb1_url",
    "thumb2_url",
    "thumb_ini1_url",
    "thumb_ini2_url",
)
URL_TAGS: tuple[str, ...] = TAGS[4:]  # present only when the task produced that image

# "WrongID: There is no task with such REQUEST_ID." An expired task is gone too, and telling a
# Pho.to client "SecurityError" for it would send it to check its credentials.
_WRONG_ID = frozenset({Err.TASK_NOT_FOUND, Err.TASK_EXPIRED})

ADDED_DESCRIPTION = "The task was added to the queue."
DONE_DESCRIPTION = "The task is complete."
IN_PROGRESS_DESCRIPTION = "The task is in progress, you need to wait for some time."

# Characters XML 1.0 cannot carry at all, even escaped; a message must never make the body
# unparseable, so they become U+FFFD.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: object) -> str:
    text = _NOT_XML_CHAR.sub("\ufffd", str(value))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # A raw CR would be read back as LF; the character reference keeps it exact.
    return text.replace("\r", "&#13;")


def _response(fields: list[tuple[str, object]]) -> str:
    """Serialise tags in the seed's layout; values are escaped, tags come only from TAGS."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<image_process_response>"]
    for tag, value in fields:
        assert tag in TAGS, tag
        lines.append(f"    <{tag}>{_text(value)}</{tag}>")
    lines.append("</image_process_response>")
    return "\n".join(lines) + "\n"


def photo_status(err: Err) -> tuple[str, int]:
    """The (status, err_code) this dialect renders for a member: WrongID for a missing task."""
    status, code = err.photo
    return ("WrongID" if err in _WRONG_ID else status), code


def render_error(request_id: str | None, exc: FaceplaneError) -> tuple[int, str]:
    """Return (HTTP status, XML body) for an error in the Pho.to dialect."""
    status, code = photo_status(exc.err)
    fields: list[tuple[str, object]] = [] if request_id is None else [("request_id", request_id)]
    fields += [("status", status), ("description", exc.message), ("err_code", code)]
    return HTTP_STATUS, _response(fields)


def render_added(request_id: str) -> str:
    """The answer to an accepted add-task request: status OK, err_code 0."""
    return _response(
        [
            ("request_id", request_id),
            ("status", "OK"),
            ("description", ADDED_DESCRIPTION),
            ("err_code", 0),
        ]
    )


def render_task(task: dict[str, Any]) -> str:
    """The getresult answer for a native task rendering (``services.tasks.render_task``)."""
    request_id = str(task["request_id"])
    status = task["status"]
    if status == "succeeded":
        fields: list[tuple[str, object]] = [
            ("request_id", request_id),
            ("status", "OK"),
            ("description", DONE_DESCRIPTION),
            ("err_code", 0),
        ]
        fields += [(tag, task[tag]) for tag in URL_TAGS if task.get(tag)]
        return _response(fields)
    if status in ("queued", "running"):
        return _response(
            [
                ("request_id", request_id),
                ("status", "InProgress"),
                ("description", IN_PROGRESS_DESCRIPTION),
                ("err_code", 0),
            ]
        )
    if status == "failed":
        error = task.get("error") or {}
        # A code this server no longer knows is still a failure; INTERNAL is the honest floor.
        err = Err.__members__.get(str(error.get("code")), Err.INTERNAL)
        message = error.get("message") or err.message
        return render_error(request_id, FaceplaneError(err, str(message)))[1]
    if status == "canceled":
        # Pho.to has no cancel; TASK_REVOKED is the catalogue's member for a canceled task.
        return render_error(request_id, FaceplaneError(Err.TASK_REVOKED))[1]
    raise ValueError(f"unknown task status {status!r}")


# ---- image_process_call ---------------------------------------------------------------------


@dataclass(frozen=True)
class PhotoImage:
    """One ``<image_url>``: the URL, its ``order`` and its ``rect`` attribute, if given."""

    url: str
    order: int | None = None
    rect: str | None = None  # seed: err -1001 "Bad points or rectangle in the 'rect' attribute"


@dataclass(frozen=True)
class PhotoCall:
    """A parsed ``<image_process_call>``; unknown simple tags are kept in ``extra``."""

    images: list[PhotoImage]
    methods: list[tuple[str, dict[str, str]]]
    result_format: str | None = None
    result_size: int | None = None
    result_quality: int | None = None
    thumb1_size: int | None = None
    thumb2_size: int | None = None
    template_watermark: bool | None = None
    crop_portrait: bool | None = None
    abort_methods_chain_on_error: bool | None = None
    lang: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def image_url(self) -> str:
        """The first image's URL (by ``order``)."""
        return self.images[0].url

    @property
    def template_name(self) -> str | None:
        """The first method's ``template_name`` parameter (Pho.to's collage templates)."""
        for _, params in self.methods:
            if "template_name" in params:
                return params["template_name"]
        return None


_INT_TAGS = ("result_size", "result_quality", "thumb1_size", "thumb2_size")
_BOOL_TAGS = ("template_watermark", "crop_portrait", "abort_methods_chain_on_error")
_STR_TAGS = ("result_format", "lang")
_BOOLS = {"1": True, "true": True, "0": False, "false": False}


def _bad(err: Err, message: str, **details: object) -> FaceplaneError:
    return FaceplaneError(err, message, **details)


def _parse_xml(data: bytes) -> Element:
    # No DTD at all: it is where entity bombs and external entities live, and Pho.to calls
    # never need one. Every parser failure becomes INVALID_ARGUMENT (Pho.to -3).
    try:
        root: Element = defusedxml.ElementTree.fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except defusedxml.DTDForbidden:
        raise _bad(Err.INVALID_ARGUMENT, "A DTD is not allowed.", reason="dtd") from None
    except defusedxml.EntitiesForbidden:
        raise _bad(Err.INVALID_ARGUMENT, "Entities are not allowed.", reason="entity") from None
    except defusedxml.ExternalReferenceForbidden:
        raise _bad(
            Err.INVALID_ARGUMENT, "External references are not allowed.", reason="external"
        ) from None
    except defusedxml.DefusedXmlException:
        raise _bad(
            Err.INVALID_ARGUMENT, "The XML uses a forbidden feature.", reason="xml"
        ) from None
    except ParseError as exc:
        line, column = exc.position
        raise _bad(
            Err.INVALID_ARGUMENT,
            "The data is not well-formed XML.",
            reason="malformed",
            line=line,
            column=column,
        ) from None
    except (ValueError, LookupError):  # e.g. an unknown encoding in the XML declaration
        raise _bad(Err.INVALID_ARGUMENT, "The XML cannot be decoded.", reason="encoding") from None
    return root


def _strip(node: Element) -> str:
    return (node.text or "").strip()


def _order(node: Element, path: str) -> int | None:
    raw = node.get("order")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise _bad(
            Err.INVALID_TYPE, f"The order of <{path}> must be an integer.", field=path
        ) from None


def _sorted_by_order(nodes: list[Element], path: str) -> list[Element]:
    # Pho.to numbers images and methods with order="n"; unnumbered ones keep document order.
    keyed = [(_order(n, path), i, n) for i, n in enumerate(nodes)]
    keyed.sort(key=lambda k: (k[0] is None, k[0] or 0, k[1]))
    return [n for _, _, n in keyed]


def parse_params(text: str, path: str = "params") -> dict[str, str]:
    """Parse Pho.to method params ``key=value;key=value`` (a trailing ``;`` is allowed)."""
    params: dict[str, str] = {}
    for raw in text.split(";"):
        item = raw.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise _bad(
                Err.INVALID_ARGUMENT, f"<{path}> item {item!r} is not key=value.", field=path
            )
        if key in params:
            raise _bad(Err.INVALID_ARGUMENT, f"<{path}> repeats {key!r}.", field=path, key=key)
        params[key] = value.strip()
    return params


def _methods(root: Element) -> list[tuple[str, dict[str, str]]]:
    lists = root.findall("methods_list")
    if len(lists) > 1:
        raise _bad(Err.INVALID_ARGUMENT, "<methods_list> is given twice.", field="methods_list")
    nodes = lists[0].findall("method") if lists else []
    if not nodes:
        raise _bad(Err.MISSING_ARGUMENT, "No <method> was given.", field="methods_list")
    methods = []
    for node in _sorted_by_order(nodes, "method"):
        name = node.findtext("name", "").strip()
        if not name:
            raise _bad(Err.MISSING_ARGUMENT, "A <method> has no <name>.", field="method/name")
        params = parse_params(node.findtext("params", ""), f"method {name}/params")
        methods.append((name, params))
    return methods


def _images(root: Element) -> list[PhotoImage]:
    nodes = root.findall("image_url")
    images = [
        PhotoImage(url=_strip(n), order=_order(n, "image_url"), rect=n.get("rect"))
        for n in _sorted_by_order(nodes, "image_url")
    ]
    if not images or not all(image.url for image in images):
        raise _bad(Err.MISSING_ARGUMENT, "No <image_url> was given.", field="image_url")
    return images


def _scalar(root: Element, tag: str) -> str | None:
    nodes = root.findall(tag)
    if len(nodes) > 1:
        raise _bad(Err.INVALID_ARGUMENT, f"<{tag}> is given twice.", field=tag)
    return _strip(nodes[0]) if nodes else None


def _int(root: Element, tag: str) -> int | None:
    raw = _scalar(root, tag)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise _bad(Err.INVALID_TYPE, f"<{tag}> must be an integer.", field=tag) from None
    if value <= 0:
        raise _bad(Err.INVALID_ARGUMENT, f"<{tag}> must be positive.", field=tag, value=value)
    return value


def _bool(root: Element, tag: str) -> bool | None:
    raw = _scalar(root, tag)
    if raw is None:
        return None
    if raw.lower() not in _BOOLS:
        raise _bad(Err.INVALID_TYPE, f"<{tag}> must be true, false, 1 or 0.", field=tag)
    return _BOOLS[raw.lower()]


def parse_image_process_call(xml: bytes | str, max_bytes: int = 64_000) -> PhotoCall:
    """Parse Pho.to's add-task DATA safely; any failure is a FaceplaneError, never another."""
    try:
        data = xml.encode("utf-8") if isinstance(xml, str) else bytes(xml)
    except UnicodeEncodeError:  # a lone surrogate: no XML can carry it
        raise _bad(Err.INVALID_ARGUMENT, "The XML cannot be encoded.", reason="encoding") from None
    if len(data) > max_bytes:
        raise _bad(
            Err.PAYLOAD_TOO_LARGE,
            f"The image_process_call is {len(data)} bytes; the limit is {max_bytes}.",
            size=len(data),
            max_bytes=max_bytes,
        )
    root = _parse_xml(data)
    if root.tag != "image_process_call":
        raise _bad(
            Err.INVALID_ARGUMENT,
            "The root element must be <image_process_call>.",
            reason="root",
            root=str(root.tag)[:100],
        )
    known = {"image_url", "methods_list", *_INT_TAGS, *_BOOL_TAGS, *_STR_TAGS}
    extra = {str(n.tag): _strip(n) for n in root if n.tag not in known}
    return PhotoCall(
        images=_images(root),
        methods=_methods(root),
        result_format=_scalar(root, "result_format") or None,
        result_size=_int(root, "result_size"),
        result_quality=_int(root, "result_quality"),
        thumb1_size=_int(root, "thumb1_size"),
        thumb2_size=_int(root, "thumb2_size"),
        template_watermark=_bool(root, "template_watermark"),
        crop_portrait=_bool(root, "crop_portrait"),
        abort_methods_chain_on_error=_bool(root, "abort_methods_chain_on_error"),
        lang=_scalar(root, "lang") or None,
        extra=extra,
    )

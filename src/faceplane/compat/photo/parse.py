"""Reading Pho.to requests (seed 000): the add-task ``DATA`` XML and the methods it names.

``parse_image_process_call`` turns the ``<image_process_call>`` into a :class:`PhotoCall`
safely (no DTD, entities or external references; any failure is a ``FaceplaneError``), and
``task_spec`` maps the call's first method onto the Faceplane operation a task runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree

from faceplane.errors import Err, FaceplaneError
from faceplane.services.images import ImageSource
from faceplane.services.tasks import TaskSpec

__all__ = [
    "METHODS",
    "PARAMS",
    "PhotoCall",
    "PhotoImage",
    "parse_image_process_call",
    "parse_params",
    "require_credentials",
    "task_spec",
]

# Pho.to method names → the Faceplane operation a task runs for them.
METHODS: dict[str, str] = {
    "face_detection": "detect",
    "detect_faces": "detect",
    "face_crop": "crop",
    "crop_face": "crop",
    "crop": "crop",
    "thumbnail": "crop",
}
# Params understood per operation, with their Faceplane option names.
PARAMS: dict[str, dict[str, str]] = {
    "detect": {"max_faces": "max_faces", "min_face_size": "min_face_size"},
    "crop": {"margin": "margin", "size": "size", "all_faces": "all_faces"},
}


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


def require_credentials(app_id: str, key: str, sign_data: str, data: str) -> None:
    """SecurityError 614 unless APP_ID, DATA and one of KEY or SIGN_DATA are all given."""
    if not app_id or not data or not (key or sign_data):
        raise FaceplaneError(
            Err.PARAMETERS_EMPTY,
            "Error in POST parameters: one or more parameters (DATA, SIGN_DATA or APP_ID) are "
            "empty.",
        )


def task_spec(call: PhotoCall) -> TaskSpec:
    """The task the call's first method runs, or the seed's error for what cannot run."""
    if call.template_name:
        raise FaceplaneError(
            Err.TEMPLATE_NOT_FOUND,
            f"Template with the specified name is not found: {call.template_name!r}.",
            template_name=call.template_name,
        )
    name, params = call.methods[0]
    operation = METHODS.get(name)
    if operation is None:
        raise FaceplaneError(
            Err.INVALID_ARGUMENT,
            f"Wrong method or parameter name: unknown method {name!r}; known: "
            + ", ".join(sorted(METHODS))
            + ".",
            method=name,
        )
    options: dict[str, Any] = {}
    for key, value in params.items():
        option = PARAMS[operation].get(key)
        if option is None:
            raise FaceplaneError(
                Err.INVALID_ARGUMENT, f"Wrong method or parameter name: {name} has no {key!r}."
            )
        options[option] = value
    if operation == "crop" and call.result_size and "size" not in options:
        options["size"] = call.result_size
    image = call.images[0]
    if image.rect:
        raise FaceplaneError(
            Err.BAD_FACE_RECT, "A 'rect' on <image_url> is not supported by this server."
        )
    # Errors about the image name the tag the client filled in.
    images = {"image": ImageSource("image_url", url=image.url)}
    return TaskSpec(operation, images, options, origin="photo")

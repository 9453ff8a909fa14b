"""Request parsing shared by routes: images and options from multipart, JSON or a raw body."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile
from starlette.requests import Request

from faceplane.api.handlers import JSON_STATE
from faceplane.errors import Err, FaceplaneError
from faceplane.json_input import parse_json
from faceplane.services.images import ImageSource


class ImageRef(BaseModel):
    """An image inside a JSON body: exactly one of `base64` or `url`."""

    model_config = ConfigDict(extra="forbid")
    base64: str | None = Field(None, description="The file's bytes, base64 (a data: URL is fine).")
    url: str | None = Field(None, description="An http(s) URL to download the image from.")


class ParsedBody:
    """A request body split into images (by field name) and plain option values."""

    def __init__(self) -> None:
        self.images: dict[str, ImageSource] = {}
        self.values: dict[str, Any] = {}

    def image(self, name: str) -> ImageSource:
        """The image sent as `name`, or an empty source that fails with MISSING_ARGUMENT."""
        return self.images.get(name, ImageSource(field=name))


def ref_to_source(name: str, value: Any) -> ImageSource:
    """An image given in JSON: {base64} or {url}, or a bare string (URL or base64)."""
    if isinstance(value, str):
        # A bare string: a URL when it looks like one, else base64.
        if value.startswith(("http://", "https://")):
            return ImageSource(field=name, url=value)
        return ImageSource(field=name, base64=value)
    ref = ImageRef.model_validate(value)
    if (ref.base64 is None) == (ref.url is None):
        raise FaceplaneError(
            Err.INVALID_ARGUMENT, f"`{name}` needs exactly one of `base64` or `url`.", field=name
        )
    return ImageSource(field=name, base64=ref.base64, url=ref.url)


async def read_json(request: Request) -> Any:
    """The JSON body, through the one bounded parser (`faceplane.json_input.parse_json`): parsed
    already by the middleware for a JSON content type, else here."""
    state = request.scope.get("state", {})
    if JSON_STATE in state:
        return state[JSON_STATE]
    return parse_json(await request.body())


async def parse_body(request: Request, image_fields: tuple[str, ...]) -> ParsedBody:
    """Read multipart, JSON or a raw image body; query parameters supply defaults."""
    parsed = ParsedBody()
    parsed.values.update(request.query_params)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data" or ctype == "application/x-www-form-urlencoded":
        form = await request.form()
        for key, value in form.multi_items():
            base = key.removesuffix("_url").removesuffix("_base64")
            if isinstance(value, UploadFile):
                parsed.images[key] = ImageSource(field=key, data=await value.read())
                continue
            if "\x00" in value:  # the text of a multipart field; PostgreSQL stores no NUL
                raise FaceplaneError(
                    Err.INVALID_ARGUMENT, f"`{key}` holds a NUL character.", field=key, reason="nul"
                )
            if base in image_fields and key.endswith("_url"):
                parsed.images[base] = ImageSource(field=base, url=value)
            elif base in image_fields and key.endswith("_base64"):
                parsed.images[base] = ImageSource(field=base, base64=value)
            else:
                parsed.values[key] = value
    elif ctype in ("application/json", ""):
        if ctype == "" and not await request.body():
            return parsed
        body = await read_json(request)
        if not isinstance(body, dict):
            raise FaceplaneError(Err.INVALID_ARGUMENT, "The JSON body must be an object.")
        for key, value in body.items():
            if key in image_fields and value is not None:
                parsed.images[key] = ref_to_source(key, value)
            else:
                parsed.values[key] = value
    elif ctype.startswith("image/") or ctype == "application/octet-stream":
        if not image_fields:  # a raw image body has nowhere to go on this route
            raise FaceplaneError(
                Err.INVALID_ARGUMENT,
                f"This route takes no image: {ctype!r} is not a body it reads.",
                content_type=ctype,
            )
        parsed.images[image_fields[0]] = ImageSource(
            field=image_fields[0], data=await request.body()
        )
    else:
        raise FaceplaneError(
            Err.IMAGE_FORMAT_UNSUPPORTED if ctype.startswith("video/") else Err.INVALID_ARGUMENT,
            f"Unsupported content type {ctype!r}: send multipart/form-data or application/json.",
            content_type=ctype,
        )
    return parsed


def image_body_schema(
    image_fields: tuple[str, ...], params: type[BaseModel], raw: bool = False
) -> dict[str, Any]:
    """OpenAPI requestBody for a route taking images as multipart, JSON (or raw bytes)."""
    props = dict(params.model_json_schema().get("properties", {}))
    ref = ImageRef.model_json_schema()
    ref.pop("title", None)
    json_props = {**props, **{f: ref for f in image_fields}}
    form_props = {**props, **{f: {"type": "string", "format": "binary"} for f in image_fields}}
    for f in image_fields:
        form_props[f + "_url"] = {"type": "string", "description": f"URL of `{f}`."}
    content: dict[str, Any] = {
        "multipart/form-data": {"schema": {"type": "object", "properties": form_props}},
        "application/json": {"schema": {"type": "object", "properties": json_props}},
    }
    if raw:
        content["image/*"] = {"schema": {"type": "string", "format": "binary"}}
    return {"requestBody": {"required": True, "content": content}}

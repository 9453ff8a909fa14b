"""The answer checker of the fuzz runs (tests/dialect_errors.py) accepts what the dialect
renderers make and refuses server errors and foreign shapes: a fuzz with a blind oracle would
pass whatever the server answered."""

from __future__ import annotations

import json

from dialect_errors import answer_problem
from faceplane.api import render as native
from faceplane.compat.ailab import render as ailab
from faceplane.compat.linkface import render as linkface
from faceplane.compat.oz import render as oz
from faceplane.compat.photo import render as photo
from faceplane.errors import Err, FaceplaneError

RID = "0123456789abcdef0123456789abcdef"
HEADERS = {"x-request-id": RID}
NOT_FOUND = FaceplaneError(Err.COLLECTION_NOT_FOUND)


def test_the_renderers_own_errors_pass() -> None:
    status, body = native.render_error(RID, NOT_FOUND)
    assert answer_problem("/v1/collections/x", status, HEADERS, json.dumps(body)) is None
    status, body = ailab.render_error(RID, NOT_FOUND)
    assert answer_problem("/compat/ailab/api/x", status, HEADERS, json.dumps(body)) is None
    status, body = linkface.render_error(RID, NOT_FOUND)
    assert answer_problem("/compat/linkface/x", status, HEADERS, json.dumps(body)) is None
    status, body = oz.render_error(NOT_FOUND)
    assert answer_problem("/compat/oz/api/x", status, HEADERS, json.dumps(body)) is None
    status, xml = photo.render_error(RID, NOT_FOUND)
    assert answer_problem("/compat/photo/getresult", status, HEADERS, xml) is None
    # A 501 NOT_IMPLEMENTED is an answer, not a crash.
    status, body = native.render_error(RID, FaceplaneError(Err.NOT_IMPLEMENTED))
    assert answer_problem("/v1/x", status, HEADERS, json.dumps(body)) is None


def test_server_errors_fail_in_every_dialect() -> None:
    internal = FaceplaneError(Err.INTERNAL)
    status, body = native.render_error(RID, internal)
    assert answer_problem("/v1/detect", status, HEADERS, json.dumps(body)) == "HTTP 500"
    status, body = ailab.render_error(RID, internal)
    assert answer_problem("/compat/ailab/api/x", status, HEADERS, json.dumps(body))
    # Pho.to answers everything as HTTP 200: INTERNAL is found in the XML.
    status, xml = photo.render_error(RID, internal)
    assert "INTERNAL" in (answer_problem("/compat/photo/addtask", status, HEADERS, xml) or "")


def test_foreign_shapes_and_missing_request_ids_fail() -> None:
    status, body = native.render_error(RID, NOT_FOUND)
    text = json.dumps(body)
    assert answer_problem("/v1/x", status, {}, text) == "no X-Request-Id header"
    assert answer_problem("/v1/x", status, {"x-request-id": "other"}, text)
    assert answer_problem("/compat/oz/api/x", status, HEADERS, text)  # native shape on Oz
    assert answer_problem("/compat/linkface/x", status, HEADERS, text)
    assert answer_problem("/v1/x", status, HEADERS, '{"detail": "Not Found"}')  # FastAPI's own
    wrong = {**body, "error": {**body["error"], "code": "NO_SUCH_CODE"}}
    assert "catalogue" in (answer_problem("/v1/x", status, HEADERS, json.dumps(wrong)) or "")
    assert answer_problem("/v1/x", 400, HEADERS, text)  # the code's status is 404
    assert answer_problem("/compat/photo/getresult", 200, HEADERS, "<html/>")

"""Framework failures are catalogue errors with a request id, never bare HTML or tracebacks."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from faceplane.settings import Settings
from support import authed_client


def test_unknown_route_is_route_not_found(client: TestClient) -> None:
    resp = client.get("/v1/nothing-here")
    assert resp.status_code == 404
    body = resp.json()
    assert body["error"]["code"] == "ROUTE_NOT_FOUND"
    assert body["request_id"] == resp.headers["x-request-id"]


def test_wrong_method_is_method_not_allowed(client: TestClient) -> None:
    resp = client.get("/v1/detect")
    assert resp.status_code == 405
    assert resp.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_body_over_limit_is_payload_too_large(tmp_path: Path) -> None:
    with authed_client(Settings(data_dir=tmp_path, max_body_mb=0.01)) as c:
        resp = c.post("/v1/detect", files={"image": ("big.jpg", b"\xff" * 50_000)})
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_every_success_carries_a_request_id(client: TestClient) -> None:
    resp = client.get("/v1/health")
    assert resp.status_code == 200
    assert resp.json()["request_id"] == resp.headers["x-request-id"]


def test_unexpected_exception_is_internal_without_traceback(client: TestClient) -> None:
    app = client.app

    @app.get("/v1/_boom")  # type: ignore[attr-defined]
    async def boom() -> None:
        raise RuntimeError("secret internals")

    resp = client.get("/v1/_boom")
    assert resp.status_code == 500
    body = resp.json()
    assert body["error"]["code"] == "INTERNAL"
    assert "secret" not in resp.text


def test_openapi_documents_detect_and_compare(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/v1/detect", "/v1/compare", "/v1/health", "/v1/models"):
        assert path in spec["paths"]
    body = spec["paths"]["/v1/detect"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(body)

"""Idempotency keys, called directly: the canonical request hash, and which submissions are
repeats (not billed again) or conflicts (TASK_CONFLICT) before anything is charged."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faceplane.errors import FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services.idempotency import find_by_key, mark_repeats, request_hash
from faceplane.services.images import ImageSource
from faceplane.services.tasks import TaskSpec, submit_task
from faceplane.settings import Settings

COMPANY = "acme"


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime.open(Settings(data_dir=tmp_path, workers=0))
    yield runtime
    runtime.close()


def detect(data: bytes, key: str | None = None, **options: Any) -> TaskSpec:
    return TaskSpec("detect", {"image": ImageSource("image", data=data)}, options, None, None, key)


def test_the_request_hash_is_over_the_image_bytes_and_canonical_options(
    rt: Runtime, astronaut: bytes
) -> None:
    raw = detect(astronaut, "k", max_faces=2, landmarks=5)
    encoded = TaskSpec(
        "detect",
        {"image": ImageSource("image", base64=base64.b64encode(astronaut).decode())},
        {"landmarks": 5, "max_faces": 2},
        idempotency_key="k",
    )
    assert request_hash(rt, raw) == request_hash(rt, encoded)
    by_url = TaskSpec("detect", {"image": ImageSource("image", url="https://h.test/a.jpg")}, {})
    others = [
        detect(astronaut, "k", max_faces=3, landmarks=5),
        detect(astronaut[:-10], "k", max_faces=2, landmarks=5),
        TaskSpec("crop", raw.images, raw.options),
        TaskSpec("detect", raw.images, raw.options, webhook_url="https://h.test/x"),
        TaskSpec(
            "detect", raw.images, raw.options, webhook_url="https://h.test/x", webhook_secret="s"
        ),
        by_url,
    ]
    hashes = {request_hash(rt, s) for s in [raw, *others]}
    assert len(hashes) == 1 + len(others)
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in hashes)


def test_a_hash_taken_before_defaults_were_filled_in_is_kept(rt: Runtime, astronaut: bytes) -> None:
    spec = detect(astronaut, "k")
    digest = request_hash(rt, spec)
    with_default = TaskSpec(
        "detect", spec.images, {}, "https://app.test/hook", "secret", "k", request_hash=digest
    )
    assert request_hash(rt, with_default) == digest


def test_mark_repeats_names_the_submissions_that_must_not_be_billed_again(
    rt: Runtime, astronaut: bytes
) -> None:
    first, _ = submit_task(rt, COMPANY, detect(astronaut, "a"))
    specs = [detect(astronaut, "a"), detect(astronaut, "b"), detect(astronaut, "b"), detect(b"x")]
    hashed, repeats = mark_repeats(rt, COMPANY, specs, batch=True)
    assert repeats == [True, False, True, False]
    assert [s.request_hash is not None for s in hashed] == [True, True, True, False]
    assert find_by_key(rt, COMPANY, "a")["id"] == first["request_id"]  # type: ignore[index]
    assert find_by_key(rt, "globex", "a") is None


def test_mark_repeats_refuses_a_key_reused_for_another_request(
    rt: Runtime, astronaut: bytes
) -> None:
    submit_task(rt, COMPANY, detect(astronaut, "a"))
    with pytest.raises(FaceplaneError) as exc:
        mark_repeats(rt, COMPANY, [detect(astronaut, "z"), detect(astronaut, "a", k=1)], True)
    assert exc.value.err.name == "TASK_CONFLICT" and exc.value.details["item"] == 1
    with pytest.raises(FaceplaneError) as exc:
        mark_repeats(rt, COMPANY, [detect(astronaut, "a", k=1)])
    assert "item" not in exc.value.details  # a single task has no item index


def test_a_malformed_base64_image_is_refused_while_hashing(rt: Runtime) -> None:
    bad = TaskSpec("detect", {"image": ImageSource("image", base64="***")}, {}, None, None, "k")
    with pytest.raises(FaceplaneError) as exc:
        request_hash(rt, bad)
    assert exc.value.err.name == "INVALID_ARGUMENT" and exc.value.details["field"] == "image"

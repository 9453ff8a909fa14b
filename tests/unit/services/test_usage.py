"""Billed usage, called directly: credits are spent before the work, refunded when it is
refused, and a task an idempotency key deduplicated is never billed twice."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services import accounts
from faceplane.services.accounts import Principal
from faceplane.services.images import ImageSource
from faceplane.services.tasks import TaskSpec
from faceplane.services.usage import billed, refund, run_billed, spend, submit_billed
from faceplane.settings import Settings
from faceplane.store.db import counters


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime.open(Settings(data_dir=tmp_path, workers=0))
    yield runtime
    runtime.close()


def app_caller(rt: Runtime, quota: int | None) -> Principal:
    """The principal of a real app key with `quota` credits per period."""
    company = accounts.create_company(rt, "acme")
    _, key = accounts.create_app(rt, company["id"], "limited", 1000, quota=quota)
    return accounts.authenticate_key(rt, key)


def spent(rt: Runtime, caller: Principal) -> int:
    """Credits used this period, read from the counters table."""
    with rt.store.db.connect() as conn:
        values = conn.execute(
            select(counters.c.value).where(counters.c.key.like(f"quota:{caller.limit_key}:%"))
        ).scalars()
        return sum(values)


def detect(data: bytes, key: str | None = None) -> TaskSpec:
    return TaskSpec("detect", {"image": ImageSource("image", data=data)}, {}, idempotency_key=key)


def grey_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (120, 120), (90, 100, 110)).save(buf, format="PNG")
    return buf.getvalue()


def test_a_batch_submitted_twice_with_the_same_keys_costs_nothing_the_second_time(
    rt: Runtime, astronaut: bytes
) -> None:
    caller = app_caller(rt, quota=3)
    specs = [detect(astronaut, "a"), detect(astronaut, "b"), detect(astronaut, "c")]
    first, created, batch_id = asyncio.run(submit_billed(rt, caller, specs, batch=True))
    assert created == [True, True, True] and batch_id and spent(rt, caller) == 3
    # The quota is used up: a repeat that were billed again would be QUOTA_EXCEEDED.
    again, created_again, _ = asyncio.run(submit_billed(rt, caller, specs, batch=True))
    assert created_again == [False, False, False]
    assert [t["request_id"] for t in again] == [t["request_id"] for t in first]
    assert spent(rt, caller) == 3
    with pytest.raises(FaceplaneError) as exc:
        asyncio.run(submit_billed(rt, caller, [detect(astronaut, "d")]))
    assert exc.value.err.name == "QUOTA_EXCEEDED" and spent(rt, caller) == 3


def test_a_batch_with_new_and_repeated_items_pays_for_the_new_ones(
    rt: Runtime, astronaut: bytes
) -> None:
    caller = app_caller(rt, quota=10)
    asyncio.run(submit_billed(rt, caller, [detect(astronaut, "a")], batch=True))
    mixed = [detect(astronaut, "a"), detect(astronaut, "b")]
    _, created, _ = asyncio.run(submit_billed(rt, caller, mixed, batch=True))
    assert created == [False, True] and spent(rt, caller) == 2


def test_a_task_submitted_twice_with_one_key_costs_nothing_the_second_time(
    rt: Runtime, astronaut: bytes
) -> None:
    caller = app_caller(rt, quota=1)
    first, created, batch_id = asyncio.run(submit_billed(rt, caller, [detect(astronaut, "k")]))
    assert created == [True] and batch_id is None and spent(rt, caller) == 1
    again, created_again, _ = asyncio.run(submit_billed(rt, caller, [detect(astronaut, "k")]))
    assert created_again == [False] and again[0]["request_id"] == first[0]["request_id"]
    assert spent(rt, caller) == 1


def test_a_refused_submission_is_refunded(rt: Runtime, astronaut: bytes) -> None:
    caller = app_caller(rt, quota=5)
    asyncio.run(submit_billed(rt, caller, [detect(astronaut, "k")]))
    for bad in (
        [detect(grey_png(), "k")],  # TASK_CONFLICT: the key names another request
        [TaskSpec("detect", {}, {})],  # MISSING_ARGUMENT
        [TaskSpec("teleport", {}, {})],  # INVALID_ARGUMENT
    ):
        with pytest.raises(FaceplaneError):
            asyncio.run(submit_billed(rt, caller, bad))
    assert spent(rt, caller) == 1


def test_run_billed_charges_a_success_and_refunds_a_refusal(rt: Runtime, astronaut: bytes) -> None:
    caller = app_caller(rt, quota=10)
    body = asyncio.run(
        run_billed(rt, caller, "detect", {"image": ImageSource("image", data=astronaut)}, {})
    )
    assert body["faces"] and spent(rt, caller) == 1
    with pytest.raises(FaceplaneError) as exc:
        asyncio.run(
            run_billed(rt, caller, "detect", {"image": ImageSource("image", data=b"x")}, {})
        )
    assert exc.value.err.name == "IMAGE_CORRUPT" and spent(rt, caller) == 1

    def stricter(result: dict) -> None:  # a vendor's contract refusing a valid result
        raise FaceplaneError(Err.FACE_NOT_FOUND, "refused", faces=len(result["faces"]))

    image = {"image": ImageSource("image", data=astronaut)}
    with pytest.raises(FaceplaneError) as exc:
        asyncio.run(run_billed(rt, caller, "detect", image, {}, check=stricter))
    assert exc.value.details["faces"] >= 1 and spent(rt, caller) == 1
    with pytest.raises(FaceplaneError):  # compare (2 credits) without its second image
        asyncio.run(run_billed(rt, caller, "compare", {"image1": image["image"]}, {}))
    assert spent(rt, caller) == 1


def test_spend_is_all_or_nothing_and_refund_gives_back(rt: Runtime) -> None:
    caller = app_caller(rt, quota=3)
    with pytest.raises(FaceplaneError) as exc:
        spend(rt, caller, {"detect": 2, "compare": 1})  # 2 + 2 credits > 3
    assert exc.value.err.name == "QUOTA_EXCEEDED" and spent(rt, caller) == 0
    spend(rt, caller, {"detect": 3})
    refund(rt, caller, {"detect": 2})
    assert spent(rt, caller) == 1


def test_billed_refunds_when_the_work_raises_a_catalogue_error(rt: Runtime) -> None:
    caller = app_caller(rt, quota=3)

    async def fails() -> None:
        raise FaceplaneError(Err.FACE_NOT_FOUND, "none")

    with pytest.raises(FaceplaneError):
        asyncio.run(billed(rt, caller, {"detect": 1}, fails))
    assert spent(rt, caller) == 0


def test_an_unlimited_caller_is_never_counted(rt: Runtime, astronaut: bytes) -> None:
    caller = app_caller(rt, quota=None)
    asyncio.run(submit_billed(rt, caller, [detect(astronaut)]))
    assert spent(rt, caller) == 0

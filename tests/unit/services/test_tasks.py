"""The task service, called directly on a real SQLite database: submit (idempotent, hashed),
batches, cancel, get, list (cursor, since), capacity and rendering."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text, update

from databases import throwaway_postgres
from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services.idempotency import request_hash
from faceplane.services.images import ImageSource
from faceplane.services.tasks import (
    TaskSpec,
    cancel_task,
    check_capacity,
    get_task,
    list_tasks,
    load_task,
    submit_batch,
    submit_task,
)
from faceplane.settings import Settings
from faceplane.store.db import tasks, write_tx
from faceplane.tasks.runner import claim_task, expire_tasks

COMPANY = "acme"


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime.open(
        Settings(data_dir=tmp_path, workers=0, task_max_queue=5, fetch_allow_private=True)
    )
    yield runtime
    runtime.close()


def detect(data: bytes, key: str | None = None, **options: Any) -> TaskSpec:
    return TaskSpec("detect", {"image": ImageSource("image", data=data)}, options, None, None, key)


def set_column(rt: Runtime, task_id: str, **values: Any) -> None:
    with write_tx(rt.store.db) as conn:
        conn.execute(update(tasks).where(tasks.c.id == task_id).values(**values))


def errcode(exc: pytest.ExceptionInfo[FaceplaneError]) -> str:
    return exc.value.err.name


# ---- submit and idempotency ----------------------------------------------------------------


def test_a_submitted_task_is_queued_with_its_inputs_kept_as_blobs(
    rt: Runtime, astronaut: bytes
) -> None:
    task, created = submit_task(rt, COMPANY, detect(astronaut))
    assert created and task["status"] == "queued" and task["attempts"] == 0
    row = load_task(rt, COMPANY, task["request_id"])
    assert row["request_hash"] is None  # no key: nothing to compare, nothing kept
    blob = row["input_json"]
    assert "blob" in blob and astronaut == rt.store.blobs.get(
        f"tasks/{task['request_id']}/input/image"
    )


def test_the_same_request_under_one_key_is_the_same_task(rt: Runtime, astronaut: bytes) -> None:
    first, created = submit_task(rt, COMPANY, detect(astronaut, "k1"))
    again, created_again = submit_task(rt, COMPANY, detect(astronaut, "k1"))
    assert created and not created_again and again["request_id"] == first["request_id"]
    row = load_task(rt, COMPANY, first["request_id"])
    assert row["request_hash"] == request_hash(rt, detect(astronaut, "k1"))
    # Keys are per company: another company's same key is another task.
    other, created_other = submit_task(rt, "globex", detect(astronaut, "k1"))
    assert created_other and other["request_id"] != first["request_id"]


def test_another_request_under_a_used_key_is_task_conflict(rt: Runtime, astronaut: bytes) -> None:
    first, _ = submit_task(rt, COMPANY, detect(astronaut, "k2"))
    with pytest.raises(FaceplaneError) as exc:
        submit_task(rt, COMPANY, detect(astronaut, "k2", max_faces=1))
    assert errcode(exc) == "TASK_CONFLICT" and exc.value.err.http == 409
    assert exc.value.details == {"idempotency_key": "k2", "request_id": first["request_id"]}


def test_a_task_stored_before_hashes_were_kept_is_matched_by_its_key_alone(
    rt: Runtime, astronaut: bytes
) -> None:
    first, _ = submit_task(rt, COMPANY, detect(astronaut, "old"))
    set_column(rt, first["request_id"], request_hash=None)
    again, created = submit_task(rt, COMPANY, detect(astronaut, "old", max_faces=1))
    assert not created and again["request_id"] == first["request_id"]


def test_a_bad_spec_is_refused_before_anything_is_stored(rt: Runtime, astronaut: bytes) -> None:
    with pytest.raises(FaceplaneError) as exc:
        submit_task(rt, COMPANY, detect(astronaut, max_faces=0))
    assert errcode(exc) == "INVALID_ARGUMENT"
    with pytest.raises(FaceplaneError) as exc:
        submit_task(rt, COMPANY, TaskSpec("detect", {}, {}))
    assert errcode(exc) == "MISSING_ARGUMENT"
    assert list_tasks(rt, COMPANY, None, None, 10, None)["tasks"] == []


# ---- batches and capacity ------------------------------------------------------------------


def test_a_batch_with_a_conflicting_item_queues_nothing(rt: Runtime, astronaut: bytes) -> None:
    submit_task(rt, COMPANY, detect(astronaut, "b1"))
    specs = [detect(astronaut, "b2"), detect(astronaut, "b1", max_faces=1)]
    with pytest.raises(FaceplaneError) as exc:
        submit_batch(rt, COMPANY, specs)
    assert errcode(exc) == "TASK_CONFLICT" and exc.value.details["item"] == 1
    assert len(list_tasks(rt, COMPANY, None, None, 10, None)["tasks"]) == 1


def test_two_items_of_one_batch_with_one_key_must_be_the_same_request(
    rt: Runtime, astronaut: bytes
) -> None:
    with pytest.raises(FaceplaneError) as exc:
        submit_batch(rt, COMPANY, [detect(astronaut, "d"), detect(astronaut, "d", max_faces=1)])
    assert errcode(exc) == "TASK_CONFLICT"
    done, created, _ = submit_batch(rt, COMPANY, [detect(astronaut, "d"), detect(astronaut, "d")])
    assert created == [True, False] and done[0]["request_id"] == done[1]["request_id"]


def test_a_repeated_batch_does_not_count_against_a_full_queue(
    rt: Runtime, astronaut: bytes
) -> None:
    specs = [detect(astronaut, f"q{i}") for i in range(5)]  # task_max_queue=5
    first, created, batch_id = submit_batch(rt, COMPANY, specs)
    assert all(created) and all(t["batch_id"] == batch_id for t in first)
    again, created_again, _ = submit_batch(rt, COMPANY, specs)
    assert not any(created_again)
    assert [t["request_id"] for t in again] == [t["request_id"] for t in first]
    with pytest.raises(FaceplaneError) as exc:
        submit_task(rt, COMPANY, detect(astronaut))
    assert errcode(exc) == "SERVER_BUSY" and exc.value.details["retry_after_s"] > 0
    with pytest.raises(FaceplaneError):
        check_capacity(rt, 1, "globex")  # the whole queue is full: everyone waits


def test_batch_limits(rt: Runtime, astronaut: bytes) -> None:
    with pytest.raises(FaceplaneError) as exc:
        submit_batch(rt, COMPANY, [])
    assert errcode(exc) == "MISSING_ARGUMENT"
    too_many = [detect(astronaut)] * (rt.settings.batch_max_items + 1)
    with pytest.raises(FaceplaneError) as exc:
        submit_batch(rt, COMPANY, too_many)
    assert errcode(exc) == "BATCH_LIMIT_EXCEEDED"


# ---- get, cancel -------------------------------------------------------------------------------


def test_another_companys_task_is_not_found(rt: Runtime, astronaut: bytes) -> None:
    task, _ = submit_task(rt, COMPANY, detect(astronaut))
    with pytest.raises(FaceplaneError) as exc:
        get_task(rt, "globex", task["request_id"])
    assert errcode(exc) == "TASK_NOT_FOUND"
    assert get_task(rt, COMPANY, task["request_id"])["request_id"] == task["request_id"]


def test_cancel_a_queued_task_then_again_and_a_finished_one(rt: Runtime, astronaut: bytes) -> None:
    hooked = TaskSpec(
        "detect", {"image": ImageSource("image", data=astronaut)}, {}, "http://127.0.0.1:9/h"
    )
    task, _ = submit_task(rt, COMPANY, hooked)
    canceled = cancel_task(rt, COMPANY, task["request_id"])
    assert canceled["status"] == "canceled" and canceled["finished_at"]
    # A task canceled before it ran still owes its `task.finished` webhook.
    assert load_task(rt, COMPANY, task["request_id"])["webhook_state"] == "pending"
    with pytest.raises(FaceplaneError) as exc:
        cancel_task(rt, COMPANY, task["request_id"])
    assert errcode(exc) == "TASK_REVOKED"
    done, _ = submit_task(rt, COMPANY, detect(astronaut))
    set_column(rt, done["request_id"], status="succeeded")  # a fixture, not a transition
    with pytest.raises(FaceplaneError) as exc:
        cancel_task(rt, COMPANY, done["request_id"])
    assert errcode(exc) == "TASK_REVOCATION_FAILED" and exc.value.details["status"] == "succeeded"


def test_cancel_asks_a_running_task_to_stop(rt: Runtime, astronaut: bytes) -> None:
    task, _ = submit_task(rt, COMPANY, detect(astronaut))
    assert claim_task(rt.store, task["request_id"], "w1", 60) is not None
    out = cancel_task(rt, COMPANY, task["request_id"])
    assert out["status"] == "running" and out["cancel_requested"] is True


def test_an_expired_task_answers_task_expired(rt: Runtime, astronaut: bytes) -> None:
    task, _ = submit_task(rt, COMPANY, detect(astronaut))
    expire_tasks(rt.store, now=load_task(rt, COMPANY, task["request_id"])["expires_at"] + 1)
    with pytest.raises(FaceplaneError) as exc:
        get_task(rt, COMPANY, task["request_id"])
    assert errcode(exc) == "TASK_EXPIRED" and exc.value.details["expired_at"].endswith("+00:00")


# ---- list: cursor, since, status ---------------------------------------------------------------


def test_list_pages_newest_first_with_an_opaque_cursor(rt: Runtime, astronaut: bytes) -> None:
    ids = [submit_task(rt, COMPANY, detect(astronaut))[0]["request_id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        page = list_tasks(rt, COMPANY, None, None, 2, cursor)
        seen += [t["request_id"] for t in page["tasks"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert ":" not in cursor  # opaque, not the raw sort key
    assert seen == ids[::-1]


def test_list_refuses_a_cursor_it_did_not_make(rt: Runtime) -> None:
    for cursor in ("abc", "1712.5:abc", base64.urlsafe_b64encode(b'["x", "y"]').decode()):
        with pytest.raises(FaceplaneError) as exc:
            list_tasks(rt, COMPANY, None, None, 10, cursor)
        assert errcode(exc) == "INVALID_ARGUMENT" and exc.value.details["field"] == "cursor"


def test_list_since_takes_iso_8601_and_filters_by_status(rt: Runtime, astronaut: bytes) -> None:
    old, _ = submit_task(rt, COMPANY, detect(astronaut))
    set_column(rt, old["request_id"], created_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC).timestamp())
    new, _ = submit_task(rt, COMPANY, detect(astronaut))

    def ids(since: str | None, status: str | None = None) -> set[str]:
        return {t["request_id"] for t in list_tasks(rt, COMPANY, status, since, 10, None)["tasks"]}

    assert ids("2020-01-01T00:00:00Z") == {old["request_id"], new["request_id"]}
    assert ids("2020-01-01T05:00:00+05:00") == {old["request_id"], new["request_id"]}
    assert ids("2020-01-01T05:00:01+05:00") == {new["request_id"]}
    assert ids("2020-01-01T00:00:01") == {new["request_id"]}  # naive = UTC
    assert ids(None, "canceled") == set()
    with pytest.raises(FaceplaneError) as exc:
        ids("last week")
    assert exc.value.details["field"] == "since"


def test_rendered_times_are_iso_8601_utc(rt: Runtime, astronaut: bytes) -> None:
    task, _ = submit_task(rt, COMPANY, detect(astronaut))
    with rt.store.db.connect() as conn:
        created = conn.execute(
            select(tasks.c.created_at).where(tasks.c.id == task["request_id"])
        ).scalar_one()
    assert task["created_at"] == dt.datetime.fromtimestamp(created, dt.UTC).isoformat(
        timespec="milliseconds"
    )
    assert task["started_at"] is None and task["expires_at"].endswith("+00:00")


def test_a_conflict_names_the_key_not_the_bytes(rt: Runtime, astronaut: bytes) -> None:
    submit_task(rt, COMPANY, detect(astronaut, "secret-free"))
    with pytest.raises(FaceplaneError) as exc:
        submit_task(rt, COMPANY, detect(b"other bytes", "secret-free"))
    text = str(exc.value.details) + exc.value.message
    assert hashlib.sha256(astronaut).hexdigest() not in text
    assert exc.value.err == Err.TASK_CONFLICT


# ---- fairness: a company's share of the queue ----------------------------------------------


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[Runtime]:
    """A queue of 5 of which one company may fill 2."""
    settings = Settings(
        data_dir=tmp_path, workers=0, task_max_queue=5, task_max_queue_per_company=2
    )
    runtime = Runtime.open(settings)
    yield runtime
    runtime.close()


def test_a_company_at_its_queue_cap_is_refused_while_another_still_submits(
    shared: Runtime, astronaut: bytes
) -> None:
    first, _ = submit_task(shared, COMPANY, detect(astronaut))
    submit_task(shared, COMPANY, detect(astronaut))
    with pytest.raises(FaceplaneError) as exc:
        submit_task(shared, COMPANY, detect(astronaut))
    assert errcode(exc) == "RATE_LIMIT_EXCEEDED" and exc.value.err.http == 429
    assert exc.value.details["max_queue_per_company"] == 2
    assert exc.value.details["retry_after_s"] > 0
    other, created = submit_task(shared, "globex", detect(astronaut))
    assert created and other["status"] == "queued"
    # A batch that would take a company past its share queues none of its items.
    with pytest.raises(FaceplaneError) as exc:
        submit_batch(shared, "globex", [detect(astronaut)] * 2)
    assert errcode(exc) == "RATE_LIMIT_EXCEEDED"
    assert len(list_tasks(shared, "globex", None, None, 10, None)["tasks"]) == 1
    # A started task leaves the queue: the company may submit again.
    assert claim_task(shared.store, first["request_id"], "w1", 60) is not None
    _, created = submit_task(shared, COMPANY, detect(astronaut))
    assert created


def test_the_company_cap_never_exceeds_the_whole_queue(tmp_path: Path, astronaut: bytes) -> None:
    settings = Settings(
        data_dir=tmp_path, workers=0, task_max_queue=2, task_max_queue_per_company=50
    )
    runtime = Runtime.open(settings)
    try:
        submit_task(runtime, COMPANY, detect(astronaut))
        submit_task(runtime, "globex", detect(astronaut))
        with pytest.raises(FaceplaneError) as exc:
            submit_task(runtime, "initech", detect(astronaut))
        assert errcode(exc) == "SERVER_BUSY" and exc.value.details["max_queue"] == 2
    finally:
        runtime.close()


# ---- origins --------------------------------------------------------------------------------


def test_a_task_records_the_route_family_that_created_it(rt: Runtime, astronaut: bytes) -> None:
    native, _ = submit_task(rt, COMPANY, detect(astronaut))
    photo, _ = submit_task(rt, COMPANY, replace(detect(astronaut), origin="photo"))
    assert load_task(rt, COMPANY, native["request_id"])["origin"] == "native"
    assert load_task(rt, COMPANY, photo["request_id"])["origin"] == "photo"
    with pytest.raises(ValueError, match="origin"):
        submit_task(rt, COMPANY, replace(detect(astronaut), origin="elsewhere"))


# ---- a submission the database refuses leaves nothing behind --------------------------------


def task_blobs(rt: Runtime) -> list[str]:
    """The task folders under the blob root (inputs and results)."""
    root = rt.settings.data_dir / "blobs" / "tasks"
    return sorted(p.name for p in root.iterdir() if any(p.rglob("*"))) if root.exists() else []


def test_values_longer_than_their_columns_are_refused_before_anything_is_stored(
    rt: Runtime, astronaut: bytes
) -> None:
    long_key = detect(astronaut, "k" * 201)
    long_secret = replace(
        detect(astronaut), webhook_url="http://127.0.0.1:9/hook", webhook_secret="s" * 129
    )
    for spec, field in ((long_key, "idempotency_key"), (long_secret, "webhook_secret")):
        with pytest.raises(FaceplaneError) as exc:
            submit_task(rt, COMPANY, spec)
        assert errcode(exc) == "INVALID_ARGUMENT" and exc.value.details["field"] == field
    assert task_blobs(rt) == []


@pytest.fixture
def pg_rt(tmp_path: Path) -> Iterator[tuple[Runtime, str]]:
    """A runtime on a scratch PostgreSQL database whose lock timeout is 1 s."""
    with throwaway_postgres() as url:
        server, name = url.rsplit("/", 1)
        admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"ALTER DATABASE \"{name}\" SET lock_timeout = '1s'"))
        admin.dispose()
        runtime = Runtime.open(Settings(data_dir=tmp_path, database_url=url, workers=0))
        try:
            yield runtime, url
        finally:
            runtime.close()


def test_a_task_insert_that_fails_on_a_locked_table_leaves_no_blob(
    pg_rt: tuple[Runtime, str], astronaut: bytes
) -> None:
    rt, url = pg_rt
    other = create_engine(url)
    try:
        with other.connect() as conn:
            # Another session holds the table past the lock timeout: reads pass, inserts fail.
            conn.execute(text("LOCK TABLE tasks IN EXCLUSIVE MODE"))
            with pytest.raises(FaceplaneError) as exc:
                submit_task(rt, COMPANY, detect(astronaut))
            conn.rollback()
    finally:
        other.dispose()
    assert errcode(exc) == "DATABASE_ERROR"
    assert task_blobs(rt) == []  # the input blob written before the insert is gone
    assert list_tasks(rt, COMPANY, None, None, 10, None)["tasks"] == []
    done, created = submit_task(rt, COMPANY, detect(astronaut))  # and the next one is stored
    assert created and task_blobs(rt) == [done["request_id"]]

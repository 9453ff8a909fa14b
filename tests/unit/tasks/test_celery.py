"""The Celery executor, called directly: its app's settings, the worker's task body (claim,
run, a duplicate message a no-op), publishing to a broker that answers (Redis on 127.0.0.1,
database 15) and to one that does not (no task lost, the outage logged once)."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from faceplane.runtime import Runtime
from faceplane.services.images import ImageSource
from faceplane.services.tasks import TaskSpec, submit_task
from faceplane.settings import Settings
from faceplane.store.db import tasks, write_tx
from faceplane.tasks import celery as fp_celery
from faceplane.tasks.celery import TASK_NAME, CeleryExecutor, make_celery

REDIS_URL = "redis://127.0.0.1:6379/15"  # the test database of tests/api/test_tasks.py
NO_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def settings_of(tmp_path: Path, broker_url: str) -> Settings:
    queue = f"faceplane-unit-{secrets.token_hex(4)}-q"
    return Settings(
        data_dir=tmp_path,
        workers=0,
        executor="celery",
        broker_url=broker_url,
        celery_queue=queue,
        task_lease_s=600,  # with messages waiting, only a task queued this long is republished
    )


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime.open(settings_of(tmp_path, NO_BROKER))
    yield runtime
    runtime.close()


@pytest.fixture
def worker_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, object]]:
    """A fresh per-process worker state (the runtime `_run` opens), closed afterwards."""
    state: dict[str, object] = {}
    monkeypatch.setattr(fp_celery, "_worker_state", state)
    yield state
    opened = state.get("rt")
    if isinstance(opened, Runtime):
        opened.close()


def queued_task(rt: Runtime, data: bytes) -> str:
    spec = TaskSpec("detect", {"image": ImageSource("image", data=data)}, {})
    task, created = submit_task(rt, "company-celery", spec)
    assert created
    return str(task["request_id"])


def status_of(rt: Runtime, task_id: str) -> str:
    with rt.store.db.connect() as conn:
        return str(conn.execute(select(tasks.c.status).where(tasks.c.id == task_id)).scalar())


def make_stale(rt: Runtime, task_id: str) -> None:
    with write_tx(rt.store.db) as conn:
        conn.execute(update(tasks).where(tasks.c.id == task_id).values(updated_at=time.time() - 60))


def test_the_app_acks_late_keeps_no_results_speaks_json_and_uses_the_queue(
    tmp_path: Path,
) -> None:
    settings = settings_of(tmp_path, NO_BROKER)
    app = make_celery(settings)
    conf = app.conf
    assert conf.task_acks_late is True and conf.task_ignore_result is True
    assert conf.worker_prefetch_multiplier == 1
    assert (conf.task_serializer, list(conf.accept_content)) == ("json", ["json"])
    assert conf.task_default_queue == settings.celery_queue
    assert TASK_NAME in app.tasks
    app.close()


def test_a_message_runs_its_queued_task_once_and_a_repeat_does_nothing(
    rt: Runtime, worker_state: dict[str, object], astronaut: bytes
) -> None:
    task_id = queued_task(rt, astronaut)
    assert fp_celery._run(rt.settings, task_id) == "succeeded"
    assert status_of(rt, task_id) == "succeeded"
    assert isinstance(worker_state["rt"], Runtime)  # opened once, by the worker itself
    opened = worker_state["rt"]
    assert fp_celery._run(rt.settings, task_id) is None  # a duplicate delivery
    assert fp_celery._run(rt.settings, secrets.token_hex(16)) is None  # an unknown id
    assert worker_state["rt"] is opened


def test_a_broker_that_does_not_answer_loses_no_task_and_is_logged_once(
    rt: Runtime, astronaut: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    executor = CeleryExecutor(rt.settings)
    task_id = queued_task(rt, astronaut)
    caplog.set_level(logging.INFO, logger="faceplane.tasks")
    executor.notify([task_id])  # logged, not raised: the task is in the table
    assert "could not publish 1 task(s)" in caplog.text
    make_stale(rt, task_id)
    assert executor.backlog() is None
    assert executor.republish_stale(rt.store) == 0
    down = [r for r in caplog.records if "does not answer" in r.getMessage()]
    assert len(down) == 1  # once per outage, not once per tick
    assert status_of(rt, task_id) == "queued"
    executor.stop()


def redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        pytest.skip(f"REDIS NOT TESTED: 127.0.0.1:6379 does not answer ({type(exc).__name__})")


def drop_queue(queue: str) -> None:
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    keys = [*r.scan_iter(match=f"{queue}*"), f"_kombu.binding.{queue}"]
    r.delete(*keys)


def test_published_tasks_wait_in_the_broker_and_a_lost_message_is_sent_again(
    tmp_path: Path, astronaut: bytes
) -> None:
    redis_or_skip()
    settings = settings_of(tmp_path, REDIS_URL)
    runtime = Runtime.open(settings)
    executor = CeleryExecutor(settings)
    try:
        assert executor.backlog() == 0  # an empty queue is no error
        first, second = queued_task(runtime, astronaut), queued_task(runtime, astronaut)
        executor.notify([first, second])
        assert executor.backlog() == 2
        # With messages waiting, a task queued a minute ago is most likely one of them.
        make_stale(runtime, first)
        assert executor.republish_stale(runtime.store) == 0
        drop_queue(settings.celery_queue)  # the messages are lost
        assert executor.backlog() == 0
        make_stale(runtime, first)
        assert executor.republish_stale(runtime.store) == 1  # only the stale one
        assert executor.backlog() == 1
    finally:
        drop_queue(settings.celery_queue)
        executor.stop()
        runtime.close()

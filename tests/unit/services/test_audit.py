"""The audit log service, called directly: entries newest first, paged by an opaque cursor,
filtered by actor and by an ISO 8601 `since`, times rendered in ISO 8601 UTC."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from faceplane.errors import FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services import audit
from faceplane.settings import Settings
from faceplane.store.db import audit_log, write_tx


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime.open(Settings(data_dir=tmp_path, workers=0))
    yield runtime
    runtime.close()


def fill(rt: Runtime, n: int, actor: str = "user:u1", company: str = "acme") -> None:
    for i in range(n):
        audit.record(rt, company, actor, f"POST /v1/things/{i}", f"/v1/things/{i}", 201, "::1")


def test_entries_are_listed_newest_first_and_paged_by_an_opaque_cursor(rt: Runtime) -> None:
    fill(rt, 5)
    fill(rt, 2, company="globex")  # another company's entries never show
    seen: list[str] = []
    cursor = None
    while True:
        page = audit.list_entries(rt, "acme", 2, cursor)
        seen += [e["action"] for e in page["entries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert not cursor.isdigit()  # no bare row id: one codec for every cursor
    assert seen == [f"POST /v1/things/{i}" for i in reversed(range(5))]


def test_a_malformed_cursor_is_invalid_argument_naming_it(rt: Runtime) -> None:
    fill(rt, 1)
    for cursor in ("abc", "99999999999999999999999", "W1tdXQ"):
        with pytest.raises(FaceplaneError) as exc:
            audit.list_entries(rt, "acme", 10, cursor)
        assert exc.value.err.name == "INVALID_ARGUMENT"
        assert exc.value.details["field"] == "cursor"


def test_entries_filter_by_actor_and_since(rt: Runtime) -> None:
    fill(rt, 2, actor="user:u1")
    fill(rt, 1, actor="app:a1")
    with write_tx(rt.store.db) as conn:
        old = dt.datetime(2020, 6, 1, tzinfo=dt.UTC).timestamp()
        conn.execute(update(audit_log).where(audit_log.c.id == 1).values(at=old))
    by_app = audit.list_entries(rt, "acme", 10, actor="app:a1")["entries"]
    assert [e["actor"] for e in by_app] == ["app:a1"]
    recent = audit.list_entries(rt, "acme", 10, since="2020-06-01T02:00:00+02:00")
    assert len(recent["entries"]) == 3  # 02:00 at +02:00 is the old entry's instant
    newer = audit.list_entries(rt, "acme", 10, since="2020-06-01T00:00:01")
    assert len(newer["entries"]) == 2
    with pytest.raises(FaceplaneError) as exc:
        audit.list_entries(rt, "acme", 10, since="soon")
    assert exc.value.details["field"] == "since"


def test_an_entry_carries_who_what_where_and_when_in_iso_8601_utc(rt: Runtime) -> None:
    fill(rt, 1)
    (entry,) = audit.list_entries(rt, "acme", 10)["entries"]
    assert set(entry) == {"id", "at", "company_id", "actor", "action", "resource", "status", "ip"}
    when = dt.datetime.fromisoformat(entry["at"])
    assert when.utcoffset() == dt.timedelta(0)
    assert abs(when.timestamp() - dt.datetime.now(dt.UTC).timestamp()) < 60


def test_a_long_resource_is_cut_to_the_column(rt: Runtime) -> None:
    audit.record(rt, "acme", "user:u1", "POST /x", "/x/" + "y" * 600, 201, None)
    (entry,) = audit.list_entries(rt, "acme", 10)["entries"]
    assert len(entry["resource"]) == 500

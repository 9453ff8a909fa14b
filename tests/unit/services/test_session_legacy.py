"""Oz folders that earlier versions kept as blobs, moved into the session tables on first use,
called directly: only the caller's, with its media and analyses, the JSON blobs gone after."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Table, select

from faceplane.runtime import Runtime
from faceplane.services.session_legacy import import_legacy_analysis, import_legacy_folder
from faceplane.settings import Settings
from faceplane.store.db import analysis_sessions, session_analyses, session_media, tasks, write_tx

COMPANY, OTHER = "company-legacy", "company-other"


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime.open(Settings(data_dir=tmp_path, workers=0))
    yield runtime
    runtime.close()


def rows(rt: Runtime, table: Table, **where: Any) -> list[dict[str, Any]]:
    query = select(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with rt.store.db.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def put_task(rt: Runtime, company_id: str, operation: str, batch_id: str) -> str:
    now = time.time()
    task_id = secrets.token_hex(16)
    with write_tx(rt.store.db) as conn:
        conn.execute(
            tasks.insert().values(
                id=task_id,
                company_id=company_id,
                operation=operation,
                status="succeeded",
                input_json="{}",
                options_json="{}",
                attempts=1,
                max_attempts=3,
                created_at=now,
                updated_at=now,
                expires_at=now + 3600,
                cancel_requested=False,
                purged=False,
                batch_id=batch_id,
            )
        )
    return task_id


def old_folder(rt: Runtime, company_id: str, photos: int = 2) -> dict[str, Any]:
    """What the blob-kept version wrote: the photos, folder.json (and no rows)."""
    fid = uuid.uuid4().hex
    media = []
    for i in range(photos):
        mid, data = uuid.uuid4().hex, f"photo {i} of {fid}".encode()
        key = rt.store.blobs.put(f"oz/{fid}/media/{mid}.jpeg", data)
        media.append(
            {"media_id": mid, "original_name": f"p{i}.jpg", "tags": [f"tag{i}"], "blob": key}
        )
    folder = {
        "folder_id": fid,
        "company_id": company_id,
        "creator": "user:old",
        "time_created": 1_700_000_000.0,
        "meta_data": {"case": "old"},
        "media": media,
    }
    rt.store.blobs.put(f"oz/{fid}/folder.json", json.dumps(folder).encode())
    return folder


def blob_exists(rt: Runtime, key: str) -> bool:
    return (rt.store.blobs.root / key).exists()


def test_no_folder_blob_is_no_folder_and_writes_nothing(rt: Runtime) -> None:
    fid = uuid.uuid4().hex
    assert import_legacy_folder(rt, COMPANY, fid) is False
    assert rows(rt, analysis_sessions, id=fid) == []


def test_a_folder_blob_that_is_no_json_object_is_no_folder(rt: Runtime) -> None:
    fid = uuid.uuid4().hex
    rt.store.blobs.put(f"oz/{fid}/folder.json", b"[1, 2")
    assert import_legacy_folder(rt, COMPANY, fid) is False
    assert rows(rt, analysis_sessions, id=fid) == []


def test_another_companys_folder_is_not_moved_for_the_caller(rt: Runtime) -> None:
    folder = old_folder(rt, OTHER)
    fid = folder["folder_id"]
    assert import_legacy_folder(rt, COMPANY, fid) is False
    assert rows(rt, analysis_sessions, id=fid) == []
    assert blob_exists(rt, f"oz/{fid}/folder.json")  # still there for its own company


def test_the_callers_folder_moves_with_its_media_and_analyses(rt: Runtime) -> None:
    folder = old_folder(rt, COMPANY)
    fid, (first, second) = folder["folder_id"], folder["media"]
    compare = put_task(rt, COMPANY, "compare", fid)
    check = put_task(rt, COMPANY, "blacklist_check", fid)
    put_task(rt, COMPANY, "detect", fid)  # no Oz analysis: not moved
    put_task(rt, OTHER, "compare", fid)  # another company's task: not moved
    records = {
        compare: [first["media_id"], second["media_id"]],
        check: [second["media_id"], "a-media-that-is-gone"],
    }
    for task_id, chosen in records.items():
        record = json.dumps({"source_media": chosen}).encode()
        rt.store.blobs.put(f"oz/{fid}/analyses/{task_id}.json", record)

    assert import_legacy_folder(rt, COMPANY, fid) is True

    [session] = rows(rt, analysis_sessions, id=fid)
    assert (session["company_id"], session["creator"]) == (COMPANY, "user:old")
    assert json.loads(session["metadata_json"]) == {"case": "old"}
    assert session["created_at"] == 1_700_000_000.0
    media = sorted(rows(rt, session_media, session_id=fid), key=lambda m: m["position"])
    assert [m["id"] for m in media] == [first["media_id"], second["media_id"]]
    for m, old in zip(media, (first, second), strict=True):
        data = rt.store.blobs.get(old["blob"])  # the photo stays where it was
        assert m["blob_key"] == old["blob"] and m["company_id"] == COMPANY
        assert (m["size_bytes"], m["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
        assert json.loads(m["tags_json"]) == old["tags"]
        assert m["original_name"] == old["original_name"]
    analyses = {a["task_id"]: a for a in rows(rt, session_analyses, session_id=fid)}
    assert set(analyses) == {compare, check}
    assert analyses[compare]["type"] == "BIOMETRY"
    assert json.loads(analyses[compare]["inputs_json"]) == {
        "image1": first["media_id"],
        "image2": second["media_id"],
    }
    assert analyses[check]["type"] == "COLLECTION"
    assert json.loads(analyses[check]["inputs_json"]) == {"image": second["media_id"]}
    assert not blob_exists(rt, f"oz/{fid}/folder.json")
    assert not blob_exists(rt, f"oz/{fid}/analyses")

    assert import_legacy_folder(rt, COMPANY, fid) is False  # moved once: nothing left to move
    assert len(rows(rt, session_media, session_id=fid)) == 2


def test_a_photo_already_gone_is_left_out(rt: Runtime) -> None:
    folder = old_folder(rt, COMPANY)
    fid, (gone, kept) = folder["folder_id"], folder["media"]
    rt.store.blobs.delete_prefix(gone["blob"])
    assert import_legacy_folder(rt, COMPANY, fid) is True
    assert [m["id"] for m in rows(rt, session_media, session_id=fid)] == [kept["media_id"]]


def test_an_analysis_id_moves_the_folder_of_its_task_for_its_company_only(rt: Runtime) -> None:
    folder = old_folder(rt, COMPANY)
    fid = folder["folder_id"]
    task_id = put_task(rt, COMPANY, "compare", fid)
    assert import_legacy_analysis(rt, OTHER, task_id) is False
    assert import_legacy_analysis(rt, COMPANY, secrets.token_hex(16)) is False
    assert rows(rt, analysis_sessions, id=fid) == []
    assert import_legacy_analysis(rt, COMPANY, task_id) is True
    assert [a["task_id"] for a in rows(rt, session_analyses, session_id=fid)] == [task_id]

"""A database from before Alembic, with real rows, still serves them after the upgrade.

The rows are written with plain SQL against the old schema (tenant column `owner`, no app
webhook columns): a company, an admin, an app whose KEY is stored the way the accounts
service stores it, a collection with a subject and a face embedded from a real photo, and a
finished task. Then the server opens the database as it does on start (create_app), which
upgrades it, and the old KEY, the face and the task must all still work. On SQLite and on a
throw-away PostgreSQL database.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from alembic import command
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from databases import GENERATIONS, database_url, make_legacy_database
from faceplane.app import create_app
from faceplane.cli import main
from faceplane.engine.embed import project
from faceplane.engine.faces import analyse_image
from faceplane.engine.models.registry import DLIB_SPACE
from faceplane.runtime import Runtime
from faceplane.services.accounts import seal, sha256_hex
from faceplane.services.collections import current_space
from faceplane.services.faces import DetectRequest, detect_faces
from faceplane.services.images import ImageSource, load_image
from faceplane.settings import Settings
from faceplane.store.db import make_engine, write_tx
from faceplane.store.schema import alembic_config, head_revision

PHOTO = "faces/deepface/images/img1.jpg"


@dataclass
class OldRows:
    """What was written into the old database, to look for after the upgrade."""

    key: str
    collection_id: str
    subject_id: str
    task_id: str
    task_result: dict[str, Any]


@pytest.fixture(params=["sqlite", "postgresql"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server_settings(kind: str, tmp_path: Path) -> Iterator[Settings]:
    """A server's settings on an empty database of `kind`; no task workers (none needed)."""
    data_dir = tmp_path / "data"
    with database_url(kind, data_dir) as url:
        yield Settings(data_dir=data_dir, database_url=None if kind == "sqlite" else url, workers=0)


def url_of(settings: Settings) -> str:
    """The database the server will open."""
    return settings.database_url or f"sqlite:///{settings.data_dir / 'faceplane.db'}"


def insert(conn: sa.Connection, table: str, **row: Any) -> None:
    """INSERT one row by column names only: no knowledge of today's schema."""
    conn.execute(sa.table(table, *(sa.column(c) for c in row)).insert().values(**row))


def write_old_rows(settings: Settings, rt: Runtime, photo: bytes) -> OldRows:
    """Fill a database at the 0001 schema as the server of that time would have."""
    # The server of that time generated its secret into the data folder on first start.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    secret_file = settings.data_dir / "secret.key"
    secret_file.write_text(secrets.token_hex(32))
    os.chmod(secret_file, 0o600)
    secret = secret_file.read_text().strip().encode()

    source = ImageSource(field="image", data=photo)
    (face,) = analyse_image(
        rt.pool, load_image(rt, source).rgb, rt.analyse_options(embeddings=True)
    ).faces
    assert face.embedding is not None
    task_result = detect_faces(rt, source, DetectRequest())
    # The server of that time had dlib's ResNet alone: its collections hold dlib_resnet_v1,
    # the dlib part of today's vector.
    space = DLIB_SPACE
    old_vector = project(face.embedding[None], current_space(rt)[1], DLIB_SPACE)[0]

    now = time.time()
    key = "fpk_" + secrets.token_urlsafe(32)
    company, user, app = "c_" + secrets.token_hex(8), "u_" + secrets.token_hex(8), "app_old"
    collection, subject, task = "k_old", "s_old", "t_old"
    engine = make_engine(url_of(settings))
    with write_tx(engine) as conn:
        insert(conn, "companies", id=company, name="acme", created_at=now)
        insert(
            conn,
            "users",
            id=user,
            company_id=company,
            email="admin@acme.example",
            password_hash=PasswordHasher().hash("correct horse battery"),
            role="admin",
            active=True,
            created_at=now,
        )
        insert(
            conn,
            "apps",
            id=app,
            company_id=company,
            user_id=user,
            name="old app",
            key_hash=sha256_hex(key),
            key_sealed=seal(secret, key),
            key_prefix=key[:10],
            status="active",
            expires_at=None,
            rate_limit=1000,
            quota=None,
            created_at=now,
            rotated_at=None,
        )
        insert(
            conn,
            "collections",
            id=collection,
            owner=company,
            name="staff",
            kind="gallery",
            model=space,
            description="",
            created_at=now,
            updated_at=now,
        )
        insert(
            conn,
            "subjects",
            id=subject,
            collection_id=collection,
            name="angelina",
            external_id=None,
            metadata_json="{}",
            created_at=now,
            updated_at=now,
        )
        insert(
            conn,
            "faces",
            token="f_old",
            collection_id=collection,
            subject_id=subject,
            model=space,
            embedding=np.asarray(old_vector, dtype="<f4").tobytes(),
            quality_json=json.dumps(face.quality.as_dict()),
            box_json=json.dumps(face.as_dict()["box"]),
            crop_key=None,
            created_at=now,
        )
        insert(
            conn,
            "tasks",
            id=task,
            owner=company,
            operation="detect",
            status="succeeded",
            input_json="{}",
            options_json="{}",
            result_json=json.dumps(task_result),
            error_json=None,
            attempts=1,
            max_attempts=3,
            created_at=now - 5,
            updated_at=now,
            started_at=now - 4,
            finished_at=now,
            expires_at=now + 3600,
            cancel_requested=False,
            purged=False,
        )
    engine.dispose()
    return OldRows(key, collection, subject, task, task_result)


@pytest.mark.testdata
@pytest.mark.parametrize("made_by", ["alembic 0001", "the code of 839d8ee"])
def test_old_key_face_and_task_still_work_after_the_upgrade(
    server_settings: Settings, made_by: str, rt: Runtime, testdata: Path
) -> None:
    engine = make_engine(url_of(server_settings))
    if made_by == "alembic 0001":
        with write_tx(engine) as conn:
            command.upgrade(alembic_config(conn), "0001")
    else:
        make_legacy_database(engine, "839d8ee")
    engine.dispose()
    photo = (testdata / PHOTO).read_bytes()
    old = write_old_rows(server_settings, rt, photo)

    with TestClient(create_app(server_settings), raise_server_exceptions=False) as client:
        assert client.get(f"/v1/tasks/{old.task_id}").status_code == 401
        client.headers["X-API-Key"] = "fpk_" + secrets.token_urlsafe(32)
        assert client.get(f"/v1/tasks/{old.task_id}").status_code == 401
        client.headers["X-API-Key"] = old.key

        got = client.get(f"/v1/tasks/{old.task_id}")
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["status"] == "succeeded"
        assert body["result"]["faces"] == old.task_result["faces"]

        listed = client.get("/v1/collections").json()
        assert [c["id"] for c in listed["collections"]] == [old.collection_id]

        found = client.post(
            f"/v1/collections/{old.collection_id}/search", files={"image": ("p.jpg", photo)}
        )
        assert found.status_code == 200, found.text
        (match, *_) = found.json()["faces"][0]["matches"]
        assert match["subject_id"] == old.subject_id and match["similarity"] > 0.99


@pytest.mark.parametrize("generation", GENERATIONS)
def test_a_database_made_before_alembic_upgrades_and_db_current_says_head(
    server_settings: Settings,
    generation: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = make_engine(url_of(server_settings))
    make_legacy_database(engine, generation)
    engine.dispose()
    monkeypatch.setenv("FACEPLANE_DATA_DIR", str(server_settings.data_dir))
    if server_settings.database_url:
        monkeypatch.setenv("FACEPLANE_DATABASE_URL", server_settings.database_url)
    assert main(["db", "current"]) == 0
    assert capsys.readouterr().out.startswith("pre-Alembic schema (schema_version 1)")

    TestClient(create_app(server_settings)).close()  # the server upgrades on open

    assert main(["db", "current"]) == 0
    assert capsys.readouterr().out.strip() == f"{head_revision()} (head)"

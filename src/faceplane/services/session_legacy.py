"""Oz folders kept as blobs by earlier versions, moved into the session tables on first use.

Before the session tables, a folder was ``oz/<folder_id>/folder.json`` (company, metadata,
media with their blob keys) and each analysis a task with ``batch_id`` = the folder id, its
source media in ``oz/<folder_id>/analyses/<task_id>.json``. A database migration cannot read
blobs, so such a folder moves the first time it is asked for: its rows are written, its media
stay where they are (the rows name their blob keys), and the JSON blobs are deleted.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError

from faceplane.errors import FaceplaneError
from faceplane.runtime import Runtime
from faceplane.store.db import analysis_sessions, session_analyses, session_media, tasks, write_tx

# The operations those folders' analyses ran → (analysis type, the task's input names).
_OPERATIONS = {
    "compare": ("BIOMETRY", ("image1", "image2")),
    "blacklist_check": ("COLLECTION", ("image",)),
}


def _read_json(rt: Runtime, key: str) -> Any:
    try:
        return json.loads(rt.store.blobs.get(key))
    except (FaceplaneError, ValueError):
        return None


def _analysis_rows(
    rt: Runtime, company_id: str, folder_id: str, media_ids: set[str]
) -> list[dict[str, Any]]:
    with rt.store.db.connect() as conn:
        found = conn.execute(
            select(tasks.c.id, tasks.c.operation, tasks.c.created_at).where(
                and_(
                    tasks.c.company_id == company_id,
                    tasks.c.batch_id == folder_id,
                    tasks.c.operation.in_(list(_OPERATIONS)),
                )
            )
        ).all()
    rows = []
    for task_id, operation, created_at in found:
        kind, names = _OPERATIONS[operation]
        record = _read_json(rt, f"oz/{folder_id}/analyses/{task_id}.json") or {}
        chosen = [m for m in record.get("source_media", []) if m in media_ids]
        rows.append(
            {
                "id": task_id,
                "session_id": folder_id,
                "company_id": company_id,
                "type": kind,
                "task_id": task_id,
                "inputs_json": json.dumps(dict(zip(names, chosen, strict=False))),
                "params_json": "{}",
                "created_at": created_at,
            }
        )
    return rows


def import_legacy_folder(rt: Runtime, company_id: str, folder_id: str) -> bool:
    """Move the caller's blob-kept folder into the tables; False when there is none."""
    folder = _read_json(rt, f"oz/{folder_id}/folder.json")
    if not isinstance(folder, dict) or folder.get("company_id") != company_id:
        return False  # another company's folder is no folder of the caller's
    created = float(folder.get("time_created", 0.0))
    media_rows = []
    for position, m in enumerate(folder.get("media", [])):
        try:
            data = rt.store.blobs.get(m["blob"])
        except FaceplaneError:
            continue  # a photo already gone cannot be analysed again: leave it out
        media_rows.append(
            {
                "id": m["media_id"],
                "session_id": folder_id,
                "company_id": company_id,
                "position": position,
                "kind": "photo",
                "tags_json": json.dumps(m.get("tags", [])),
                "metadata_json": "{}",
                "blob_key": m["blob"],
                "original_name": m.get("original_name", "")[-255:],
                "size_bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "created_at": created,
            }
        )
    analyses = _analysis_rows(rt, company_id, folder_id, {m["id"] for m in media_rows})
    try:
        with write_tx(rt.store.db) as conn:
            conn.execute(
                analysis_sessions.insert().values(
                    id=folder_id,
                    company_id=company_id,
                    creator=str(folder.get("creator", "")),
                    tags_json="[]",
                    metadata_json=json.dumps(folder.get("meta_data", {})),
                    created_at=created,
                    updated_at=created,
                )
            )
            if media_rows:
                conn.execute(session_media.insert(), media_rows)
            if analyses:
                conn.execute(session_analyses.insert(), analyses)
    except IntegrityError:
        return True  # a concurrent request moved it first
    rt.store.blobs.delete_prefix(f"oz/{folder_id}/analyses")
    rt.store.blobs.delete_prefix(f"oz/{folder_id}/folder.json")
    return True


def import_legacy_analysis(rt: Runtime, company_id: str, analysis_id: str) -> bool:
    """Move the blob-kept folder of an analysis (a task of the caller's) into the tables."""
    with rt.store.db.connect() as conn:
        folder_id = conn.execute(
            select(tasks.c.batch_id).where(
                and_(tasks.c.id == analysis_id, tasks.c.company_id == company_id)
            )
        ).scalar()
    return bool(folder_id) and import_legacy_folder(rt, company_id, str(folder_id))

"""The audit log: who did what to which resource, when, from where — never image data."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import insert, select

from faceplane.runtime import Runtime
from faceplane.services.cursors import decode_cursor, encode_cursor
from faceplane.store.db import audit_log, write_tx
from faceplane.timestamps import iso_utc, parse_time


def record(
    rt: Runtime,
    company_id: str | None,
    actor: str,
    action: str,
    resource: str,
    status: int | None,
    ip: str | None,
) -> None:
    """Append one entry."""
    store = rt.store
    with write_tx(store.db) as conn:
        conn.execute(
            insert(audit_log).values(
                at=time.time(),
                company_id=company_id,
                actor=actor,
                action=action,
                resource=resource[:500],
                status=status,
                ip=ip,
            )
        )


def render_entry(row: dict[str, Any]) -> dict[str, Any]:
    """The public form of an entry: its time in ISO 8601 UTC."""
    return {**row, "at": iso_utc(row["at"])}


def list_entries(
    rt: Runtime,
    company_id: str,
    limit: int,
    cursor: str | None = None,
    actor: str | None = None,
    since: str | None = None,
) -> dict[str, Any]:
    """A company's entries, newest first (at or after the ISO 8601 time `since`);
    `next_cursor` pages back in time."""
    store = rt.store
    query = select(audit_log).where(audit_log.c.company_id == company_id)
    if cursor:
        (before,) = decode_cursor(cursor, int)
        query = query.where(audit_log.c.id < before)
    if actor:
        query = query.where(audit_log.c.actor == actor)
    if since is not None:
        query = query.where(audit_log.c.at >= parse_time(since, "since"))
    with store.db.connect() as conn:
        rows = [
            dict(r)
            for r in conn.execute(query.order_by(audit_log.c.id.desc()).limit(limit + 1)).mappings()
        ]
    page = rows[:limit]
    more = len(rows) > limit and page
    return {
        "entries": [render_entry(r) for r in page],
        "next_cursor": encode_cursor(page[-1]["id"]) if more else None,
    }

"""The audit log: who did what to which resource, when, from where — never image data."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import and_, insert, select

from faceplane.store import Store
from faceplane.store.db import audit_log, write_tx


def record(
    store: Store,
    company_id: str | None,
    actor: str,
    action: str,
    resource: str,
    status: int | None,
    ip: str | None,
) -> None:
    """Append one entry."""
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


def list_entries(
    store: Store,
    company_id: str,
    limit: int,
    before: int | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """A company's entries, newest first; `next_cursor` pages back in time."""
    query = select(audit_log).where(audit_log.c.company_id == company_id)
    if before is not None:
        query = query.where(audit_log.c.id < before)
    if actor:
        query = query.where(and_(audit_log.c.actor == actor))
    with store.db.connect() as conn:
        rows = [
            dict(r)
            for r in conn.execute(query.order_by(audit_log.c.id.desc()).limit(limit + 1)).mappings()
        ]
    page = rows[:limit]
    return {"entries": page, "next_cursor": str(page[-1]["id"]) if len(rows) > limit else None}

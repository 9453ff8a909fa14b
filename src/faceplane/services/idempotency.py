"""Idempotency keys: a retry under a key is the same task; another request under it is a
conflict (409), as payment APIs answer.

A task keeps the sha256 of its canonical request (`tasks.request_hash`): operation, options,
each image's bytes' sha256 or its URL, and the webhook. Tasks stored before the hash was kept
have none, and their key alone decides.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select

from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services.images import b64decode_checked
from faceplane.store.db import tasks

if TYPE_CHECKING:
    from faceplane.services.tasks import TaskSpec


def request_hash(rt: Runtime, spec: TaskSpec) -> str:
    """sha256 of the canonical request: operation, options, each image's bytes' sha256 (or
    its URL), and the webhook. Two submissions under one idempotency key must agree on it."""
    if spec.request_hash is not None:
        return spec.request_hash
    images: dict[str, dict[str, str]] = {}
    for name, src in sorted(spec.images.items()):
        if src.url is not None:
            images[name] = {"url": src.url}
            continue
        data = src.data
        if data is None and src.base64 is not None:
            data = b64decode_checked(rt, name, src.base64)
        if data is not None:
            images[name] = {"sha256": hashlib.sha256(data).hexdigest()}
    secret = spec.webhook_secret
    canonical = {
        "operation": spec.operation,
        "options": spec.options,
        "images": images,
        "webhook": {
            "url": spec.webhook_url,
            "secret_sha256": hashlib.sha256(secret.encode()).hexdigest() if secret else None,
        },
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def repeat_of(rt: Runtime, company_id: str, key: str, digest: str) -> dict[str, Any] | None:
    """The task already submitted under `key`, if any; TASK_CONFLICT (409) when it was
    submitted with another request (as payment APIs answer a reused key)."""
    existing = find_by_key(rt, company_id, key)
    if existing is None:
        return None
    # Tasks stored before the hash was kept have none: nothing to compare, the key decides.
    if existing.get("request_hash") not in (None, digest):
        raise FaceplaneError(
            Err.TASK_CONFLICT,
            "This idempotency key was already used with another request; use a new key.",
            idempotency_key=key,
            request_id=existing["id"],
        )
    return existing


def mark_repeats(
    rt: Runtime, company_id: str, specs: list[TaskSpec], batch: bool = False
) -> tuple[list[TaskSpec], list[bool]]:
    """The specs with their request hashes taken, and for each whether its idempotency key
    names a task already submitted with the same request (so it must not be billed again);
    TASK_CONFLICT when a key names another request. Billing asks before it charges: a retry
    of a paid-for submission must get its task back even when the quota is used up."""
    hashed: list[TaskSpec] = []
    repeats: list[bool] = []
    seen: dict[str, str] = {}
    for i, spec in enumerate(specs):
        key = spec.idempotency_key
        if not key:
            hashed.append(spec)
            repeats.append(False)
            continue
        try:
            spec = replace(spec, request_hash=request_hash(rt, spec))
            digest = spec.request_hash or ""
            if key in seen:
                if seen[key] != digest:
                    raise FaceplaneError(
                        Err.TASK_CONFLICT,
                        "Two items of the batch use one idempotency key for different requests.",
                        idempotency_key=key,
                    )
                repeat = True
            else:
                seen[key] = digest
                repeat = repeat_of(rt, company_id, key, digest) is not None
        except FaceplaneError as exc:
            if batch:
                exc.details.setdefault("item", i)
            raise
        hashed.append(spec)
        repeats.append(repeat)
    return hashed, repeats


def find_by_key(rt: Runtime, company_id: str, key: str) -> dict[str, Any] | None:
    """The company's task submitted under idempotency key `key`, if any."""
    store = rt.store
    with store.db.connect() as conn:
        row = (
            conn.execute(
                select(tasks).where(
                    and_(tasks.c.company_id == company_id, tasks.c.idempotency_key == key)
                )
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None

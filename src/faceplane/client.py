"""A small HTTP client of the Faceplane API, used by the CLI's task commands."""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import httpx

from faceplane.errors import Err, FaceplaneError


def auth_headers(key: str | None) -> dict[str, str]:
    """The credential header for an app KEY (FACEPLANE_API_KEY when none is given)."""
    key = key or os.environ.get("FACEPLANE_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def raise_for_error(resp: httpx.Response) -> Any:
    """The JSON of a success, or the server's catalogue error as a FaceplaneError."""
    try:
        body = resp.json()
    except ValueError:
        raise FaceplaneError(Err.INTERNAL, f"HTTP {resp.status_code}: {resp.text[:200]}") from None
    if resp.status_code >= 400:
        err = body.get("error", {}) if isinstance(body, dict) else {}
        code = err.get("code", "INTERNAL")
        member = Err[code] if code in Err.__members__ else Err.INTERNAL
        raise FaceplaneError(member, err.get("message", resp.text), **(err.get("details") or {}))
    return body


class Progress:
    """A one-line progress bar on stderr: done/total, succeeded and failed counts."""

    def __init__(self, total: int, out: TextIO = sys.stderr, width: int = 30) -> None:
        self.total, self.out, self.width = total, out, width
        self.ok = self.failed = 0

    def update(self, ok: int, failed: int) -> None:
        """Redraw with new counts."""
        self.ok, self.failed = ok, failed
        done = ok + failed
        filled = int(self.width * done / max(self.total, 1))
        bar = "#" * filled + "." * (self.width - filled)
        self.out.write(f"\r[{bar}] {done}/{self.total}  ok {ok}  failed {failed}")
        self.out.flush()

    def close(self) -> None:
        """End the line."""
        self.out.write("\n")
        self.out.flush()


def submit_files(
    base: str,
    operation: str,
    groups: list[dict[str, Path]],
    options: str,
    chunk: int,
    client: httpx.Client,
) -> list[tuple[dict[str, Path], dict[str, Any]]]:
    """Submit one task per group of files (in batches of `chunk`); return (group, task|error)."""
    out: list[tuple[dict[str, Path], dict[str, Any]]] = []
    for start in range(0, len(groups), chunk):
        part = groups[start : start + chunk]
        files = [(field, (p.name, p.read_bytes())) for g in part for field, p in g.items()]
        resp = client.post(
            base + "/v1/tasks:batch",
            data={"operation": operation, "options": options},
            files=files,
        )
        body = raise_for_error(resp)
        out += list(zip(part, body["tasks"], strict=True))
    return out


def wait_all(
    base: str, ids: list[str], client: httpx.Client, progress: Progress | None
) -> dict[str, dict[str, Any]]:
    """Poll until every task has finished; return the final states by id."""
    final: dict[str, dict[str, Any]] = {}
    pending = list(ids)
    while pending:
        still = []
        for task_id in pending:
            state = raise_for_error(client.get(f"{base}/v1/tasks/{task_id}"))
            if state["status"] in ("succeeded", "failed", "canceled"):
                final[task_id] = state
            else:
                still.append(task_id)
        pending = still
        if progress:
            ok = sum(1 for s in final.values() if s["status"] == "succeeded")
            progress.update(ok, len(final) - ok)
        if pending:
            time.sleep(0.2)
    return final


def cli_errors(fn: Callable[..., int]) -> Callable[..., int]:
    """Make a CLI command print a catalogue error or an unreadable file, and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        try:
            return fn(*args, **kwargs)
        except FaceplaneError as exc:
            print(f"error {exc.err.name}: {exc.message}", file=sys.stderr)
        except OSError as exc:
            print(f"error: {exc.filename or ''}: {exc.strerror}", file=sys.stderr)
        return 2

    return wrapper


def far_text(far: float) -> str:
    """A false-accept rate for people: `0.37`, `3e-6`, `1e-4`."""
    if far >= 0.01:
        return f"{far:.2g}"
    mantissa, exponent = f"{far:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"

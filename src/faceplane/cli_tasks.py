"""`faceplane submit | task`: tasks on a running server, with a progress bar for batches."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from faceplane.errors import FaceplaneError
from faceplane.settings import Settings


def _server(args: argparse.Namespace, settings: Settings) -> str:
    return (args.server or f"http://{settings.host}:{settings.port}").rstrip("/")


def cmd_submit(args: argparse.Namespace, settings: Settings) -> int:
    """Submit one task per file (per pair for compare) to a running server."""
    import httpx

    from faceplane.client import Progress, auth_headers, far_text, submit_files, wait_all

    fields = ("image1", "image2") if args.operation == "compare" else ("image",)
    readable: list[Path] = []
    skipped: list[Path] = []
    for f in args.files:
        path = Path(f)
        (readable if path.is_file() else skipped).append(path)
    for path in skipped:
        print(f"{path}: skipped: not a readable file", file=sys.stderr)
    if len(readable) % len(fields):
        print("error: compare takes files in pairs", file=sys.stderr)
        return 2
    groups = [
        dict(zip(fields, readable[i : i + len(fields)], strict=True))
        for i in range(0, len(readable), len(fields))
    ]
    base = _server(args, settings)
    options = json.dumps(dict(kv.split("=", 1) for kv in args.option))
    try:
        with httpx.Client(timeout=120, headers=auth_headers(args.key)) as client:
            submitted = submit_files(base, args.operation, groups, options, args.chunk, client)
            if not args.wait:
                for group, task in submitted:
                    names = " ".join(str(p) for p in group.values())
                    print(f"{task['request_id']}  {task['status']}  {names}")
                return 2 if skipped else 0
            progress = None if args.json else Progress(len(submitted))
            final = wait_all(base, [t["request_id"] for _, t in submitted], client, progress)
    except FaceplaneError as exc:
        print(f"error {exc.err.name}: {exc.message}", file=sys.stderr)
        return 2
    except httpx.HTTPError as exc:
        print(f"error: cannot reach {base}: {exc}", file=sys.stderr)
        return 2
    if progress:
        progress.close()
    failed = 0
    for group, task in submitted:
        state = final[task["request_id"]]
        names = " ".join(str(p) for p in group.values())
        if args.json:
            print(json.dumps({"files": names, **state}))
        elif state["status"] == "succeeded":
            faces = state.get("result", {}).get("faces")
            extra = f"{len(faces)} face(s)" if isinstance(faces, list) else ""
            if "match" in state.get("result", {}):
                r = state["result"]
                extra = f"match={r['match']} similarity={r['similarity']:.2f}"
                if "far" in r:
                    extra += f" far={far_text(r['far'])}"
            print(f"{names}: ok {extra} {state.get('result_url', '')}".rstrip())
        if state["status"] != "succeeded":
            failed += 1
            err = state.get("error", {})
            print(
                f"{names}: {state['status']} {err.get('code', '')}: {err.get('message', '')}",
                file=sys.stderr,
            )
    return 2 if failed or skipped else 0


def cmd_task(args: argparse.Namespace, settings: Settings) -> int:
    """Print a task's state as JSON."""
    import httpx

    from faceplane.client import auth_headers, raise_for_error

    base = _server(args, settings)
    params = {"wait_s": args.wait_s} if args.wait_s else {}
    try:
        with httpx.Client(timeout=args.wait_s + 30, headers=auth_headers(args.key)) as client:
            state = raise_for_error(client.get(f"{base}/v1/tasks/{args.id}", params=params))
    except FaceplaneError as exc:
        print(f"error {exc.err.name}: {exc.message}", file=sys.stderr)
        return 2
    except httpx.HTTPError as exc:
        print(f"error: cannot reach {base}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(state, indent=2))
    return 0


def add_task_parsers(sub: Any) -> None:
    """Add `submit` and `task` to the main parser."""
    t = sub.add_parser("submit", help="submit tasks to a running server")
    t.add_argument("operation", choices=("detect", "compare", "crop"))
    t.add_argument("files", nargs="+", metavar="FILE")
    t.add_argument("--wait", action="store_true", help="wait, with a progress bar")
    t.add_argument("--json", action="store_true", help="with --wait: one JSON line per task")
    t.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    t.add_argument("--chunk", type=int, default=50, help="tasks per batch request")
    t.add_argument("--server", help="server URL (default http://HOST:PORT from settings)")
    t.add_argument("--key", help="the app's KEY (default: FACEPLANE_API_KEY)")
    t.set_defaults(fn=cmd_submit)

    k = sub.add_parser("task", help="show a task")
    k.add_argument("id")
    k.add_argument("--wait-s", type=float, default=0.0, help="long-poll up to this long")
    k.add_argument("--server", help="server URL (default http://HOST:PORT from settings)")
    k.add_argument("--key", help="the app's KEY (default: FACEPLANE_API_KEY)")
    k.set_defaults(fn=cmd_task)

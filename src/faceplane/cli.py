"""`faceplane serve | detect | compare | submit | task | models | errors-doc | settings-doc`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faceplane.errors import FaceplaneError
from faceplane.services.context import Services
from faceplane.settings import Settings


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def _services(settings: Settings) -> Services:
    return Services.from_settings(settings)


def _call_server(server: str, path: str, files: dict[str, Path], data: dict[str, str]) -> Any:
    """POST images to a running server; return its JSON, raising its error as FaceplaneError."""
    import httpx

    from faceplane.client import raise_for_error

    handles = {k: (p.name, p.read_bytes()) for k, p in files.items()}
    return raise_for_error(
        httpx.post(server.rstrip("/") + path, files=handles, data=data, timeout=120)
    )


def cmd_detect(args: argparse.Namespace, settings: Settings) -> int:
    """Detect faces in each image and print a table (or the API's JSON)."""
    from faceplane.services.faces import DetectRequest, detect_faces
    from faceplane.services.images import ImageSource

    req = DetectRequest(
        max_faces=args.max_faces,
        min_face_size=args.min_face_size,
        det_threshold=args.det_threshold,
        landmarks=args.landmarks,
        return_embedding=args.embedding,
        detector=args.detector,
    )
    services = _services(settings)
    status = 0
    for path in args.images:
        try:
            if args.server:
                data = {"landmarks": str(args.landmarks), "return_embedding": str(args.embedding)}
                result = _call_server(args.server, "/v1/detect", {"image": Path(path)}, data)
            else:
                source = ImageSource(field="image", data=Path(path).read_bytes())
                result = detect_faces(services, source, req)
        except FaceplaneError as exc:
            print(f"{path}: error {exc.err.name}: {exc.message}", file=sys.stderr)
            status = 2
            continue
        except OSError as exc:
            print(f"{path}: error: {exc.strerror}", file=sys.stderr)
            status = 2
            continue
        if args.json:
            print(json.dumps({"file": path, **result}))
            continue
        img = result["image"]
        print(f"{path}: {len(result['faces'])} face(s) in {img['width']}×{img['height']}")
        rows = []
        for i, f in enumerate(result["faces"]):
            b, q = f["box"], f["quality"]
            rows.append(
                [
                    str(i),
                    f"{b['x']:.0f},{b['y']:.0f}",
                    f"{b['width']:.0f}×{b['height']:.0f}",
                    f"{f['score']:.2f}",
                    f"{q['sharpness']:.2f}",
                    f"{q['brightness']:.2f}",
                    f"{q['yaw']:+.0f}/{q['pitch']:+.0f}/{q['roll']:+.0f}",
                    ",".join(q["issues"]) or "-",
                ]
            )
        if rows:
            header = ["#", "x,y", "size", "score", "sharp", "bright", "yaw/pitch/roll", "issues"]
            print(_table(rows, header))
    return status


def cmd_compare(args: argparse.Namespace, settings: Settings) -> int:
    """Compare the largest faces of two images."""
    from faceplane.services.faces import CompareSide, DetectRequest, compare_faces
    from faceplane.services.images import ImageSource

    try:
        if args.server:
            files = {"image1": Path(args.a), "image2": Path(args.b)}
            result = _call_server(args.server, "/v1/compare", files, {})
        else:
            a = CompareSide(ImageSource("image1", data=Path(args.a).read_bytes()))
            b = CompareSide(ImageSource("image2", data=Path(args.b).read_bytes()))
            result = compare_faces(_services(settings), a, b, DetectRequest())
    except FaceplaneError as exc:
        print(f"error {exc.err.name}: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
        return 0
    verdict = "SAME person" if result["match"] else "DIFFERENT people"
    print(
        f"{verdict}: similarity {result['similarity']:.4f} "
        f"(threshold {result['threshold']:.4f}, distance {result['distance']:.4f}, "
        f"model {result['model']})"
    )
    return 0


def _server(args: argparse.Namespace, settings: Settings) -> str:
    return (args.server or f"http://{settings.host}:{settings.port}").rstrip("/")


def cmd_submit(args: argparse.Namespace, settings: Settings) -> int:
    """Submit one task per file (per pair for compare) to a running server."""
    import httpx

    from faceplane.client import Progress, submit_files, wait_all

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
        with httpx.Client(timeout=120) as client:
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
                extra = f"match={r['match']} similarity={r['similarity']:.4f}"
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

    from faceplane.client import raise_for_error

    base = _server(args, settings)
    params = {"wait_s": args.wait_s} if args.wait_s else {}
    try:
        with httpx.Client(timeout=args.wait_s + 30) as client:
            state = raise_for_error(client.get(f"{base}/v1/tasks/{args.id}", params=params))
    except FaceplaneError as exc:
        print(f"error {exc.err.name}: {exc.message}", file=sys.stderr)
        return 2
    except httpx.HTTPError as exc:
        print(f"error: cannot reach {base}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(state, indent=2))
    return 0


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    """Install the models, or list them."""
    if args.action == "install":
        from faceplane.engine.models.install import install_models

        print(f"installing models into {settings.models_dir}")
        failures = install_models(settings.models_dir)
        if failures:
            print(f"failed: {', '.join(failures)}", file=sys.stderr)
            return 1
        return 0
    from faceplane.engine.models.pool import ModelPool

    status = ModelPool(settings.models_dir).status()
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"model folder: {settings.models_dir}")
    rows = [
        [
            m["name"],
            m["task"],
            "yes" if m["present"] else "MISSING",
            "yes" if m["loaded"] else "no",
            (m["sha256"] or "-")[:16],
            m["licence"],
            m["version"],
        ]
        for m in status
    ]
    print(_table(rows, ["name", "task", "present", "loaded", "sha256", "licence", "version"]))
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run the HTTP server."""
    import uvicorn

    from faceplane.app import create_app

    host = args.host or settings.host
    port = args.port or settings.port
    settings = settings.model_copy(update={"host": host, "port": port})
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
    return 0


def cmd_errors_doc(args: argparse.Namespace, settings: Settings) -> int:
    """Print docs/errors.md, generated from the catalogue."""
    from faceplane.errors import render_errors_markdown

    sys.stdout.write(render_errors_markdown())
    return 0


def cmd_settings_doc(args: argparse.Namespace, settings: Settings) -> int:
    """Print docs/settings.md, generated from the settings class."""
    from faceplane.settings import render_settings_markdown

    sys.stdout.write(render_settings_markdown())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `faceplane` command."""
    p = argparse.ArgumentParser(prog="faceplane", description="Self-hosted face API server.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the HTTP API server")
    s.add_argument("--host", help="bind address (default 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default 8080)")
    s.set_defaults(fn=cmd_serve)

    d = sub.add_parser("detect", help="detect faces in images")
    d.add_argument("images", nargs="+", metavar="IMG")
    d.add_argument("--json", action="store_true", help="print the API's JSON, one line per image")
    d.add_argument("--max-faces", type=int)
    d.add_argument("--min-face-size", type=int)
    d.add_argument("--det-threshold", type=float)
    d.add_argument("--landmarks", type=int, choices=(5, 68), default=5)
    d.add_argument("--embedding", action="store_true", help="include embeddings")
    d.add_argument("--detector", choices=("blazeface", "hog"))
    d.add_argument("--server", help="call a running server at this URL instead of local models")
    d.set_defaults(fn=cmd_detect)

    c = sub.add_parser("compare", help="compare the largest faces of two images")
    c.add_argument("a", metavar="A")
    c.add_argument("b", metavar="B")
    c.add_argument("--json", action="store_true")
    c.add_argument("--server", help="call a running server at this URL instead of local models")
    c.set_defaults(fn=cmd_compare)

    t = sub.add_parser("submit", help="submit tasks to a running server")
    t.add_argument("operation", choices=("detect", "compare", "crop"))
    t.add_argument("files", nargs="+", metavar="FILE")
    t.add_argument("--wait", action="store_true", help="wait, with a progress bar")
    t.add_argument("--json", action="store_true", help="with --wait: one JSON line per task")
    t.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    t.add_argument("--chunk", type=int, default=50, help="tasks per batch request")
    t.add_argument("--server", help="server URL (default http://HOST:PORT from settings)")
    t.set_defaults(fn=cmd_submit)

    k = sub.add_parser("task", help="show a task")
    k.add_argument("id")
    k.add_argument("--wait-s", type=float, default=0.0, help="long-poll up to this long")
    k.add_argument("--server", help="server URL (default http://HOST:PORT from settings)")
    k.set_defaults(fn=cmd_task)

    m = sub.add_parser("models", help="install or list models")
    m.add_argument("action", choices=("install", "list"))
    m.add_argument("--json", action="store_true")
    m.set_defaults(fn=cmd_models)

    e = sub.add_parser("errors-doc", help="print the error catalogue as Markdown")
    e.set_defaults(fn=cmd_errors_doc)

    sd = sub.add_parser("settings-doc", help="print the settings reference as Markdown")
    sd.set_defaults(fn=cmd_settings_doc)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `faceplane` command."""
    args = build_parser().parse_args(argv)
    return int(args.fn(args, Settings()))


if __name__ == "__main__":
    raise SystemExit(main())

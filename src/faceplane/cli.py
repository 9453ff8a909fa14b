"""The `faceplane` command: serve, detect, compare, submit, task, enroll, search, index, models."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faceplane.cli_admin import add_admin_parser
from faceplane.cli_calibrate import add_calibrate_arguments
from faceplane.cli_db import add_db_parser
from faceplane.cli_gallery import add_gallery_parsers
from faceplane.cli_tasks import add_task_parsers
from faceplane.client import cli_errors, far_text
from faceplane.engine.quality import LEVELS
from faceplane.errors import FaceplaneError
from faceplane.runtime import Runtime
from faceplane.settings import Settings


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def _services(settings: Settings) -> Runtime:
    return Runtime.open(settings)


def _call_server(server: str, path: str, files: dict[str, Path], data: dict[str, str]) -> Any:
    """POST images to a running server; return its JSON, raising its error as FaceplaneError."""
    import httpx

    from faceplane.client import auth_headers, raise_for_error

    handles = {k: (p.name, p.read_bytes()) for k, p in files.items()}
    return raise_for_error(
        httpx.post(
            server.rstrip("/") + path,
            files=handles,
            data=data,
            timeout=120,
            headers=auth_headers(None),
        )
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
        quality_threshold=args.quality_threshold,
    )
    rt = _services(settings)
    status = 0
    for path in args.images:
        try:
            if args.server:
                data = {"landmarks": str(args.landmarks), "return_embedding": str(args.embedding)}
                if args.quality_threshold:
                    data["quality_threshold"] = args.quality_threshold
                result = _call_server(args.server, "/v1/detect", {"image": Path(path)}, data)
            else:
                source = ImageSource(field="image", data=Path(path).read_bytes())
                result = detect_faces(rt, source, req)
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
                    "-" if q.get("score") is None else f"{q['score']:.0f}",
                    f"{q['sharpness']:.2f}",
                    f"{q['brightness']:.2f}",
                    f"{q['yaw']:+.0f}/{q['pitch']:+.0f}/{q['roll']:+.0f}",
                    ",".join(q["issues"]) or "-",
                ]
            )
        if rows:
            header = ["#", "x,y", "size", "score", "quality", "sharp", "bright", "yaw/pitch/roll"]
            header.append("issues")
            print(_table(rows, header))
    return status


@cli_errors
def cmd_compare(args: argparse.Namespace, settings: Settings) -> int:
    """Compare the largest faces of two images."""
    from faceplane.services.faces import CompareSide, DetectRequest, compare_faces
    from faceplane.services.images import ImageSource

    if args.server:
        files = {"image1": Path(args.a), "image2": Path(args.b)}
        data = {} if args.far is None else {"far": repr(args.far)}
        result = _call_server(args.server, "/v1/compare", files, data)
    else:
        a = CompareSide(ImageSource("image1", data=Path(args.a).read_bytes()))
        b = CompareSide(ImageSource("image2", data=Path(args.b).read_bytes()))
        result = compare_faces(_services(settings), a, b, DetectRequest(), args.far)
    if args.json:
        print(json.dumps(result))
        return 0
    print(compare_line(result))
    return 0


def compare_line(result: dict[str, Any]) -> str:
    """`SAME person: similarity 0.83 (FAR 3e-06) ...`: the scale is read to two decimals."""
    verdict = "SAME person" if result["match"] else "DIFFERENT people"
    return (
        f"{verdict}: similarity {result['similarity']:.2f} (FAR {far_text(result['far'])}); "
        f"threshold {result['threshold']:.2f} (FAR {far_text(result['threshold_far'])}), "
        f"distance {result['distance']:.4f}, model {result['model']}"
    )


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    """Install the models, list them, or re-fit the similarity calibration."""
    if args.action == "calibrate":
        from faceplane.cli_calibrate import cmd_calibrate

        return cmd_calibrate(args, settings)
    if args.action == "install":
        from faceplane.engine.models.install import install_models

        print(f"installing models into {settings.models_dir}")
        failures = install_models(settings.models_dir)
        if failures:
            print(f"failed: {', '.join(failures)}", file=sys.stderr)
            return 1
        return 0
    from faceplane.engine.models.pool import ModelPool

    status = ModelPool(settings.models_dir, model_set=settings.model_set).status()
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"model folder: {settings.models_dir}  (model set: {settings.model_set})")
    rows = [
        [
            m["name"],
            m["task"],
            m["model_set"] + ("" if m["allowed"] else " (off)"),
            "yes" if m["present"] else "MISSING",
            "yes" if m["loaded"] else "no",
            (m["sha256"] or "-")[:16],
            m["licence"],
            m["training_data"] or "-",
            m["version"],
        ]
        for m in status
    ]
    header = [
        "name",
        "task",
        "set",
        "present",
        "loaded",
        "sha256",
        "licence",
        "training data",
        "version",
    ]
    print(_table(rows, header))
    return 0


# `faceplane serve` exits with this when another server's embedded workers hold the data folder.
EXIT_DATA_DIR_IN_USE = 3
SERVER_LOCK = "server.lock"


def lock_data_dir(data_dir: Path) -> int | str:
    """Take DATA_DIR/server.lock for as long as this process lives: its descriptor, or (when
    another process holds it) the pid written in it by that process."""
    import fcntl

    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(data_dir / SERVER_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        return holder or "unknown"
    # The kernel drops the lock when this process ends, however it ends (kill -9 too), so a
    # stale file never blocks a restart; the pid is only for the message.
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run the HTTP server."""
    import uvicorn

    from faceplane.app import create_app

    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    host = args.host or settings.host
    port = args.port or settings.port
    settings = settings.model_copy(update={"host": host, "port": port})
    lock: int | None = None
    if settings.executor == "local" and settings.workers > 0:
        # One server with embedded workers per data folder: a second one started on it by
        # mistake (a unit started twice, a test server on the live folder) would run its own
        # workers on the same task table, blobs and index files. Servers without workers
        # (FACEPLANE_WORKERS=0: more API processes on one folder) and Celery servers may share
        # a folder; their tasks' leases keep every running task with the worker that has it.
        taken = lock_data_dir(settings.data_dir)
        if isinstance(taken, str):
            print(
                f"error: another faceplane server (pid {taken}) runs embedded workers on the "
                f"data folder {settings.data_dir} (it holds {settings.data_dir / SERVER_LOCK}); "
                "stop it, give this server its own FACEPLANE_DATA_DIR, or start it with "
                "FACEPLANE_WORKERS=0",
                file=sys.stderr,
            )
            return EXIT_DATA_DIR_IN_USE
        lock = taken
    try:
        # Uvicorn's access log prints query strings, and signed blob URLs carry their
        # signature there: the app logs its own access lines, without queries or credentials.
        app = create_app(settings)
        # Uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise: anyone on
        # the machine could then put any address in the audit log. Only configured proxies.
        proxies = settings.trusted_proxies
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="info",
            access_log=False,
            proxy_headers=bool(proxies),
            forwarded_allow_ips=list(proxies),
        )
    finally:
        if lock is not None:
            os.close(lock)
    return 0


class OneLineFormatter(logging.Formatter):
    """Log lines whose message cannot hold a line break: control characters are escaped (a
    request path with `%0a` must not write a second, forged line). Tracebacks stay as they are."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The line, with the message escaped."""
        from faceplane.api.handlers import printable

        record.message = printable(record.message)
        return super().formatMessage(record)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run a Celery worker for the distributed mode (`FACEPLANE_EXECUTOR=celery` servers)."""
    import os
    import socket

    from faceplane.tasks.celery import make_celery

    concurrency = args.concurrency if args.concurrency is not None else settings.workers
    if concurrency < 1:
        print("error: --concurrency must be at least 1", file=sys.stderr)
        return 2
    app = make_celery(settings)
    worker = app.Worker(
        # One process per core: solo runs tasks in this process, prefork in `concurrency`
        # children (each builds its own models and database connections).
        pool="solo" if concurrency == 1 else "prefork",
        concurrency=concurrency,
        queues=[settings.celery_queue],
        hostname=f"faceplane-{os.getpid()}@{socket.gethostname()}",
        loglevel="INFO",
        # The task table coordinates workers; Celery's worker-to-worker sync adds nothing.
        without_mingle=True,
        without_gossip=True,
    )
    worker.start()
    return int(worker.exitcode or 0)


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

    w = sub.add_parser("worker", help="run a Celery worker (distributed mode)")
    w.add_argument(
        "-c", "--concurrency", type=int, help="worker processes (default: FACEPLANE_WORKERS)"
    )
    w.set_defaults(fn=cmd_worker)

    d = sub.add_parser("detect", help="detect faces in images")
    d.add_argument("images", nargs="+", metavar="IMG")
    d.add_argument("--json", action="store_true", help="print the API's JSON, one line per image")
    d.add_argument("--max-faces", type=int)
    d.add_argument("--min-face-size", type=int)
    d.add_argument("--det-threshold", type=float)
    d.add_argument(
        "--landmarks",
        type=lambda v: v if v == "mesh" else int(v),
        choices=(5, 68, "mesh"),
        default=5,
        help="5, 68 or mesh (the 468-point face mesh in --json)",
    )
    d.add_argument("--embedding", action="store_true", help="include embeddings")
    d.add_argument("--detector", choices=("auto", "retinaface", "blazeface", "hog"))
    d.add_argument(
        "--quality-threshold",
        choices=LEVELS,
        help="the quality gate's level `issues` are judged at (default: the server's)",
    )
    d.add_argument("--server", help="call a running server at this URL instead of local models")
    d.set_defaults(fn=cmd_detect)

    c = sub.add_parser("compare", help="compare the largest faces of two images")
    c.add_argument("a", metavar="A")
    c.add_argument("b", metavar="B")
    c.add_argument("--json", action="store_true")
    c.add_argument(
        "--far", type=float, help="false-accept rate of the match (default FACEPLANE_COMPARE_FAR)"
    )
    c.add_argument("--server", help="call a running server at this URL instead of local models")
    c.set_defaults(fn=cmd_compare)

    add_task_parsers(sub)
    add_gallery_parsers(sub)
    add_admin_parser(sub)
    add_db_parser(sub)

    m = sub.add_parser("models", help="install or list models, or re-fit the similarity scale")
    m.add_argument("action", choices=("install", "list", "calibrate"))
    m.add_argument("--json", action="store_true")
    add_calibrate_arguments(m)
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

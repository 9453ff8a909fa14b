"""`faceplane enroll | search | index`: collections on the local data folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from faceplane.client import cli_errors, far_text
from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.settings import Settings


def _company_id(rt: Runtime, company: str) -> str:
    """The id of the company (tenant) whose collections the command works on."""
    from faceplane.services import accounts

    found = accounts.find_company(rt, company)
    if found is None:
        raise FaceplaneError(
            Err.RESOURCE_NOT_FOUND,
            f"No company {company!r}: start the server once, or `faceplane admin company create`.",
        )
    return str(found["id"])


def cmd_enroll(args: argparse.Namespace, settings: Settings) -> int:
    """Enroll FOLDER/<subject>/*.jpg into a collection (created if missing), with progress."""
    from faceplane.client import Progress
    from faceplane.services import collections as col
    from faceplane.services.enroll import enroll_faces
    from faceplane.services.images import ImageSource

    folder = Path(args.folder)
    people = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not people:
        print(f"error: {folder} has no sub-folder (one per subject)", file=sys.stderr)
        return 2
    rt = Runtime.open(settings)
    try:
        company_id = _company_id(rt, args.company)
        cid = col.find_collection_id(rt, company_id, args.collection)
        if cid is None:
            kind = "blacklist" if args.blacklist else "gallery"
            cid = col.create_collection(rt, company_id, args.collection, kind)["id"]
    except FaceplaneError as exc:
        print(f"error {exc.err.name}: {exc.message}", file=sys.stderr)
        rt.close()
        return 2
    existing = {
        s["name"]: s["id"]
        for s in col.list_subjects(rt, company_id, cid, 1_000_000, None)["subjects"]
    }
    files = [(p.name, f) for p in people for f in sorted(p.iterdir()) if f.is_file()]
    progress = Progress(len(files))
    ok, failures = 0, []
    for name, path in files:
        try:
            if name not in existing:
                existing[name] = col.create_subject(rt, company_id, cid, name)["id"]
            enroll_faces(
                rt,
                company_id,
                cid,
                existing[name],
                ImageSource("image", data=path.read_bytes()),
            )
            ok += 1
        except FaceplaneError as exc:
            failures.append(f"{path}: {exc.err.name}: {exc.message}")
        except OSError as exc:
            failures.append(f"{path}: {exc.strerror}")
        progress.update(ok, len(failures))
    progress.close()
    rt.close()  # saves the vector indexes
    print(
        f"collection {args.collection} ({cid}): {ok} face(s) enrolled for {len(people)} "
        f"subject(s), {len(failures)} file(s) skipped"
    )
    for line in failures:
        print("  skipped " + line, file=sys.stderr)
    return 0


@cli_errors
def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    """Search a collection with the faces of an image."""
    from faceplane.services.collections import find_collection_id
    from faceplane.services.images import ImageSource
    from faceplane.services.search import search_collection

    rt = Runtime.open(settings)
    company_id = _company_id(rt, args.company)
    cid = find_collection_id(rt, company_id, args.collection)
    if cid is None:
        raise FaceplaneError(Err.COLLECTION_NOT_FOUND, f"No collection {args.collection!r}.")
    result = search_collection(
        rt,
        company_id,
        cid,
        image=ImageSource("image", data=Path(args.image).read_bytes()),
        all_faces=args.all_faces,
        k=args.k,
        far=args.far,
    )
    if args.json:
        print(json.dumps(result))
        return 0
    for i, face in enumerate(result["faces"]):
        b = face["box"]
        print(
            f"face {i} at {b['x']:.0f},{b['y']:.0f} {b['width']:.0f}×{b['height']:.0f} "
            f"(threshold {face['threshold']:.2f}, FAR {result['far']:g}):"
        )
        if not face["matches"]:
            print("  no match: unknown")
        for m in face["matches"]:
            print(
                f"  {m['similarity']:.2f} (FAR {far_text(m['far'])})  {m['subject_name']}  "
                f"({m['subject_id']})"
            )
    return 0


def cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    """Rebuild vector indexes from the database."""
    from faceplane.services.collections import rebuild_indexes

    rt = Runtime.open(settings)
    try:
        for cid, size in rebuild_indexes(rt, args.collection):
            print(f"{cid}: {size} vector(s)")
    finally:
        rt.close()
    return 0


def add_gallery_parsers(sub: Any) -> None:
    """Add `enroll`, `search` and `index` to the main parser."""
    en = sub.add_parser("enroll", help="enroll FOLDER/<subject>/* into a collection")
    en.add_argument("collection", metavar="COLLECTION", help="name or id (created if missing)")
    en.add_argument("folder", metavar="FOLDER")
    en.add_argument("--blacklist", action="store_true", help="create it as a blacklist")
    en.add_argument("--company", default="default", help="the tenant (name or id)")
    en.set_defaults(fn=cmd_enroll)

    se = sub.add_parser("search", help="search a collection with the faces of an image")
    se.add_argument("collection", metavar="COLLECTION")
    se.add_argument("image", metavar="IMG")
    se.add_argument("--all-faces", action="store_true")
    se.add_argument("-k", type=int, default=5)
    se.add_argument("--far", type=float, help="false-accept rate (default from settings)")
    se.add_argument("--json", action="store_true")
    se.add_argument("--company", default="default", help="the tenant (name or id)")
    se.set_defaults(fn=cmd_search)

    ix = sub.add_parser("index", help="vector index maintenance")
    ix.add_argument("action", choices=("rebuild",))
    ix.add_argument("collection", nargs="?", help="name or id (default: all)")
    ix.set_defaults(fn=cmd_index)

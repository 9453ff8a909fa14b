"""store/blobs.py: blobs as files under one root, and signed, expiring blob URLs."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.settings import Settings
from faceplane.store.blobs import LocalBlobs, blob_url, content_type, sign_blob, verify_blob

SECRET = b"server secret for tests"
KEY = "tasks/abc123/result/result.jpg"
COMPANY = "c0ffee"


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobs:
    """A blob store in a folder of its own (inside tmp_path, so escapes can be seen)."""
    return LocalBlobs(tmp_path / "blobs")


def code_of(fn: object, *args: object) -> Err:
    """The catalogue code `fn(*args)` fails with."""
    with pytest.raises(FaceplaneError) as info:
        fn(*args)  # type: ignore[operator]
    return info.value.err


# ---- put / get / delete --------------------------------------------------------------------


def test_a_blob_reads_back_as_it_was_put(blobs: LocalBlobs) -> None:
    data = bytes(range(256)) * 10
    assert blobs.put(KEY, data) == KEY
    assert blobs.get(KEY) == data
    assert (blobs.root / KEY).read_bytes() == data
    assert not list(blobs.root.rglob("*.part"))  # the temporary file was renamed into place


def test_putting_a_key_again_replaces_the_blob(blobs: LocalBlobs) -> None:
    blobs.put(KEY, b"first")
    blobs.put(KEY, b"second")
    assert blobs.get(KEY) == b"second"


def test_concurrent_puts_of_one_key_all_succeed_and_leave_one_whole_blob(
    blobs: LocalBlobs,
) -> None:
    # A task retried while its first run still writes puts the same result key twice.
    writers, rounds = 6, 20
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        start.wait()
        for _ in range(rounds):
            try:
                blobs.put(KEY, bytes([n]) * 200_000)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    data = blobs.get(KEY)
    assert len(data) == 200_000 and len(set(data)) == 1  # one writer's bytes, not a mix
    assert not list(blobs.root.rglob("*.part"))


def test_a_missing_blob_is_resource_not_found(blobs: LocalBlobs) -> None:
    assert code_of(blobs.get, "tasks/none/x.jpg") is Err.RESOURCE_NOT_FOUND
    blobs.put("tasks/t1/x.jpg", b"x")
    assert code_of(blobs.get, "tasks/t1") is Err.RESOURCE_NOT_FOUND  # a folder is not a blob


def test_deleting_one_key_removes_only_that_file(blobs: LocalBlobs) -> None:
    blobs.put("tasks/t1/a.jpg", b"a")
    blobs.put("tasks/t1/b.jpg", b"b")
    blobs.delete_prefix("tasks/t1/a.jpg")
    assert code_of(blobs.get, "tasks/t1/a.jpg") is Err.RESOURCE_NOT_FOUND
    assert blobs.get("tasks/t1/b.jpg") == b"b"
    assert not (blobs.root / "tasks/t1/a.jpg").exists()


def test_deleting_a_prefix_removes_every_blob_under_it_and_nothing_else(
    blobs: LocalBlobs,
) -> None:
    for key in ("tasks/t1/input/image", "tasks/t1/result/r.jpg", "tasks/t10/x", "tasks/t2/y"):
        blobs.put(key, key.encode())
    blobs.delete_prefix("tasks/t1")
    assert not (blobs.root / "tasks/t1").exists()
    assert blobs.get("tasks/t10/x") == b"tasks/t10/x"  # a name that merely starts the same
    assert blobs.get("tasks/t2/y") == b"tasks/t2/y"


def test_deleting_a_prefix_that_holds_nothing_is_not_an_error(blobs: LocalBlobs) -> None:
    blobs.delete_prefix("collections/none")
    blobs.delete_prefix("collections/none/face.jpg")


# ---- keys cannot leave the root ------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "../outside.jpg",
        "tasks/../../outside.jpg",
        "/etc/passwd",
        "/tmp/outside.jpg",
        "..",
        "",
        ".",
        "tasks/../",
    ],
)
def test_a_key_that_leaves_the_root_or_names_the_root_is_refused(
    blobs: LocalBlobs, tmp_path: Path, key: str
) -> None:
    (tmp_path / "outside.jpg").write_bytes(b"not yours")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert code_of(blobs.put, key, b"overwrite") is Err.RESOURCE_NOT_FOUND
    assert code_of(blobs.get, key) is Err.RESOURCE_NOT_FOUND
    assert code_of(blobs.delete_prefix, key) is Err.RESOURCE_NOT_FOUND
    assert (tmp_path / "outside.jpg").read_bytes() == b"not yours"
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert blobs.root.is_dir()  # "", "." and "tasks/../" must not wipe the whole store


def test_a_root_beside_another_folder_with_a_longer_name_is_not_confused_with_it(
    blobs: LocalBlobs, tmp_path: Path
) -> None:
    sibling = tmp_path / "blobs-other"
    sibling.mkdir()
    (sibling / "x").write_bytes(b"theirs")
    assert code_of(blobs.get, "../blobs-other/x") is Err.RESOURCE_NOT_FOUND
    assert code_of(blobs.delete_prefix, "../blobs-other") is Err.RESOURCE_NOT_FOUND
    assert (sibling / "x").exists()


def test_a_symlink_inside_the_root_does_not_lead_outside(blobs: LocalBlobs, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    os.symlink(outside, blobs.root / "link")
    assert code_of(blobs.get, "link/secret") is Err.RESOURCE_NOT_FOUND
    assert code_of(blobs.put, "link/new", b"x") is Err.RESOURCE_NOT_FOUND
    assert not (outside / "new").exists()


def test_a_key_that_wanders_but_stays_inside_is_the_same_blob(blobs: LocalBlobs) -> None:
    blobs.put("tasks/t1/x.jpg", b"x")
    assert blobs.get("tasks/t2/../t1/x.jpg") == b"x"


# ---- content types -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("a/b.jpg", "image/jpeg"),
        ("a/b.png", "image/png"),
        ("oz/f/folder.json", "application/json"),
        ("tasks/t/input/image", "application/octet-stream"),
    ],
)
def test_a_blobs_content_type_comes_from_its_extension(key: str, expected: str) -> None:
    assert content_type(key) == expected


# ---- signed URLs ---------------------------------------------------------------------------


def url_parts(url: str) -> tuple[str, str, int, str]:
    """(key, company_id, expires, sig) of a blob URL."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.path.startswith("/v1/blobs/")
    key = parts.path.removeprefix("/v1/blobs/")
    return key, query["company_id"], int(query["expires"]), query["sig"]


def test_a_blob_url_verifies_with_what_it_carries() -> None:
    before = int(time.time())
    url = blob_url(SECRET, KEY, COMPANY, 600, base="https://faces.example")
    assert url.startswith("https://faces.example/v1/blobs/" + KEY + "?")
    key, company, expires, sig = url_parts(url)
    assert (key, company) == (KEY, COMPANY)
    assert before + 600 <= expires <= int(time.time()) + 600
    assert sig == sign_blob(SECRET, KEY, COMPANY, expires)
    verify_blob(SECRET, key, company, expires, sig)  # no error


@pytest.mark.parametrize("part", ["key", "company", "expires", "sig", "secret"])
def test_a_blob_url_with_any_part_changed_is_signature_invalid(part: str) -> None:
    key, company, expires, sig = url_parts(blob_url(SECRET, KEY, COMPANY, 600))
    secret = SECRET
    if part == "key":
        key = "tasks/other/result/result.jpg"
    elif part == "company":
        company = "another-company"
    elif part == "expires":
        expires += 3600  # a longer life is not the signer's to give
    elif part == "sig":
        sig = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    else:
        secret = b"another server"
    assert code_of(verify_blob, secret, key, company, expires, sig) is Err.SIGNATURE_INVALID


@pytest.mark.parametrize(
    "sig",
    ["", "zz", "é" * 64, "\u2603" * 10, "A" * 64],
    ids=["empty", "short", "latin-1", "snowmen", "upper-case"],
)
def test_a_malformed_signature_is_signature_invalid_not_a_crash(sig: str) -> None:
    # The signature comes from a query string: any text at all may arrive.
    expires = int(time.time()) + 600
    assert code_of(verify_blob, SECRET, KEY, COMPANY, expires, sig) is Err.SIGNATURE_INVALID


def test_an_expired_blob_url_is_resource_expired() -> None:
    key, company, expires, sig = url_parts(blob_url(SECRET, KEY, COMPANY, -5))
    assert code_of(verify_blob, SECRET, key, company, expires, sig) is Err.RESOURCE_EXPIRED


def test_an_expired_url_with_a_bad_signature_says_the_signature_is_invalid() -> None:
    # The signature is checked first: expiry is only news for a URL we really signed.
    key, company, expires, _ = url_parts(blob_url(SECRET, KEY, COMPANY, -5))
    assert code_of(verify_blob, SECRET, key, company, expires, "0" * 64) is Err.SIGNATURE_INVALID


def test_the_runtimes_store_has_blobs_in_the_data_folder(tmp_path: Path) -> None:
    rt = Runtime.open(Settings(data_dir=tmp_path))
    try:
        assert rt.store.blobs.root == tmp_path / "blobs"
        rt.store.blobs.put(KEY, b"jpeg")
        assert (tmp_path / "blobs" / KEY).read_bytes() == b"jpeg"
        key, company, expires, sig = url_parts(blob_url(rt.store.secret, KEY, COMPANY, 60))
        verify_blob(rt.store.secret, key, company, expires, sig)
    finally:
        rt.close()

"""services.oz_container on hostile zips: the central directory is judged before anything is
inflated, inflation stops at the declared sizes, and nothing past the limits is ever held."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import struct
import tracemalloc
import zipfile
from collections.abc import Callable
from typing import Any

import pytest

from faceplane.errors import Err, FaceplaneError
from faceplane.services.oz_container import (
    ContainerLimits,
    issue_session_token,
    unpack_container,
)

SECRET = b"s" * 32
CO = "company-containers"
MB = 1024 * 1024
LIMITS = ContainerLimits(max_total_bytes=64 * MB, max_media_bytes=15 * MB, max_ratio=20.0)
CD = b"PK\x01\x02"
CD_SIZES = struct.Struct("<LLL")  # crc, compressed size, uncompressed size at offset 16 of an entry


def token() -> str:
    return issue_session_token(SECRET, CO, 600)[0]


def make_zip(
    media: dict[str, bytes],
    method: int = zipfile.ZIP_DEFLATED,
    signature: str | None = None,
    hashes: dict[str, str] | None = None,
) -> bytes:
    """A container signed with a fresh session token: payload.json, signature, media."""
    tok = token()
    digests = {n: hashlib.sha256(d).hexdigest() for n, d in media.items()}
    raw = json.dumps({"session_token": tok, "media:sha256": hashes or digests}).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("payload.json", raw)
        zf.writestr("signature", signature or hmac.new(tok.encode(), raw, "sha256").hexdigest())
        for name, data in media.items():
            zf.writestr(name, data, compress_type=method)
    return buf.getvalue()


def entry(data: bytes, index: int) -> int:
    """Where central directory entry `index` starts (payload.json is 0, signature 1, media...)."""
    start = data.find(CD)
    for _ in range(index):
        start = data.find(CD, start + 1)
    assert start >= 0
    return start


def declare(data: bytes, index: int, **sizes: int) -> bytes:
    """Make the central directory lie about entry `index`'s crc / compressed / file size."""
    at = entry(data, index) + 16
    crc, packed, size = CD_SIZES.unpack_from(data, at)
    values = (sizes.get("crc", crc), sizes.get("packed", packed), sizes.get("size", size))
    return data[:at] + CD_SIZES.pack(*values) + data[at + CD_SIZES.size :]


def refused(data: bytes, limits: ContainerLimits = LIMITS) -> FaceplaneError:
    with pytest.raises(FaceplaneError) as exc:
        unpack_container(data, CO, SECRET, limits)
    return exc.value


def peak_mb(fn: Callable[[], Any]) -> float:
    """The most memory (MB) Python allocated while `fn` ran (it may raise)."""
    tracemalloc.start()
    try:
        fn()
    except FaceplaneError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / MB


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """0.29 MB that the central directory truthfully says inflates to 280 MB of 'photos'."""
    return make_zip({f"m{i}.jpg": bytes(int(14.7 * MB)) for i in range(19)})


def test_a_well_formed_container_gives_its_media_in_zip_order() -> None:
    media = {"b.jpg": os.urandom(3000), "a.jpg": b"x" * 5000, "sub/c.png": os.urandom(10)}
    uploads, payload = unpack_container(make_zip(media), CO, SECRET, LIMITS)
    assert [(u.key, u.filename, u.data) for u in uploads] == [
        ("b.jpg", "b.jpg", media["b.jpg"]),
        ("a.jpg", "a.jpg", media["a.jpg"]),
        ("sub/c.png", "c.png", media["sub/c.png"]),
    ]
    assert set(payload) == {"session_token", "media:sha256"}


def test_a_stored_container_unpacks_too() -> None:
    media = {"a.jpg": os.urandom(20_000)}
    [upload], _ = unpack_container(make_zip(media, zipfile.ZIP_STORED), CO, SECRET, LIMITS)
    assert upload.data == media["a.jpg"]


def test_a_bomb_is_refused_from_its_central_directory_before_anything_is_inflated(
    bomb: bytes,
) -> None:
    assert len(bomb) < 0.3 * MB
    err = refused(bomb)
    assert err.err is Err.CONTAINER_TOO_LARGE and err.details["media"] == "m0.jpg"
    assert err.details["max_ratio"] == 20.0
    assert peak_mb(lambda: unpack_container(bomb, CO, SECRET, LIMITS)) < 2


def test_the_total_the_container_declares_is_bounded() -> None:
    media = {f"m{i}.jpg": os.urandom(60_000) for i in range(2)}
    small = ContainerLimits(max_total_bytes=100_000, max_media_bytes=15 * MB, max_ratio=20.0)
    err = refused(make_zip(media), small)
    assert err.err is Err.CONTAINER_TOO_LARGE and err.details["max_bytes"] == 100_000
    assert err.details["size_bytes"] > 120_000


def test_many_members_that_each_compress_well_fail_the_total_ratio() -> None:
    # Each is under the 1 MB floor of the per-member ratio; together they are a bomb.
    media = {f"m{i}.jpg": bytes(MB - 1) for i in range(20)}
    err = refused(make_zip(media))
    assert err.err is Err.CONTAINER_TOO_LARGE and "media" not in err.details
    assert err.details["size_bytes"] > 20 * (MB - 1)


def test_a_photo_declared_over_the_image_limit_is_refused_with_the_image_code() -> None:
    media = {"big.jpg": os.urandom(200_000)}
    tight = ContainerLimits(max_total_bytes=64 * MB, max_media_bytes=100_000, max_ratio=20.0)
    err = refused(make_zip(media), tight)
    assert err.err is Err.IMAGE_FILE_TOO_LARGE and err.details["media"] == "big.jpg"


def test_a_payload_json_declared_over_a_megabyte_is_refused() -> None:
    data = declare(make_zip({"a.jpg": b"x"}), 0, size=2 * MB, packed=2 * MB)
    err = refused(data)
    assert err.err is Err.CONTAINER_TOO_LARGE and err.details["media"] == "payload.json"


def test_a_directory_that_understates_a_member_stops_inflating_at_the_declared_size() -> None:
    # 50 MB of zeros behind a central directory that says 100 KB (ratio 2: it passes).
    real = make_zip({"a.jpg": bytes(50 * MB)})
    packed = CD_SIZES.unpack_from(real, entry(real, 2) + 16)[1]
    lying = declare(real, 2, size=2 * packed)
    err = refused(lying)
    assert err.err is Err.CONTAINER_DAMAGED and "past its declared size" in err.details["reason"]
    assert peak_mb(lambda: unpack_container(lying, CO, SECRET, LIMITS)) < 2


def test_a_directory_that_overstates_a_member_is_damaged() -> None:
    real = make_zip({"a.jpg": os.urandom(5000)})
    err = refused(declare(real, 2, size=9000))
    assert err.err is Err.CONTAINER_DAMAGED


def test_a_wrong_crc_is_damaged() -> None:
    err = refused(declare(make_zip({"a.jpg": os.urandom(5000)}), 2, crc=12345))
    assert err.err is Err.CONTAINER_DAMAGED and "CRC" in err.details["reason"]


def test_a_bad_signature_is_refused_before_any_media_is_inflated() -> None:
    data = make_zip({"a.jpg": os.urandom(8 * MB)}, signature="0" * 64)
    err = refused(data)
    assert err.err is Err.CONTAINER_SIGNATURE_INVALID and err.message == "Invalid signature."
    # The 8 MB photo is never inflated: only payload.json and the signature are.
    assert peak_mb(lambda: unpack_container(data, CO, SECRET, LIMITS)) < 2


def test_a_medium_without_a_hash_is_refused_before_it_is_inflated() -> None:
    data = make_zip({"a.jpg": os.urandom(8 * MB)}, hashes={"other.jpg": "0" * 64})
    err = refused(data)
    assert err.err is Err.CONTAINER_SIGNATURE_INVALID and err.details == {"media": "a.jpg"}
    assert peak_mb(lambda: unpack_container(data, CO, SECRET, LIMITS)) < 2


def test_many_tiny_members_are_refused_before_the_directory_is_parsed() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(20_000):
            zf.writestr(f"{i}.jpg", b"")
    data = buf.getvalue()
    err = refused(data)
    assert err.err is Err.CONTAINER_TOO_LARGE and err.details["entries"] == 20_000
    # zipfile alone builds 20,000 ZipInfo objects (several MB) for this.
    assert peak_mb(lambda: unpack_container(data, CO, SECRET, LIMITS)) < 1


def test_more_than_twenty_media_are_a_batch_limit() -> None:
    err = refused(make_zip({f"{i}.jpg": b"x" for i in range(21)}))
    assert err.err is Err.BATCH_LIMIT_EXCEEDED and err.details["max_media"] == 20


def test_a_nested_zip_is_a_medium_and_is_never_unpacked() -> None:
    inner = make_zip({f"m{i}.jpg": bytes(10 * MB) for i in range(3)})
    data = make_zip({"inner.jpg": inner}, zipfile.ZIP_STORED)
    peak = peak_mb(lambda: unpack_container(data, CO, SECRET, LIMITS))
    [upload], _ = unpack_container(data, CO, SECRET, LIMITS)
    assert upload.data == inner and peak < 2  # its 30 MB are never inflated


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA], ids=["bzip2", "lzma"])
def test_bzip2_and_lzma_members_are_refused_without_being_decompressed(method: int) -> None:
    # zipfile decompresses these without any bound on the output of one read.
    data = make_zip({"a.jpg": bytes(200_000)}, method)
    err = refused(data)
    assert err.err is Err.CONTAINER_DAMAGED and "not supported" in err.details["reason"]


def test_two_entries_over_the_same_bytes_are_damaged() -> None:
    # The overlapping-files bomb: many directory entries, one compressed kernel.
    data = make_zip({"a.jpg": os.urandom(5000), "b.jpg": os.urandom(5000)})
    (offset,) = struct.unpack_from("<L", data, entry(data, 2) + 42)  # a.jpg's local header
    at = entry(data, 3) + 42
    overlapping = data[:at] + struct.pack("<L", offset) + data[at + 4 :]
    err = refused(overlapping)
    assert err.err is Err.CONTAINER_DAMAGED and "overlap" in err.details["reason"]


def test_a_local_header_that_names_another_file_is_damaged() -> None:
    data = make_zip({"a.jpg": os.urandom(5000)})
    local = data.find(b"a.jpg")  # the local header's copy of the name comes first
    smuggled = data[:local] + b"z.jpg" + data[local + 5 :]
    err = refused(smuggled)
    assert err.err is Err.CONTAINER_DAMAGED and "local header" in err.details["reason"]


def test_duplicate_names_are_damaged() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("payload.json", b"{}")
        zf.writestr("a.jpg", b"1")
        with pytest.warns(UserWarning):
            zf.writestr("a.jpg", b"2")
    assert refused(buf.getvalue()).err is Err.CONTAINER_DAMAGED


def test_garbage_and_truncation_are_damaged() -> None:
    good = make_zip({"a.jpg": os.urandom(5000)})
    for data in (b"PK\x03\x04 not a zip", good[: len(good) // 2], os.urandom(3000)):
        assert refused(data).err is Err.CONTAINER_DAMAGED


def signed(payload: bytes, tok: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("payload.json", payload)
        zf.writestr("signature", hmac.new(tok.encode(), payload, "sha256").hexdigest())
        zf.writestr("a.jpg", b"x")
    return buf.getvalue()


def test_a_payload_nested_past_the_stack_is_a_damaged_container() -> None:
    err = refused(signed(b"[" * 100_000 + b"]" * 100_000, token()))
    assert err.err is Err.CONTAINER_DAMAGED
    assert err.details["reason"] == "depth"


def test_a_payload_with_a_lone_surrogate_is_a_damaged_container() -> None:
    payload = json.dumps({"session_token": "9999999999.\ud800.feed"}).encode()
    err = refused(signed(payload, "k"))
    assert err.err is Err.CONTAINER_DAMAGED
    assert err.details["reason"] == "surrogate"


@pytest.mark.parametrize(
    "forged",
    ["9" * 5000 + ".00.feed", "9999999999.\u00e9.feed", "", "1.2.3.4"],
    ids=["5000-digit-expiry", "non-ascii", "empty", "four-parts"],
)
def test_a_malformed_session_token_is_an_invalid_token(forged: str) -> None:
    payload = json.dumps({"session_token": forged}).encode()
    err = refused(signed(payload, "k"))
    assert err.err is Err.CONTAINER_SIGNATURE_INVALID
    assert err.message == "Invalid or empty Session Token."

"""Hypothesis fuzz of the Oz data-container reader (services.oz_container), through the one
entry the route uses, create_folder_from_container, on a real runtime and database.

Containers are drawn from their grammar (payload.json, signature, media; a session token that
is good, expired, another company's or garbage; hashes and signatures right or wrong; odd
member names, duplicate and directory members, every compression zipfile writes) and then
mutated: bits flipped, spans cut, and the sizes, methods and flags of the zip headers forged.
Whatever comes in, the reader makes a folder of exactly the container's media or raises a
FaceplaneError with a 4xx code; arbitrary bytes likewise.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import struct
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from faceplane.compat.oz.render import render_folder
from faceplane.errors import FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services import accounts
from faceplane.services.oz_container import create_folder_from_container, issue_session_token
from faceplane.settings import Settings
from mutations import byte_edits, mutate, splice_at

SCALE = max(1, int(os.environ.get("FACEPLANE_FUZZ_SCALE", "1")))
# zipfile warns when a drawn container repeats a member name; repeating one is the point.
pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")


def _png(seed: int) -> bytes:
    rgb = np.random.default_rng(seed).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 150, 100)).save(buf, format="JPEG")
    return buf.getvalue()


MEDIA = [_jpeg(), _png(1), b"", b"not an image", b"PK\x03\x04" + bytes(40)]
NAMES = [
    "photo1.jpg",
    "photo2.png",
    "dir/photo3.jpg",
    "../escape.jpg",
    "/abs.jpg",
    "dir/",
    "payload.json",
    "signature",
    "ünïcode.jpg",
    "x" * 300 + ".jpg",
    "a\\b.jpg",
]
COMPRESSION = [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]
TAGS = st.one_of(
    st.just(["photo_selfie"]),
    st.lists(st.sampled_from(["photo_id_front", "video_selfie_blank", "", "a" * 65]), max_size=3),
    st.sampled_from([None, "photo_selfie", 1, {"x": 1}]),
)


@dataclass
class Rig:
    """A runtime on its own data folder, a company and its session-token secret."""

    rt: Runtime
    company_id: str
    other_company_id: str


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    rt = Runtime.open(Settings(data_dir=tmp_path_factory.mktemp("ozfuzz"), workers=0))
    try:
        company = accounts.create_company(rt, "oz-fuzz")
        other = accounts.create_company(rt, "oz-fuzz-other")
        yield Rig(rt, company["id"], other["id"])
    finally:
        rt.close()


@st.composite
def session_token(draw: Any, rig: Rig) -> Any:
    """A token that is good, expired, another company's, forged, or not a token at all."""
    secret = rig.rt.store.secret
    kind = draw(st.sampled_from(["good"] * 6 + ["expired", "other", "forged", "junk"]))
    if kind == "good":
        return issue_session_token(secret, rig.company_id, 600)[0]
    if kind == "expired":
        return issue_session_token(secret, rig.company_id, -10)[0]
    if kind == "other":
        return issue_session_token(secret, rig.other_company_id, 600)[0]
    if kind == "forged":
        expires, nonce, mac = issue_session_token(secret, rig.company_id, 600)[0].split(".")
        return ".".join([draw(st.sampled_from([expires, "9" * 40, "-1", "1e9", "١٢"])), nonce, mac])
    return draw(st.one_of(st.none(), st.integers(), st.text(max_size=20), st.lists(st.integers())))


# One draw in six; Hypothesis draws the bounds of an integer range far more often than that.
rarely = st.sampled_from([False] * 5 + [True])


@st.composite
def container(draw: Any, rig: Rig) -> bytes:
    """A data container drawn from its grammar, right or wrong in each of its parts."""
    token = draw(session_token(rig))
    # Mostly well-named photos, so that most containers reach the signature and the media.
    name = st.sampled_from(NAMES[:2]) | st.sampled_from(NAMES)
    content = st.sampled_from([0, 0, 1]) | st.sampled_from(range(len(MEDIA)))
    media = draw(st.lists(st.tuples(name, content), min_size=1, max_size=4))
    files = [(name, MEDIA[i]) for name, i in media]
    hashes = {name: hashlib.sha256(data).hexdigest() for name, data in files}
    hash_kind = draw(st.sampled_from(["right"] * 5 + ["upper", "wrong", "missing", "junk"]))
    if hash_kind == "upper":
        hashes = {k: v.upper() for k, v in hashes.items()}
    elif hash_kind == "wrong":
        hashes = {k: "0" * 64 for k in hashes}
    payload: Any = {
        "session_token": token,
        "media:tags": draw(st.dictionaries(st.sampled_from(NAMES[:3]), TAGS, max_size=2)),
        "folder:meta_data": draw(
            st.sampled_from([{"case": "t-1"}, {"a": float("nan")}, {"b": -float("inf")}, None])
            | st.dictionaries(st.text(max_size=5), st.integers() | st.floats(), max_size=3)
        ),
    }
    if hash_kind == "junk":
        payload["media:sha256"] = draw(st.sampled_from([None, [], "x", {"photo1.jpg": 5}]))
    elif hash_kind != "missing":
        payload["media:sha256"] = hashes
    raw = json.dumps(payload).encode()
    if draw(rarely):
        raw = draw(st.sampled_from([b"[]", b"{", b"\xff\xfe", b'{"a": NaN}', b"", b"null"]))
    signature = hmac.new(str(token).encode(), raw, hashlib.sha256).hexdigest().encode()
    if draw(rarely):
        signature = draw(st.sampled_from([signature.upper(), b" " + signature + b"\n", b"", b"0"]))
    members = [("payload.json", raw), ("signature", signature), *files]
    members = draw(st.permutations(members))
    if draw(rarely):  # leave a part out
        del members[draw(st.integers(0, len(members) - 1))]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members:
            zf.writestr(name, data, compress_type=draw(st.sampled_from(COMPRESSION)))
        # A comment that holds a second end record: readers disagree on which one counts.
        zf.comment = draw(st.sampled_from([b""] * 4 + [b"comment", b"PK\x05\x06" + bytes(18)]))
    return buf.getvalue()


# Fields of the zip headers a forger rewrites: (signature, offset, width) for the flags, the
# compression method, the CRC, the compressed and uncompressed sizes and the name length of
# local and central headers, and the entry counts and offset of the end record.
ZIP_FIELDS = [
    (b"PK\x03\x04", 6, 2),
    (b"PK\x03\x04", 8, 2),
    (b"PK\x03\x04", 14, 4),
    (b"PK\x03\x04", 18, 4),
    (b"PK\x03\x04", 22, 4),
    (b"PK\x03\x04", 26, 2),
    (b"PK\x01\x02", 8, 2),
    (b"PK\x01\x02", 10, 2),
    (b"PK\x01\x02", 20, 4),
    (b"PK\x01\x02", 24, 4),
    (b"PK\x01\x02", 28, 2),
    (b"PK\x01\x02", 42, 4),
    (b"PK\x05\x06", 8, 2),
    (b"PK\x05\x06", 10, 2),
    (b"PK\x05\x06", 16, 4),
]


@st.composite
def forged_fields(draw: Any) -> list[tuple[bytes, int, bytes]]:
    picks = draw(st.lists(st.sampled_from(ZIP_FIELDS), min_size=1, max_size=3))
    out = []
    for marker, offset, width in picks:
        value = draw(st.sampled_from([0, 1, 8, 12, 14, 99, 0xFFFF, 0xFFFFFFFF, 2**31]))
        out.append(
            (marker, offset, struct.pack("<I" if width == 4 else "<H", value % 2 ** (8 * width)))
        )
    return out


def assert_contract(rig: Rig, data: bytes) -> None:
    """A folder of the container's media, or a FaceplaneError with a 4xx code."""
    try:
        folder = create_folder_from_container(rig.rt, rig.company_id, "fuzz", data)
    except FaceplaneError as exc:
        assert exc.err.value.http < 500, (exc.err, exc.message)
        return
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = {i.filename for i in zf.infolist() if not i.is_dir()}
    assert len(folder.media) == len(names - {"payload.json", "signature"})
    # The route answers with this rendering: it must be JSON (NaN is not).
    json.dumps(render_folder(folder), allow_nan=False)


def _profile(n: int) -> settings:
    return settings(settings.get_profile("faceplane-fuzz"), max_examples=n * SCALE)


def test_drawn_containers_make_a_folder_or_raise_a_client_error(rig: Rig, fuzz_time: Any) -> None:
    @_profile(150)
    @given(data=container(rig))
    def run(data: bytes) -> None:
        assert_contract(rig, data)

    start = time.monotonic()
    run()
    fuzz_time("Oz containers: drawn", time.monotonic() - start, f"{150 * SCALE} containers")


def test_mutated_containers_make_a_folder_or_raise_a_client_error(rig: Rig, fuzz_time: Any) -> None:
    @_profile(200)
    @given(data=container(rig), how=st.sampled_from(["bytes", "fields", "both"]), extra=st.data())
    def run(data: bytes, how: str, extra: Any) -> None:
        if how in ("fields", "both"):
            for marker, offset, word in extra.draw(forged_fields()):
                data = splice_at(data, marker, offset, word)
        if how in ("bytes", "both"):
            data = mutate(data, extra.draw(byte_edits()))
        assert_contract(rig, data)

    start = time.monotonic()
    run()
    fuzz_time("Oz containers: mutated", time.monotonic() - start, f"{200 * SCALE} containers")


def test_arbitrary_bytes_are_refused_with_a_client_error(rig: Rig, fuzz_time: Any) -> None:
    heads = st.sampled_from([b"", b"PK\x03\x04", b"PK\x05\x06", b"PK\x01\x02", b"\x1f\x8b"])

    @_profile(200)
    @given(head=heads, body=st.binary(max_size=600))
    def run(head: bytes, body: bytes) -> None:
        assert_contract(rig, head + body)

    start = time.monotonic()
    run()
    fuzz_time("Oz containers: arbitrary bytes", time.monotonic() - start, f"{200 * SCALE} inputs")


def _signed(rig: Rig, payload: bytes, token: str) -> bytes:
    signature = hmac.new(token.encode(), payload, hashlib.sha256).hexdigest()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("payload.json", payload)
        zf.writestr("signature", signature)
        zf.writestr("photo1.jpg", MEDIA[0])
    return buf.getvalue()


# Found by this fuzz (item 11); kept as regression tests.
def test_a_container_whose_session_token_has_5000_digits_is_a_client_error(rig: Rig) -> None:
    good = issue_session_token(rig.rt.store.secret, rig.company_id, 600)[0]
    token = ".".join(["9" * 5000, *good.split(".")[1:]])
    assert_contract(rig, _signed(rig, json.dumps({"session_token": token}).encode(), token))


def test_a_container_whose_payload_is_nested_100000_deep_is_a_client_error(rig: Rig) -> None:
    token = issue_session_token(rig.rt.store.secret, rig.company_id, 600)[0]
    assert_contract(rig, _signed(rig, b"[" * 100_000 + b"]" * 100_000, token))

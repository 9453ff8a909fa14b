"""Oz uploads: the payload of a folder upload, and data containers (a signed zip of
payload.json and media) with the session tokens that sign them.

A container is a zip holding ``payload.json``, the media files and ``signature``: the hex
HMAC-SHA256 of the exact bytes of payload.json, keyed with a session token from
GET /authorize/session_token/. payload.json names that ``session_token`` and gives each media
file's hex SHA-256 in ``media:sha256`` (and, as in a folder upload, ``media:tags`` and
``folder:meta_data``). A session token is bound to its company and expiry by the server
secret, so it needs no storage and never reveals the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import secrets
import struct
import time
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any

from faceplane.errors import Err, FaceplaneError
from faceplane.json_input import parse_json
from faceplane.runtime import MB, Runtime
from faceplane.services.sessions import MAX_MEDIA, Session, Upload, check_tags, create_session

# payload.json and the signature are small text; a photo is held to max_image_mb.
SMALL_MEMBERS = {"payload.json": 1 * MB, "signature": 1024}
MAX_ENTRIES = MAX_MEDIA + 2 + 42  # media, payload.json, signature, and room for folder entries
RATIO_FLOOR_BYTES = 1 * MB  # smaller members (payload.json...) may compress well: they cannot bomb
CHUNK = 64 * 1024  # compressed bytes fed to the inflater at a time
LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # a zip local file header (30 bytes)


def read_payload(payload: Any) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """The `media:tags` and `folder:meta_data` of an Oz upload payload (a folder upload's
    `payload` field, or a container's payload.json)."""
    if not isinstance(payload, dict):
        raise FaceplaneError(Err.INVALID_TYPE, "`payload` must be a JSON object.", field="payload")
    tags, meta = payload.get("media:tags") or {}, payload.get("folder:meta_data") or {}
    if not isinstance(tags, dict) or not isinstance(meta, dict):
        raise FaceplaneError(
            Err.INVALID_TYPE, "`media:tags` and `folder:meta_data` must be JSON objects."
        )
    return {key: check_tags(value, f"media:tags.{key}") for key, value in tags.items()}, meta


def _session_mac(secret: bytes, company_id: str, expires: int, nonce: str) -> str:
    msg = f"oz-session\n{company_id}\n{expires}\n{nonce}".encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def issue_session_token(secret: bytes, company_id: str, ttl_s: int) -> tuple[str, int]:
    """A session token bound to a company and an expiry by the server secret (stateless)."""
    expires, nonce = int(time.time()) + ttl_s, secrets.token_hex(8)
    return f"{expires}.{nonce}.{_session_mac(secret, company_id, expires, nonce)}", expires


def session_token(rt: Runtime, company_id: str) -> tuple[str, int]:
    """The company's session token for signing data containers, and its expiry (one HMAC with
    the server secret, no I/O; it lives as long as an access token)."""
    return issue_session_token(rt.store.secret, company_id, rt.settings.access_token_ttl_s)


def _check_session_token(secret: bytes, company_id: str, token: Any) -> str:
    """The token when it is this company's and unexpired, else Oz's container error (14)."""
    # ASCII only (a lone surrogate cannot be encoded for the HMAC), and an expiry of at most
    # 12 digits (int() refuses over 4,300).
    parts = token.split(".") if isinstance(token, str) and token.isascii() else []
    valid = (
        len(parts) == 3
        # An expiry is a Unix time: past 12 digits int() costs, and past 4300 it raises.
        and 0 < len(parts[0]) <= 12
        and parts[0].isascii()
        and parts[0].isdigit()
        and int(parts[0]) >= time.time()
        and hmac.compare_digest(
            _session_mac(secret, company_id, int(parts[0]), parts[1]).encode(), parts[2].encode()
        )
    )
    if not valid:
        raise FaceplaneError(Err.CONTAINER_SIGNATURE_INVALID, "Invalid or empty Session Token.")
    return str(token)


def _damaged(reason: str, **details: Any) -> FaceplaneError:
    return FaceplaneError(Err.CONTAINER_DAMAGED, "Container is damaged.", reason=reason, **details)


def _too_large(message: str, **details: Any) -> FaceplaneError:
    return FaceplaneError(Err.CONTAINER_TOO_LARGE, message, **details)


@dataclass(frozen=True)
class ContainerLimits:
    """What a container may declare and inflate to, in bytes (and the ratio of the two)."""

    max_total_bytes: int
    max_media_bytes: int
    max_ratio: float

    @classmethod
    def of(cls, rt: Runtime) -> ContainerLimits:
        """The limits set by the runtime's settings (a photo is held to max_image_mb)."""
        return cls(
            int(rt.settings.oz_container_max_uncompressed_mb * MB),
            rt.limits.max_bytes,
            rt.settings.oz_container_max_ratio,
        )


def _check_declared(members: list[zipfile.ZipInfo], limits: ContainerLimits) -> None:
    """Refuse, before anything is inflated, a container whose central directory declares more
    than the limits: per member, in total, or in compression ratio."""
    media = [i for i in members if i.filename not in SMALL_MEMBERS]
    if len(media) > MAX_MEDIA:
        raise FaceplaneError(
            Err.BATCH_LIMIT_EXCEEDED,
            f"A container holds at most {MAX_MEDIA} media.",
            media=len(media),
            max_media=MAX_MEDIA,
        )
    for info in members:
        cap = SMALL_MEMBERS.get(info.filename, limits.max_media_bytes)
        if info.file_size > cap:
            # A photo over the image limit gets the code it would get outside a container.
            err = Err.CONTAINER_TOO_LARGE if info.filename in SMALL_MEMBERS else None
            raise FaceplaneError(
                err or Err.IMAGE_FILE_TOO_LARGE,
                f"`{info.filename}` declares {info.file_size} bytes; the limit is {cap}.",
                media=info.filename,
                size_bytes=info.file_size,
                max_bytes=cap,
            )
        if info.file_size > RATIO_FLOOR_BYTES and (
            info.file_size > limits.max_ratio * max(info.compress_size, 1)
        ):
            raise _too_large(
                f"`{info.filename}` inflates more than {limits.max_ratio:g} times.",
                media=info.filename,
                size_bytes=info.file_size,
                compressed_bytes=info.compress_size,
                max_ratio=limits.max_ratio,
            )
    total = sum(i.file_size for i in members)
    packed = sum(i.compress_size for i in members)
    if total > limits.max_total_bytes:
        raise _too_large(
            f"The container inflates to {total} bytes; the limit is {limits.max_total_bytes}.",
            size_bytes=total,
            max_bytes=limits.max_total_bytes,
        )
    if total > RATIO_FLOOR_BYTES and total > limits.max_ratio * max(packed, 1):
        raise _too_large(
            f"The container inflates more than {limits.max_ratio:g} times.",
            size_bytes=total,
            compressed_bytes=packed,
            max_ratio=limits.max_ratio,
        )


def _data_start(view: memoryview, info: zipfile.ZipInfo) -> int:
    """Where a member's compressed bytes begin, after its local header (checked against the
    central directory: a member whose two headers disagree is a smuggling attempt)."""
    offset = info.header_offset
    header = bytes(view[offset : offset + LOCAL_HEADER.size])
    if len(header) < LOCAL_HEADER.size:
        raise _damaged("a local header lies past the end", media=info.filename)
    magic, *_, name_len, extra_len = LOCAL_HEADER.unpack(header)
    name = bytes(view[offset + LOCAL_HEADER.size : offset + LOCAL_HEADER.size + name_len])
    encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
    if magic != b"PK\x03\x04" or name.decode(encoding, "replace") != info.filename:
        raise _damaged("a local header does not match the central directory", media=info.filename)
    return offset + LOCAL_HEADER.size + name_len + extra_len


def _members(data: bytes, limits: ContainerLimits) -> dict[str, tuple[zipfile.ZipInfo, int]]:
    """The files of the zip's central directory, each with where its data starts; nothing is
    inflated. A directory too long, a member declared too big, overlapping or encrypted
    members and methods other than stored and deflated are refused here."""
    # Each central directory entry starts with this magic, and zipfile checks it on every
    # entry it parses: counting it bounds what zipfile builds (a 20 MB body could otherwise
    # hold 400,000 tiny entries, i.e. hundreds of MB of ZipInfo objects).
    entries = data.count(b"PK\x01\x02")
    if entries > MAX_ENTRIES:
        raise _too_large(
            f"A container holds at most {MAX_ENTRIES} entries.",
            entries=entries,
            max_entries=MAX_ENTRIES,
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
    except Exception as exc:  # BadZipFile, NotImplementedError, struct and Unicode errors...
        raise _damaged(str(exc)[:200]) from None
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise _damaged("two members have the same name")
    for info in infos:
        if info.flag_bits & 0x1:
            raise _damaged("encrypted members are not supported", media=info.filename)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            # bzip2 and LZMA cannot be inflated with a bound on their output in zipfile.
            raise _damaged(
                f"compression method {info.compress_type} is not supported (stored or "
                "deflated only)",
                media=info.filename,
            )
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise _damaged("a stored member's two sizes differ", media=info.filename)
    _check_declared(infos, limits)
    view, found = memoryview(data), dict[str, tuple[zipfile.ZipInfo, int]]()
    end = 0
    for info in sorted(infos, key=lambda i: i.header_offset):
        if info.header_offset < end:
            raise _damaged("members overlap", media=info.filename)
        start = _data_start(view, info)
        end = start + info.compress_size
        if end > len(view):
            raise _damaged("a member lies past the end", media=info.filename)
        found[info.filename] = (info, start)
    return found


def _inflate(view: memoryview, info: zipfile.ZipInfo, start: int) -> bytes:
    """A member's bytes, inflated in bounded steps: never more than its declared size is
    produced, and a member that would give more (or less, or other bytes) is damaged."""
    size, packed = info.file_size, view[start : start + info.compress_size]
    if info.compress_type == zipfile.ZIP_STORED:
        out = bytes(packed)
    else:
        inflater, parts, produced = zlib.decompressobj(-zlib.MAX_WBITS), [], 0
        try:
            for pos in range(0, len(packed), CHUNK):
                data = bytes(packed[pos : pos + CHUNK])
                while data:
                    # At most one byte past the declared size: enough to prove the lie.
                    part = inflater.decompress(data, min(size - produced + 1, CHUNK * 4))
                    produced += len(part)
                    if produced > size:
                        raise _damaged(
                            "a member inflates past its declared size", media=info.filename
                        )
                    parts.append(part)
                    data = inflater.unconsumed_tail
                    if inflater.eof:
                        break
                if inflater.eof:
                    break
        except zlib.error as exc:
            raise _damaged(str(exc)[:200], media=info.filename) from None
        if not inflater.eof:
            raise _damaged("a member's data ends early", media=info.filename)
        out = b"".join(parts)
    if len(out) != size or zlib.crc32(out) != info.CRC:
        raise _damaged("a member's size or CRC is wrong", media=info.filename)
    return out


def unpack_container(
    data: bytes, company_id: str, secret: bytes, limits: ContainerLimits
) -> tuple[list[Upload], dict[str, Any]]:
    """Verify and unzip a container; return its media and its payload.

    In this order, so a hostile container costs little: the central directory (declared sizes,
    ratio, entries; nothing inflated), then payload.json and signature (small, capped), the
    session token and the HMAC, and only then the media, each inflated with a hard cap at its
    declared size and checked against its SHA-256 from payload.json.
    """
    if not data:
        raise FaceplaneError(Err.CONTAINER_MISSING, "No data container provided.")
    view, members = memoryview(data), _members(data, limits)
    if "payload.json" not in members:
        raise FaceplaneError(Err.CONTAINER_PAYLOAD_MISSING, "Missing payload.json.")
    raw = _inflate(view, *members.pop("payload.json"))
    signed = members.pop("signature", None)
    signature = _inflate(view, *signed).strip() if signed else b""
    try:
        payload = parse_json(raw, "payload.json")
    except FaceplaneError as exc:
        if exc.err is Err.PAYLOAD_TOO_LARGE:
            raise  # too many values: refused as such
        # Not JSON, nested past the stack, a NUL or a lone surrogate: Oz's "damaged" (5).
        raise _damaged(str(exc.details.get("reason", "payload")), member="payload.json") from exc
    if not isinstance(payload, dict):
        raise FaceplaneError(Err.CONTAINER_DAMAGED, "Container is damaged: bad payload.json.")
    if not members:
        raise FaceplaneError(Err.CONTAINER_NO_MEDIA, "No media have been added into container.")
    token = _check_session_token(secret, company_id, payload.get("session_token"))
    good = hmac.new(token.encode(), raw, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(good, signature):
        raise FaceplaneError(Err.CONTAINER_SIGNATURE_INVALID, "Invalid signature.")
    hashes = payload.get("media:sha256")
    hashes = hashes if isinstance(hashes, dict) else {}
    uploads = []
    # Zip order, as the client packed them.
    for name, (info, start) in sorted(members.items(), key=lambda m: m[1][0].header_offset):
        expected = str(hashes.get(name, "")).lower().encode()
        if len(expected) != 64:  # no hash to check it against: refuse before inflating
            raise FaceplaneError(Err.CONTAINER_SIGNATURE_INVALID, "Invalid hash.", media=name)
        content = _inflate(view, info, start)
        if not hmac.compare_digest(hashlib.sha256(content).hexdigest().encode(), expected):
            raise FaceplaneError(Err.CONTAINER_SIGNATURE_INVALID, "Invalid hash.", media=name)
        uploads.append(Upload(name, name.rsplit("/", 1)[-1], content))
    return uploads, payload


def create_folder(
    rt: Runtime, company_id: str, creator: str, uploads: list[Upload], payload: Any
) -> Session:
    """A session (an Oz folder) of uploaded media, tagged and described by an Oz payload."""
    tags, meta = read_payload(payload)
    unknown = sorted(set(tags) - {u.key for u in uploads})
    if unknown:
        raise FaceplaneError(
            Err.INVALID_ARGUMENT,
            "`media:tags` names files that were not sent.",
            field="media:tags",
            media=unknown,
        )
    return create_session(rt, company_id, creator, uploads, tags, meta)


def create_folder_from_container(
    rt: Runtime, company_id: str, creator: str, data: bytes
) -> Session:
    """A session (an Oz folder) of the media of a verified data container."""
    uploads, payload = unpack_container(data, company_id, rt.store.secret, ContainerLimits.of(rt))
    return create_folder(rt, company_id, creator, uploads, payload)

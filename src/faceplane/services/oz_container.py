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
import time
import zipfile
from typing import Any

from faceplane.errors import Err, FaceplaneError
from faceplane.json_input import NOT_JSON, parse_json
from faceplane.runtime import Runtime
from faceplane.services.sessions import MAX_MEDIA, Session, Upload, check_tags, create_session


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


def _check_session_token(secret: bytes, company_id: str, token: Any) -> str:
    """The token when it is this company's and unexpired, else Oz's container error (14)."""
    parts = token.split(".") if isinstance(token, str) else []
    valid = (
        len(parts) == 3
        # An expiry is a Unix time: past 12 digits int() costs, and past 4300 it raises.
        and len(parts[0]) <= 12
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


def _unzip(data: bytes, max_bytes: int) -> dict[str, bytes]:
    """The files of a zip by name; anything unreadable is a damaged container."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            # Declared sizes bound what is read (zipfile stops at them): no zip bombs.
            if len(infos) > MAX_MEDIA + 2 or sum(i.file_size for i in infos) > max_bytes:
                raise FaceplaneError(
                    Err.PAYLOAD_TOO_LARGE,
                    f"A container holds at most {MAX_MEDIA} media and {max_bytes} bytes.",
                )
            return {i.filename: zf.read(i) for i in infos}
    except FaceplaneError:
        raise
    except Exception as exc:  # BadZipFile, zlib/lzma errors, bad CRC, encryption…
        raise FaceplaneError(
            Err.CONTAINER_DAMAGED, "Container is damaged.", reason=str(exc)[:200]
        ) from None


def unpack_container(
    data: bytes, company_id: str, secret: bytes, max_bytes: int
) -> tuple[list[Upload], dict[str, Any]]:
    """Unzip and verify a container (payload.json, media, session token, signature, hashes);
    return its media and its payload."""
    if not data:
        raise FaceplaneError(Err.CONTAINER_MISSING, "No data container provided.")
    files = _unzip(data, max_bytes)
    raw = files.pop("payload.json", None)
    if raw is None:
        raise FaceplaneError(Err.CONTAINER_PAYLOAD_MISSING, "Missing payload.json.")
    signature = files.pop("signature", b"").strip()
    try:
        payload = parse_json(raw, "payload.json")
    except FaceplaneError as exc:
        if exc.details.get("reason") not in NOT_JSON:
            raise  # too deep, too large, or text no encoder takes: refused as such
        payload = None
    if not isinstance(payload, dict):
        raise FaceplaneError(Err.CONTAINER_DAMAGED, "Container is damaged: bad payload.json.")
    if not files:
        raise FaceplaneError(Err.CONTAINER_NO_MEDIA, "No media have been added into container.")
    token = _check_session_token(secret, company_id, payload.get("session_token"))
    good = hmac.new(token.encode(), raw, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(good, signature):
        raise FaceplaneError(Err.CONTAINER_SIGNATURE_INVALID, "Invalid signature.")
    hashes = payload.get("media:sha256")
    hashes = hashes if isinstance(hashes, dict) else {}
    for name, content in files.items():
        expected = str(hashes.get(name, "")).lower().encode()
        if not hmac.compare_digest(hashlib.sha256(content).hexdigest().encode(), expected):
            raise FaceplaneError(Err.CONTAINER_SIGNATURE_INVALID, "Invalid hash.", media=name)
    uploads = [Upload(name, name.rsplit("/", 1)[-1], content) for name, content in files.items()]
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
    max_bytes = rt.limits.max_bytes * MAX_MEDIA
    uploads, payload = unpack_container(data, company_id, rt.store.secret, max_bytes)
    return create_folder(rt, company_id, creator, uploads, payload)

"""Blob storage (uploads, results, thumbnails) on the local filesystem, with signed URLs."""

from __future__ import annotations

import hashlib
import hmac
import mimetypes
import os
import secrets
import shutil
import time
from pathlib import Path

from faceplane.errors import Err, FaceplaneError
from faceplane.store.modes import make_private_dirs, write_private


class LocalBlobs:
    """Blobs as files under one root folder; keys are relative paths like `tasks/ID/x.jpg`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.parent.mkdir(parents=True, exist_ok=True)
        make_private_dirs(root, root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise FaceplaneError(Err.RESOURCE_NOT_FOUND, "No such blob.", key=key)
        return path

    def put(self, key: str, data: bytes) -> str:
        """Store `data` under `key` atomically; return the key."""
        path = self._path(key)
        make_private_dirs(path.parent, self.root)
        # A temporary name of its own per writer: two puts of one key must not share it.
        tmp = path.with_name(f"{path.name}.{secrets.token_hex(8)}.part")
        write_private(tmp, data)  # 0600 from the start: blobs are faces
        os.replace(tmp, path)
        return key

    def get(self, key: str) -> bytes:
        """The bytes under `key`, or RESOURCE_NOT_FOUND."""
        path = self._path(key)
        if not path.is_file():
            raise FaceplaneError(Err.RESOURCE_NOT_FOUND, "No such blob.", key=key)
        return path.read_bytes()

    def delete_prefix(self, prefix: str) -> None:
        """Delete every blob under a folder-like prefix (for real: files are removed)."""
        path = self._path(prefix)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()


def content_type(key: str) -> str:
    """The MIME type of a blob from its key's extension."""
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


def sign_blob(secret: bytes, key: str, company_id: str, expires: int) -> str:
    """HMAC-SHA256 over key, company_id and expiry: a URL bound to its tenant and its lifetime."""
    msg = f"{key}\n{company_id}\n{expires}".encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def blob_url(secret: bytes, key: str, company_id: str, ttl_s: int, base: str = "") -> str:
    """A signed, expiring URL for a blob."""
    expires = int(time.time()) + ttl_s
    sig = sign_blob(secret, key, company_id, expires)
    return f"{base}/v1/blobs/{key}?company_id={company_id}&expires={expires}&sig={sig}"


def verify_blob(secret: bytes, key: str, company_id: str, expires: int, sig: str) -> None:
    """Raise unless the signature is right and unexpired (constant-time comparison)."""
    good = sign_blob(secret, key, company_id, expires)
    # Bytes, not str: compare_digest raises TypeError on a non-ASCII str (any query text).
    if not hmac.compare_digest(good.encode(), sig.encode()):
        raise FaceplaneError(Err.SIGNATURE_INVALID, "The blob URL signature is invalid.")
    if expires < time.time():
        raise FaceplaneError(Err.RESOURCE_EXPIRED, "The blob URL has expired.")

"""Storage: the metadata database and blobs, opened together from settings."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

from sqlalchemy import Engine

from faceplane.settings import Settings
from faceplane.store.blobs import LocalBlobs
from faceplane.store.db import make_engine, sqlite_url
from faceplane.store.indexes import IndexRegistry
from faceplane.store.modes import FILE_MODE, make_private_dirs, tighten
from faceplane.store.schema import upgrade_schema


@dataclass
class Store:
    """What must last: the database (the truth), the blobs, and the server's secret."""

    db: Engine
    blobs: LocalBlobs
    secret: bytes
    indexes: IndexRegistry

    @classmethod
    def open(cls, settings: Settings) -> Store:
        """Open the database (upgraded to the newest schema) and the blob folder of settings;
        the data folder is made private to its owner (folders 0700, files 0600)."""
        settings.data_dir.parent.mkdir(parents=True, exist_ok=True)
        make_private_dirs(settings.data_dir, settings.data_dir)
        tighten(settings.data_dir)  # a data folder an older version left world-readable
        engine = make_engine(database_url(settings))
        upgrade_schema(engine)
        indexes = IndexRegistry(settings.data_dir / "index", settings.index_ann_threshold)
        return cls(engine, LocalBlobs(settings.data_dir / "blobs"), _secret(settings), indexes)


def database_url(settings: Settings) -> str:
    """FACEPLANE_DATABASE_URL, else the SQLite file in the data folder."""
    return settings.database_url or sqlite_url(settings.data_dir)


def _secret(settings: Settings) -> bytes:
    """The configured secret, else one generated once and kept (0600) in the data folder."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path = settings.data_dir / "secret.key"
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:  # another process made it first
            pass
        else:
            os.fchmod(fd, FILE_MODE)  # whatever the umask
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()

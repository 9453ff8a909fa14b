"""File modes of the data folder: faces and their metadata are personal data, so everything the
server writes there is its owner's alone (files 0600, folders 0700), whatever the umask.

The mode is set when a file or folder is made (``os.open`` and ``os.mkdir`` with the mode, then
an explicit chmod, because the umask can only take bits away and a mode must not depend on it),
and a data folder written by an older version is tightened when it is opened.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import BinaryIO

FILE_MODE = 0o600
DIR_MODE = 0o700

log = logging.getLogger("faceplane.store")


def make_private_dirs(path: Path, top: Path) -> None:
    """Create `path` and the missing folders from `top` (included) down to it, each 0700."""
    missing = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current == top or current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, DIR_MODE)
        except FileExistsError:  # another writer made it first (with this same mode)
            continue
        os.chmod(folder, DIR_MODE)


def open_private(path: Path) -> BinaryIO:
    """Open `path` for writing (created or truncated) as a file only its owner can read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # the file may have existed, or the umask cut the mode
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` as a file only its owner can read."""
    with open_private(path) as fh:
        fh.write(data)


def make_private(path: Path) -> None:
    """Give an existing file mode 0600 (a file another library made, like a saved index)."""
    os.chmod(path, FILE_MODE)


def _chmod(path: str | Path, mode: int) -> None:
    try:
        os.chmod(path, mode)
    except OSError as exc:  # a file of another owner: say so, and keep the server up
        log.warning("could not make %s private: %s", path, exc)


def tighten(root: Path) -> None:
    """Make an existing folder private: its files 0600 and its folders 0700, itself last.

    A sub-folder already 0700 is taken as done and not walked (this server made it, or an
    earlier tightening finished it): opening a store does not stat a million blobs each time.
    Whatever it holds, no one else can reach through it. Symbolic links are left alone.
    """
    try:
        with os.scandir(root) as entries:
            for entry in entries:
                if entry.is_symlink():
                    continue
                mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
                if entry.is_dir(follow_symlinks=False):
                    if mode != DIR_MODE:
                        tighten(Path(entry.path))
                elif mode != FILE_MODE:
                    _chmod(entry.path, FILE_MODE)
    except OSError as exc:
        log.warning("could not make %s private: %s", root, exc)
    _chmod(root, DIR_MODE)

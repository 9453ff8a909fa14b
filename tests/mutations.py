"""Byte-level mutations for the fuzz tests: flips, overwrites, cuts, repeats, forged fields.

A mutation is drawn as data (kind, position, value) and applied by `mutate`, so Hypothesis can
draw, print and replay it.
"""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import strategies as st

KINDS = ("flip", "byte", "cut", "repeat", "truncate", "word")


@st.composite
def byte_edit(draw: Any) -> tuple[str, int, int]:
    """One edit: (kind, position, value); `mutate` takes the position modulo the length, so
    what is drawn never depends on the file (which may differ between runs: a fresh token)."""
    kind = draw(st.sampled_from(KINDS))
    # Headers are where decoders branch; half the edits land in the first 64 bytes.
    pos = draw(st.integers(0, 63) | st.integers(0, 2**20))
    return kind, pos, draw(st.integers(0, 2**32 - 1))


def byte_edits(max_size: int = 6) -> st.SearchStrategy[list[tuple[str, int, int]]]:
    """One to `max_size` edits."""
    return st.lists(byte_edit(), min_size=1, max_size=max_size)


def mutate(data: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    """Apply the edits in order; every position is taken modulo the current length."""
    buf = bytearray(data)
    for kind, pos, value in edits:
        if not buf:
            break
        pos %= len(buf)
        if kind == "flip":
            buf[pos] ^= 1 << (value % 8)
        elif kind == "byte":
            buf[pos] = value & 0xFF
        elif kind == "cut":
            del buf[pos : pos + 1 + value % 64]
        elif kind == "repeat":
            buf[pos:pos] = buf[pos : pos + 1 + value % 64] * (1 + value % 3)
        elif kind == "truncate":
            del buf[pos:]
        else:  # a 16- or 32-bit field overwritten: the sizes and offsets of every header
            order = ">" if value & 2 else "<"  # PNG and JPEG are big-endian; zip and BMP little
            word = struct.pack(
                order + ("I" if value & 1 else "H"), value if value & 1 else value & 0xFFFF
            )
            buf[pos : pos + len(word)] = word
    return bytes(buf)


def splice_at(data: bytes, marker: bytes, offset: int, word: bytes) -> bytes:
    """Overwrite `word` at `offset` after each occurrence of `marker` (a header signature)."""
    buf = bytearray(data)
    start = buf.find(marker)
    while start != -1:
        at = start + offset
        buf[at : at + len(word)] = word
        start = buf.find(marker, start + 1)
    return bytes(buf)

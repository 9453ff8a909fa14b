"""The four vendors' error tables, kept as data transcribed from the specification seeds.

Each vendor has one tab-separated file beside this module, with a header row:

- ``photo.tsv``: ``status`` (Error | SecurityError), ``err_code``, ``description``
- ``ailab.tsv``: ``http_status``, ``code`` (``error_detail.code``), ``description``
- ``linkface.tsv``: ``http_status``, ``status``, ``description`` (translated from Chinese)
- ``oz.tsv``: ``error_code``, ``name``, ``description`` (the general codes, then the
  data-container codes, which reuse 3, 4 and 5)

Spelling is exact: a contract test checks every row against the seed text.
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from importlib import resources

__all__ = ["VENDORS", "VendorCode", "load_vendor_table"]

VENDORS: tuple[str, ...] = ("photo", "ailab", "linkface", "oz")

# Which TSV column holds the code, and which (if any) the HTTP status, the Pho.to status
# and the name. Keeping this as data lets each file keep its vendor's own column names.
_COLUMNS: dict[str, dict[str, str]] = {
    "photo": {"code": "err_code", "status": "status"},
    "ailab": {"code": "code", "http_status": "http_status"},
    "linkface": {"code": "status", "http_status": "http_status"},
    "oz": {"code": "error_code", "name": "name"},
}


@dataclass(frozen=True)
class VendorCode:
    """One row of a vendor's error table."""

    vendor: str
    code: str
    http_status: int | None
    description: str
    status: str | None = None  # Pho.to only: "Error" or "SecurityError"
    name: str | None = None  # Oz only: the error's name ("INVALID VALUE") or message


@functools.cache
def _read_table(vendor: str) -> tuple[VendorCode, ...]:
    text = resources.files(__name__).joinpath(f"{vendor}.tsv").read_text(encoding="utf-8")
    columns = _COLUMNS[vendor]
    rows = []
    reader = csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
    for record in reader:
        http = columns.get("http_status")
        status = columns.get("status")
        name = columns.get("name")
        rows.append(
            VendorCode(
                vendor=vendor,
                code=record[columns["code"]],
                http_status=int(record[http]) if http else None,
                description=record["description"],
                status=record[status] if status else None,
                name=record[name] if name else None,
            )
        )
    return tuple(rows)


def load_vendor_table(vendor: str) -> list[VendorCode]:
    """Return the rows of one vendor's error table, in the seed's order."""
    if vendor not in _COLUMNS:
        raise ValueError(f"unknown vendor {vendor!r}; expected one of {', '.join(VENDORS)}")
    return list(_read_table(vendor))

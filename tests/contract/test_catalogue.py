"""The error catalogue against the vendor tables, and the vendor tables against the seeds."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from faceplane.catalogue import VENDORS, VendorCode, load_vendor_table
from faceplane.errors import (
    Err,
    FaceplaneError,
    render_errors_markdown,
    split_vendor_code,
    vendor_home,
)

REPO = Path(__file__).resolve().parents[2]

SANE_HTTP = {400, 401, 403, 404, 405, 406, 409, 410, 413, 415, 422, 429, 500, 501, 502, 503, 504}

# Which seed file specifies which vendor (see ../shared/seeds/README.md).
SEED_PREFIX = {"photo": "000_", "ailab": "001_", "oz": "002_", "linkface": "003_"}
OZ_RUSSIAN_PREFIX = "004_"

TABLES: dict[str, list[VendorCode]] = {vendor: load_vendor_table(vendor) for vendor in VENDORS}
ROWS = [
    pytest.param(row, id=f"{vendor}:{row.code}:{i}")
    for vendor, rows in TABLES.items()
    for i, row in enumerate(rows)
]
MEMBERS = [pytest.param(err, id=err.name) for err in Err]


def seeds_dir() -> Path | None:
    """FACEPLANE_SEEDS, else ../shared/seeds beside the repository, if it exists."""
    env = os.environ.get("FACEPLANE_SEEDS")
    path = Path(env) if env else REPO.parent / "shared" / "seeds"
    return path if path.is_dir() else None


def seed_text(prefix: str) -> str:
    """The text of one seed document, or a visible skip when the seeds are absent."""
    folder = seeds_dir()
    if folder is None:
        pytest.skip("seeds absent: set FACEPLANE_SEEDS or provide ../shared/seeds")
    matches = sorted(folder.glob(f"{prefix}*.txt"))
    assert matches, f"no seed {prefix}*.txt in {folder}"
    return matches[0].read_text(encoding="utf-8")


# ---- every vendor code has a home, every member's vendor code exists ----------------------------


@pytest.mark.parametrize("row", ROWS)
def test_every_vendor_code_has_a_home(row: VendorCode) -> None:
    home = vendor_home(row.vendor, row.code)
    assert home is not None, (
        f"{row.vendor} code {row.code!r} ({row.description}) has no home in Err: give it to a "
        "member as its vendor value or in `also`"
    )


@pytest.mark.parametrize("err", MEMBERS)
def test_member_vendor_values_exist_in_the_vendor_tables(err: Err) -> None:
    photo = {(row.status, row.code) for row in TABLES["photo"]}
    status, number = err.photo
    assert (status, str(number)) in photo, f"{err.name}: Pho.to {err.photo} is not in photo.tsv"
    for vendor in ("ailab", "linkface", "oz"):
        codes = {row.code for row in TABLES[vendor]}
        code = err.vendor_code(vendor)
        assert code in codes, f"{err.name}: {vendor} code {code!r} is not in {vendor}.tsv"


@pytest.mark.parametrize("err", MEMBERS)
def test_also_entries_name_real_vendor_codes(err: Err) -> None:
    for entry in err.also:
        vendor, code = split_vendor_code(entry)
        assert code in {row.code for row in TABLES[vendor]}, f"{err.name}: {entry} is not a code"
        assert vendor_home(vendor, code) is err, f"{err.name}: {entry} has another home"


@pytest.mark.parametrize("err", MEMBERS)
def test_an_also_entry_repeating_the_own_code_is_needed(err: Err) -> None:
    # Listing one's own code in `also` only makes sense to take it from an earlier member.
    earlier = list(Err)[: list(Err).index(err)]
    for entry in err.also:
        vendor, code = split_vendor_code(entry)
        if code == err.vendor_code(vendor):
            assert any(e.vendor_code(vendor) == code for e in earlier), (
                f"{err.name}: {entry} is its own code already; drop it from `also`"
            )


def test_no_vendor_code_is_claimed_twice() -> None:
    seen: dict[str, str] = {}
    for err in Err:
        for entry in err.also:
            assert entry not in seen, f"{entry} is in the `also` of {seen[entry]} and {err.name}"
            seen[entry] = err.name


@pytest.mark.parametrize(
    ("vendor", "code", "home"),
    [
        ("linkface", "INVALID_ARGUMENT", Err.INVALID_ARGUMENT),
        ("linkface", "Bad Request", Err.INVALID_ARGUMENT),
        ("linkface", "UNAUTHORIZED", Err.AUTH_INVALID),
        ("linkface", "NOT_FOUND", Err.ROUTE_NOT_FOUND),
        ("linkface", "OUT_OF_QUOTA", Err.QUOTA_EXCEEDED),
        ("linkface", "INTERNAL_ERROR", Err.INTERNAL),
        ("oz", "0", Err.INTERNAL),
        ("oz", "3", Err.MISSING_ARGUMENT),
        ("oz", "4", Err.INVALID_ARGUMENT),
        ("oz", "10", Err.RESOURCE_NOT_FOUND),
        ("oz", "14", Err.CONTAINER_SIGNATURE_INVALID),
        ("photo", "-1", Err.PROCESSING_FAILED),
        ("photo", "-3", Err.INVALID_ARGUMENT),
        ("photo", "-4", Err.INTERNAL),
        ("photo", "-10", Err.IMAGE_FORMAT_UNSUPPORTED),
        ("photo", "-1002", Err.IMAGE_DIMENSION_TOO_SMALL),
        ("photo", "606", Err.APP_NOT_FOUND),
        ("photo", "609", Err.APP_REQUEST_LIMIT),
        ("photo", "612", Err.TASK_NOT_FOUND),
        ("photo", "614", Err.PARAMETERS_EMPTY),
        ("ailab", "ERROR_NOT_ENOUGH_CREDITS", Err.CREDITS_INSUFFICIENT),
        ("ailab", "ERROR_RESOURCE_NOT_FOUND", Err.RESOURCE_NOT_FOUND),
        ("ailab", "UNSUPPORTED_PARAMETER_VALUES", Err.INVALID_ARGUMENT),
        ("ailab", "ERROR_MISSING_LIMIT_PARAMETER", Err.MISSING_ARGUMENT),
    ],
)
def test_shared_vendor_codes_have_the_intended_home(vendor: str, code: str, home: Err) -> None:
    assert vendor_home(vendor, code) is home


def test_unknown_vendor_code_has_no_home() -> None:
    assert vendor_home("ailab", "NOT_A_CODE") is None
    assert vendor_home("nobody", "4") is None


# ---- the members themselves ---------------------------------------------------------------------


@pytest.mark.parametrize("err", MEMBERS)
def test_member_is_well_formed(err: Err) -> None:
    assert re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*", err.name), err.name
    assert err.code == err.name
    assert err.http in SANE_HTTP, f"{err.name}: HTTP {err.http}"
    assert err.message.strip() == err.message and err.message, f"{err.name}: empty message"
    assert err.message[0].isupper() and err.message.endswith("."), f"{err.name}: {err.message!r}"
    assert ". " not in err.message, f"{err.name}: the message should be one sentence"
    assert err.photo[0] in {"Error", "SecurityError"}


def test_no_member_is_an_alias_of_another() -> None:
    # Enum merges members with equal values; two identical specs would silently become one.
    assert len(Err.__members__) == len(list(Err))


def test_faceplane_error_defaults_to_the_member_message() -> None:
    exc = FaceplaneError(Err.FACE_NOT_FOUND)
    assert exc.err is Err.FACE_NOT_FOUND
    assert exc.message == Err.FACE_NOT_FOUND.message
    assert exc.details == {}
    assert str(exc) == f"FACE_NOT_FOUND: {Err.FACE_NOT_FOUND.message}"


def test_faceplane_error_keeps_a_specific_message_and_details() -> None:
    exc = FaceplaneError(
        Err.IMAGE_FILE_TOO_LARGE, "The image is 12 MB; the limit is 10 MB.", size=12
    )
    assert exc.message == "The image is 12 MB; the limit is 10 MB."
    assert exc.details == {"size": 12}


# ---- the vendor tables against the seed text ----------------------------------------------------


@pytest.mark.parametrize("row", ROWS)
def test_vendor_row_appears_verbatim_in_its_seed(row: VendorCode) -> None:
    text = seed_text(SEED_PREFIX[row.vendor])
    if row.vendor == "photo":
        security, _, errors = text.partition("Error codes for Error")
        section = security.partition("Error codes for SecurityError")[2]
        section = section if row.status == "SecurityError" else errors
        assert f"\n{row.code} {row.description}\n" in section + "\n", row
    elif row.vendor == "ailab":
        # The seed's table cells run together: "400PROCESSING_FAILUREProcessing failed."
        assert f"{row.http_status}{row.code}{row.description}" in text, row
    elif row.vendor == "linkface":
        assert re.search(rf"^{row.http_status} {re.escape(row.code)} ", text, re.M), row
    else:
        assert row.name is not None
        for part in row.name.split(" / "):
            assert part in text, f"oz {row.code}: {part!r} is not in the seed"
        assert row.description in text, f"oz {row.code}: description is not in the seed"
        general = re.search(rf"^[\s•]*{row.code} [-–] {re.escape(row.name)}\b", text, re.M)
        container = re.search(rf"^\s*{row.code}\s*$", text, re.M)
        assert general or container, f"oz {row.code} {row.name!r} is not a row of the seed"


def test_photo_table_has_every_seed_row() -> None:
    text = seed_text(SEED_PREFIX["photo"]).partition("Error codes for SecurityError")[2]
    seed = set(re.findall(r"^(-?\d+) ", text, re.M))
    assert seed == {row.code for row in TABLES["photo"]}


def test_ailab_table_has_every_seed_row() -> None:
    text = seed_text(SEED_PREFIX["ailab"])
    detail, _, code_str = text.partition("Parsing of error_code_str")
    detail = detail.partition("Parsing of error_detail.code")[2]
    seed_rows = re.findall(r"^\s*\d{3}[A-Z].*$", detail, re.M)
    assert len(seed_rows) == len(TABLES["ailab"])
    # The deprecated error_code_str table must add no code the first table lacks.
    keys = {f"{row.http_status}{row.code}" for row in TABLES["ailab"]}
    for line in re.findall(r"^[\s•]*(\d{3}[A-Z].*)$", code_str, re.M):
        assert any(line.startswith(key) for key in keys), f"error_code_str row not in table: {line}"


def test_linkface_table_has_every_seed_row() -> None:
    seed_rows = re.findall(r"^\d{3} \S", seed_text(SEED_PREFIX["linkface"]), re.M)
    assert len(seed_rows) == len(TABLES["linkface"])


def test_oz_table_has_every_seed_row() -> None:
    text = seed_text(SEED_PREFIX["oz"])
    general = set(re.findall(r"^[\s•]*(\d+) [-–] [A-Z]", text, re.M))
    container = set(re.findall(r"^\s*(\d+)\s*$", text, re.M))
    rows = TABLES["oz"]
    assert general == {row.code for row in rows if row.name and row.name.isupper()}
    assert container == {row.code for row in rows if row.name and not row.name.isupper()}


def test_oz_general_codes_match_the_russian_seed() -> None:
    text = seed_text(OZ_RUSSIAN_PREFIX)
    for row in TABLES["oz"]:
        if row.name and row.name.isupper():
            assert re.search(rf"^\s*{row.code}\s*\n\s*{row.name}\s*$", text, re.M), row


# ---- the generated documentation ----------------------------------------------------------------


def test_errors_doc_is_current() -> None:
    path = REPO / "docs" / "errors.md"
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    assert current == render_errors_markdown(), (
        "docs/errors.md is stale: run `faceplane errors-doc > docs/errors.md`"
    )

"""services/accounts.py on real SQLite: companies, users, apps, keys, tokens, signatures."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from cryptography.exceptions import InvalidTag
from sqlalchemy import select, update

from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services import accounts
from faceplane.settings import Settings
from faceplane.store import Store
from faceplane.store.db import apps, users, write_tx

PASSWORD = "correct horse battery"
SKEW_S = 300.0


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    """A fresh runtime (database, blobs, secret) in a temporary data folder."""
    runtime = Runtime.open(Settings(data_dir=tmp_path))
    yield runtime
    runtime.close()


@pytest.fixture
def store(rt: Runtime) -> Store:
    """The runtime's store, for reading rows straight from the tables."""
    return rt.store


@pytest.fixture
def company(rt: Runtime) -> dict[str, Any]:
    """One company."""
    return accounts.create_company(rt, "acme")


def code_of(fn: Callable[[], object]) -> Err:
    """The catalogue code `fn` fails with."""
    with pytest.raises(FaceplaneError) as info:
        fn()
    return info.value.err


def app_row(store: Store, app_id: str) -> dict[str, Any]:
    """An app's stored row, key material included."""
    with store.db.connect() as conn:
        return dict(conn.execute(select(apps).where(apps.c.id == app_id)).mappings().one())


# ---- companies and users -------------------------------------------------------------------


def test_a_company_is_found_by_name_and_by_id(rt: Runtime, company: dict[str, Any]) -> None:
    # The finder gives the row; answers render it (times as ISO 8601).
    by_name = accounts.find_company(rt, "acme")
    by_id = accounts.find_company(rt, company["id"])
    assert by_name is not None and by_id is not None
    assert accounts.public_company(by_name) == accounts.public_company(by_id) == company
    assert accounts.find_company(rt, "nobody") is None


def test_a_second_company_with_the_same_name_is_refused(
    rt: Runtime, company: dict[str, Any]
) -> None:
    assert code_of(lambda: accounts.create_company(rt, "acme")) is Err.RESOURCE_EXISTS
    assert [c["name"] for c in accounts.list_companies(rt)] == ["acme"]


def test_companies_are_listed_by_name(rt: Runtime) -> None:
    for name in ("zeta", "alpha", "mid"):
        accounts.create_company(rt, name)
    assert [c["name"] for c in accounts.list_companies(rt)] == ["alpha", "mid", "zeta"]


def test_a_user_password_is_kept_only_as_an_argon2id_hash(
    rt: Runtime, store: Store, company: dict[str, Any]
) -> None:
    user = accounts.create_user(rt, company["id"], "Ann@Example.com", PASSWORD, "operator")
    assert "password_hash" not in user
    assert user["email"] == "ann@example.com"  # emails are case-insensitive
    assert user["role"] == "operator" and user["active"] is True
    with store.db.connect() as conn:
        query = select(users.c.password_hash).where(users.c.id == user["id"])
        stored = conn.execute(query).scalar()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert PasswordHasher().verify(stored, PASSWORD)


@pytest.mark.parametrize("role", ["root", "ADMIN", ""])
def test_a_user_with_an_unknown_role_is_refused(
    rt: Runtime, company: dict[str, Any], role: str
) -> None:
    err = code_of(lambda: accounts.create_user(rt, company["id"], "a@b.c", PASSWORD, role))
    assert err is Err.INVALID_ARGUMENT


def test_a_password_shorter_than_ten_characters_is_refused(
    rt: Runtime, company: dict[str, Any]
) -> None:
    err = code_of(lambda: accounts.create_user(rt, company["id"], "a@b.c", "123456789", "admin"))
    assert err is Err.INVALID_ARGUMENT
    assert accounts.list_users(rt, company["id"]) == []


def test_an_email_is_taken_once_whatever_its_case(rt: Runtime, company: dict[str, Any]) -> None:
    accounts.create_user(rt, company["id"], "ann@example.com", PASSWORD, "admin")
    err = code_of(
        lambda: accounts.create_user(rt, company["id"], "ANN@example.com", PASSWORD, "client")
    )
    assert err is Err.RESOURCE_EXISTS


def test_users_are_listed_only_for_their_own_company(rt: Runtime) -> None:
    a = accounts.create_company(rt, "a")
    b = accounts.create_company(rt, "b")
    accounts.create_user(rt, a["id"], "x@a.test", PASSWORD, "admin")
    accounts.create_user(rt, a["id"], "w@a.test", PASSWORD, "client")
    accounts.create_user(rt, b["id"], "y@b.test", PASSWORD, "admin")
    assert [u["email"] for u in accounts.list_users(rt, a["id"])] == ["w@a.test", "x@a.test"]
    assert [u["email"] for u in accounts.list_users(rt, b["id"])] == ["y@b.test"]
    assert all("password_hash" not in u for u in accounts.list_users(rt, a["id"]))


# ---- apps and keys -------------------------------------------------------------------------


def test_a_new_app_key_is_returned_once_and_stored_only_hashed_and_sealed(
    rt: Runtime, store: Store, company: dict[str, Any]
) -> None:
    app, key = accounts.create_app(rt, company["id"], "web", rate_limit=60, quota=100)
    assert key.startswith(accounts.KEY_PREFIX) and len(key) > 40
    assert key not in repr(app)  # the public form holds no key material
    assert app["key_prefix"] == key[:10]
    assert (app["status"], app["rate_limit"], app["quota"]) == ("active", 60, 100)
    row = app_row(store, app["app_id"])
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert key.encode() not in row["key_sealed"]
    assert accounts.unseal(store.secret, row["key_sealed"]) == key
    # Listing never shows the key either.
    listed = accounts.list_apps(rt, company["id"])
    assert [a["app_id"] for a in listed] == [app["app_id"]]
    assert key not in repr(listed)


def test_a_sealed_key_cannot_be_opened_with_another_secret(
    rt: Runtime, store: Store, company: dict[str, Any]
) -> None:
    app, _ = accounts.create_app(rt, company["id"], "web", rate_limit=60)
    sealed = app_row(store, app["app_id"])["key_sealed"]
    with pytest.raises(InvalidTag):
        accounts.unseal(b"another server's secret", sealed)


def test_a_key_authenticates_as_its_app_with_its_limits(
    rt: Runtime, company: dict[str, Any]
) -> None:
    user = accounts.create_user(rt, company["id"], "dev@acme.test", PASSWORD, "operator")
    app, key = accounts.create_app(
        rt, company["id"], "web", rate_limit=60, quota=7, user_id=user["id"]
    )
    who = accounts.authenticate_key(rt, key)
    assert who.company_id == company["id"] and who.app_id == app["app_id"]
    assert (who.role, who.via, who.user_id) == ("client", "key", user["id"])
    assert (who.rate_limit, who.quota) == (60, 7)
    assert who.actor == who.limit_key == f"app:{app['app_id']}"


@pytest.mark.parametrize("key", ["", "fpk_nope", "not a key at all"])
def test_an_unknown_key_is_auth_invalid(rt: Runtime, company: dict[str, Any], key: str) -> None:
    accounts.create_app(rt, company["id"], "web", rate_limit=60)
    assert code_of(lambda: accounts.authenticate_key(rt, key)) is Err.AUTH_INVALID


def test_rotating_a_key_stops_the_old_key_at_once(
    rt: Runtime, store: Store, company: dict[str, Any]
) -> None:
    app, old = accounts.create_app(rt, company["id"], "web", rate_limit=60)
    rotated, new = accounts.rotate_key(rt, company["id"], app["app_id"])
    assert new != old and rotated["key_prefix"] == new[:10]
    assert rotated["rotated_at"] is not None
    assert code_of(lambda: accounts.authenticate_key(rt, old)) is Err.AUTH_INVALID
    assert accounts.authenticate_key(rt, new).app_id == app["app_id"]
    assert accounts.unseal(store.secret, app_row(store, app["app_id"])["key_sealed"]) == new


def test_a_deactivated_app_answers_app_deactivated_and_comes_back_when_activated(
    rt: Runtime, company: dict[str, Any]
) -> None:
    app, key = accounts.create_app(rt, company["id"], "web", rate_limit=60)
    changed = accounts.update_app(rt, company["id"], app["app_id"], {"status": "deactivated"})
    assert changed["status"] == "deactivated"
    assert code_of(lambda: accounts.authenticate_key(rt, key)) is Err.APP_DEACTIVATED
    accounts.update_app(rt, company["id"], app["app_id"], {"status": "active"})
    assert accounts.authenticate_key(rt, key).app_id == app["app_id"]


def test_an_app_past_its_expiry_answers_app_expired(rt: Runtime, company: dict[str, Any]) -> None:
    app, key = accounts.create_app(
        rt, company["id"], "web", rate_limit=60, expires_at=time.time() + 3600
    )
    assert accounts.authenticate_key(rt, key).app_id == app["app_id"]
    accounts.update_app(rt, company["id"], app["app_id"], {"expires_at": time.time() - 1})
    assert code_of(lambda: accounts.authenticate_key(rt, key)) is Err.APP_EXPIRED


def test_an_app_status_other_than_active_or_deactivated_is_refused(
    rt: Runtime, company: dict[str, Any]
) -> None:
    app, key = accounts.create_app(rt, company["id"], "web", rate_limit=60)
    err = code_of(lambda: accounts.update_app(rt, None, app["app_id"], {"status": "paused"}))
    assert err is Err.INVALID_ARGUMENT
    assert accounts.authenticate_key(rt, key).app_id == app["app_id"]


def test_updating_an_app_ignores_fields_that_are_not_changeable(
    rt: Runtime, company: dict[str, Any]
) -> None:
    other = accounts.create_company(rt, "other")
    app, key = accounts.create_app(rt, company["id"], "web", rate_limit=60)
    changed = accounts.update_app(
        rt,
        company["id"],
        app["app_id"],
        {"rate_limit": 5, "company_id": other["id"], "key_hash": "x", "name": "renamed"},
    )
    assert (changed["rate_limit"], changed["name"]) == (5, "renamed")
    assert changed["company_id"] == company["id"]
    assert accounts.authenticate_key(rt, key).company_id == company["id"]


def test_an_app_webhook_is_read_back_only_in_its_company_and_an_unknown_app_has_none(
    rt: Runtime, company: dict[str, Any]
) -> None:
    app, _ = accounts.create_app(rt, company["id"], "web", rate_limit=60)
    assert accounts.app_webhook(rt, company["id"], app["app_id"]) == (None, None)
    accounts.update_app(
        rt,
        company["id"],
        app["app_id"],
        {"webhook_url": "https://hooks.test/x", "webhook_secret": "s3cret-of-16-bytes"},
    )
    assert accounts.app_webhook(rt, company["id"], app["app_id"]) == (
        "https://hooks.test/x",
        "s3cret-of-16-bytes",
    )
    other = accounts.create_company(rt, "other")
    assert accounts.app_webhook(rt, other["id"], app["app_id"]) == (None, None)
    assert accounts.app_webhook(rt, company["id"], "app_missing") == (None, None)


# ---- tenant isolation ----------------------------------------------------------------------


def test_another_companys_app_is_not_found_by_any_finder(rt: Runtime) -> None:
    mine = accounts.create_company(rt, "mine")
    theirs = accounts.create_company(rt, "theirs")
    their_app, their_key = accounts.create_app(rt, theirs["id"], "x", rate_limit=60)
    app_id = their_app["app_id"]
    assert accounts.list_apps(rt, mine["id"]) == []
    assert code_of(lambda: accounts.load_app(rt, mine["id"], app_id)) is Err.RESOURCE_NOT_FOUND
    assert code_of(lambda: accounts.rotate_key(rt, mine["id"], app_id)) is Err.RESOURCE_NOT_FOUND
    err = code_of(lambda: accounts.update_app(rt, mine["id"], app_id, {"status": "deactivated"}))
    assert err is Err.RESOURCE_NOT_FOUND
    # Nothing was changed by the refused calls.
    assert accounts.authenticate_key(rt, their_key).company_id == theirs["id"]
    assert accounts.load_app(rt, theirs["id"], app_id)["status"] == "active"


def test_an_unknown_app_id_is_app_not_found_when_authenticating(rt: Runtime) -> None:
    # Without a company (a caller authenticating by APP_ID) the code is the vendor's "bad APP_ID".
    assert code_of(lambda: accounts.load_app(rt, None, "app_missing")) is Err.APP_NOT_FOUND


def test_a_users_own_apps_are_listed_apart_from_the_companys(
    rt: Runtime, company: dict[str, Any]
) -> None:
    ann = accounts.create_user(rt, company["id"], "ann@acme.test", PASSWORD, "client")
    bob = accounts.create_user(rt, company["id"], "bob@acme.test", PASSWORD, "client")
    a, _ = accounts.create_app(rt, company["id"], "a", rate_limit=1, user_id=ann["id"])
    b, _ = accounts.create_app(rt, company["id"], "b", rate_limit=1, user_id=bob["id"])
    assert [x["app_id"] for x in accounts.list_apps(rt, company["id"], ann["id"])] == [a["app_id"]]
    assert {x["app_id"] for x in accounts.list_apps(rt, company["id"])} == {
        a["app_id"],
        b["app_id"],
    }


# ---- user sessions -------------------------------------------------------------------------


def test_login_gives_an_access_and_a_refresh_token(rt: Runtime, company: dict[str, Any]) -> None:
    user = accounts.create_user(rt, company["id"], "ann@acme.test", PASSWORD, "admin")
    pair = accounts.login(rt, "ANN@acme.test", PASSWORD, 900, 3600)
    assert pair["token_type"] == "Bearer" and pair["expires_in"] == 900
    assert pair["access_token"] != pair["refresh_token"]
    who = accounts.authenticate_token(rt, pair["access_token"])
    assert (who.company_id, who.user_id, who.role, who.via) == (
        company["id"],
        user["id"],
        "admin",
        "token",
    )
    assert who.actor == f"user:{user['id']}"
    # A refresh token is not an access token.
    err = code_of(lambda: accounts.authenticate_token(rt, pair["refresh_token"]))
    assert err is Err.AUTH_INVALID


@pytest.mark.parametrize(
    ("email", "password"),
    [("ann@acme.test", "wrong password!"), ("nobody@acme.test", PASSWORD), ("", "")],
)
def test_login_with_wrong_credentials_is_auth_invalid(
    rt: Runtime, company: dict[str, Any], email: str, password: str
) -> None:
    accounts.create_user(rt, company["id"], "ann@acme.test", PASSWORD, "admin")
    assert code_of(lambda: accounts.login(rt, email, password, 900, 3600)) is Err.AUTH_INVALID


def test_a_deactivated_user_can_neither_log_in_nor_use_a_token(
    rt: Runtime, store: Store, company: dict[str, Any]
) -> None:
    user = accounts.create_user(rt, company["id"], "ann@acme.test", PASSWORD, "admin")
    pair = accounts.login(rt, "ann@acme.test", PASSWORD, 900, 3600)
    # No service deactivates a user yet; the `active` column is what login and tokens obey.
    with write_tx(store.db) as conn:
        conn.execute(update(users).where(users.c.id == user["id"]).values(active=False))
    err = code_of(lambda: accounts.login(rt, "ann@acme.test", PASSWORD, 900, 3600))
    assert err is Err.AUTH_INVALID
    err = code_of(lambda: accounts.authenticate_token(rt, pair["access_token"]))
    assert err is Err.AUTH_INVALID


def test_an_expired_access_token_is_auth_expired(rt: Runtime, company: dict[str, Any]) -> None:
    accounts.create_user(rt, company["id"], "ann@acme.test", PASSWORD, "admin")
    pair = accounts.login(rt, "ann@acme.test", PASSWORD, -1, 3600)
    err = code_of(lambda: accounts.authenticate_token(rt, pair["access_token"]))
    assert err is Err.AUTH_EXPIRED


def test_an_expired_refresh_token_is_auth_expired(rt: Runtime, company: dict[str, Any]) -> None:
    accounts.create_user(rt, company["id"], "ann@acme.test", PASSWORD, "admin")
    pair = accounts.login(rt, "ann@acme.test", PASSWORD, 900, -1)
    err = code_of(lambda: accounts.refresh_tokens(rt, pair["refresh_token"], 900, 3600))
    assert err is Err.AUTH_EXPIRED


def test_a_refresh_token_is_spent_by_its_first_use(rt: Runtime, company: dict[str, Any]) -> None:
    accounts.create_user(rt, company["id"], "ann@acme.test", PASSWORD, "admin")
    first = accounts.login(rt, "ann@acme.test", PASSWORD, 900, 3600)
    second = accounts.refresh_tokens(rt, first["refresh_token"], 900, 3600)
    assert accounts.authenticate_token(rt, second["access_token"]).via == "token"
    err = code_of(lambda: accounts.refresh_tokens(rt, first["refresh_token"], 900, 3600))
    assert err is Err.AUTH_INVALID
    # The reuse of a spent token is taken for a theft: the pair descending from it is revoked.
    assert code_of(lambda: accounts.authenticate_token(rt, second["access_token"])) is (
        Err.AUTH_INVALID
    )
    assert code_of(lambda: accounts.refresh_tokens(rt, second["refresh_token"], 900, 3600)) is (
        Err.AUTH_INVALID
    )


def test_a_new_refresh_token_works_once_in_turn(rt: Runtime, company: dict[str, Any]) -> None:
    accounts.create_user(rt, company["id"], "ann@acme.test", PASSWORD, "admin")
    first = accounts.login(rt, "ann@acme.test", PASSWORD, 900, 3600)
    second = accounts.refresh_tokens(rt, first["refresh_token"], 900, 3600)
    third = accounts.refresh_tokens(rt, second["refresh_token"], 900, 3600)
    assert accounts.authenticate_token(rt, third["access_token"]).via == "token"
    # Another login is another family: the reuse in this one leaves it alone.
    other = accounts.login(rt, "ann@acme.test", PASSWORD, 900, 3600)
    assert code_of(lambda: accounts.refresh_tokens(rt, first["refresh_token"], 900, 3600)) is (
        Err.AUTH_INVALID
    )
    assert code_of(lambda: accounts.authenticate_token(rt, third["access_token"])) is (
        Err.AUTH_INVALID
    )
    assert accounts.authenticate_token(rt, other["access_token"]).via == "token"


def test_a_refresh_token_used_by_many_callers_at_once_is_spent_only_once(
    rt: Runtime, company: dict[str, Any]
) -> None:
    accounts.create_user(rt, company["id"], "ann@acme.test", PASSWORD, "admin")
    token = accounts.login(rt, "ann@acme.test", PASSWORD, 900, 3600)["refresh_token"]
    callers = 8
    start = threading.Barrier(callers)
    outcomes: list[str] = []

    def use() -> None:
        start.wait()
        try:
            accounts.refresh_tokens(rt, token, 900, 3600)
            outcomes.append("ok")
        except FaceplaneError as exc:
            outcomes.append(exc.err.name)

    threads = [threading.Thread(target=use) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["AUTH_INVALID"] * (callers - 1) + ["ok"]


# ---- signed requests -----------------------------------------------------------------------


def signed(
    key: str, body: bytes = b'{"x": 1}', ts: float | None = None, nonce: str = "n-1"
) -> tuple[str, bytes, str, str]:
    """A signature over a native request, with the message, nonce and timestamp it covers."""
    timestamp = str(int(time.time() if ts is None else ts))
    message = accounts.signed_message("post", "/v1/detect", timestamp, nonce, body)
    return accounts.sign(key, message), message, nonce, timestamp


def test_the_signed_message_covers_method_path_query_timestamp_nonce_and_body_hash() -> None:
    msg = accounts.signed_message("post", "/v1/detect", "1700000000", "abc", b"body")
    assert msg == (
        b"POST\n/v1/detect\n\n1700000000\nabc\n" + hashlib.sha256(b"body").hexdigest().encode()
    )
    changed = [
        accounts.signed_message("get", "/v1/detect", "1700000000", "abc", b"body"),
        accounts.signed_message("post", "/v1/compare", "1700000000", "abc", b"body"),
        accounts.signed_message("post", "/v1/detect", "1700000001", "abc", b"body"),
        accounts.signed_message("post", "/v1/detect", "1700000000", "abd", b"body"),
        accounts.signed_message("post", "/v1/detect", "1700000000", "abc", b"bodz"),
        accounts.signed_message("post", "/v1/detect", "1700000000", "abc", b"body", "a=1"),
    ]
    assert len({msg, *changed}) == 7


def test_a_good_signature_authenticates_as_the_app(rt: Runtime, company: dict[str, Any]) -> None:
    app, key = accounts.create_app(rt, company["id"], "web", rate_limit=60)
    sig, message, nonce, ts = signed(key)
    who = accounts.authenticate_signature(rt, app["app_id"], sig, message, nonce, ts, SKEW_S)
    assert (who.company_id, who.app_id, who.via) == (company["id"], app["app_id"], "signature")
    # Hex digits in upper case are the same signature.
    sig, message, nonce, ts = signed(key, nonce="n-2")
    who = accounts.authenticate_signature(
        rt, app["app_id"], sig.upper(), message, nonce, ts, SKEW_S
    )
    assert who.app_id == app["app_id"]


def test_a_signature_made_with_another_key_or_over_another_body_is_invalid(
    rt: Runtime, company: dict[str, Any]
) -> None:
    app, key = accounts.create_app(rt, company["id"], "web", rate_limit=60)
    _, other_key = accounts.create_app(rt, company["id"], "other", rate_limit=60)
    sig, message, nonce, ts = signed(other_key)
    err = code_of(
        lambda: accounts.authenticate_signature(rt, app["app_id"], sig, message, nonce, ts, SKEW_S)
    )
    assert err is Err.SIGNATURE_INVALID
    sig, _, nonce, ts = signed(key, body=b"original", nonce="n-2")
    tampered = accounts.signed_message("post", "/v1/detect", ts, nonce, b"tampered")
    err = code_of(
        lambda: accounts.authenticate_signature(rt, app["app_id"], sig, tampered, nonce, ts, SKEW_S)
    )
    assert err is Err.SIGNATURE_INVALID


def test_a_signature_by_a_rotated_away_key_is_invalid(rt: Runtime, company: dict[str, Any]) -> None:
    app, old = accounts.create_app(rt, company["id"], "web", rate_limit=60)
    _, new = accounts.rotate_key(rt, company["id"], app["app_id"])
    sig, message, nonce, ts = signed(old)
    err = code_of(
        lambda: accounts.authenticate_signature(rt, app["app_id"], sig, message, nonce, ts, SKEW_S)
    )
    assert err is Err.SIGNATURE_INVALID
    sig, message, nonce, ts = signed(new)
    assert accounts.authenticate_signature(rt, app["app_id"], sig, message, nonce, ts, SKEW_S)


@pytest.mark.parametrize("offset_s", [-SKEW_S - 60, SKEW_S + 60])
def test_a_signature_with_a_timestamp_off_the_clock_is_invalid(
    rt: Runtime, company: dict[str, Any], offset_s: float
) -> None:
    app, key = accounts.create_app(rt, company["id"], "web", rate_limit=60)
    sig, message, nonce, ts = signed(key, ts=time.time() + offset_s)
    with pytest.raises(FaceplaneError) as info:
        accounts.authenticate_signature(rt, app["app_id"], sig, message, nonce, ts, SKEW_S)
    assert info.value.err is Err.SIGNATURE_INVALID
    assert "skew_s" in info.value.details


@pytest.mark.parametrize("timestamp", ["yesterday", "", "nan", "NaN", "inf", "-inf"])
def test_a_signature_whose_timestamp_is_not_a_finite_number_is_invalid(
    rt: Runtime, company: dict[str, Any], timestamp: str
) -> None:
    # A timestamp must bound the signature's life: "nan" compares false with every bound,
    # so it would otherwise pass the freshness check and stay replayable for ever.
    app, key = accounts.create_app(rt, company["id"], "web", rate_limit=60)
    message = accounts.signed_message("post", "/v1/detect", timestamp, "n-1", b"")
    sig = accounts.sign(key, message)
    err = code_of(
        lambda: accounts.authenticate_signature(
            rt, app["app_id"], sig, message, "n-1", timestamp, SKEW_S
        )
    )
    assert err is Err.SIGNATURE_INVALID


def test_a_replayed_nonce_is_refused_but_another_app_may_use_the_same_nonce(
    rt: Runtime, company: dict[str, Any]
) -> None:
    app, key = accounts.create_app(rt, company["id"], "web", rate_limit=60)
    other, other_key = accounts.create_app(rt, company["id"], "other", rate_limit=60)
    sig, message, nonce, ts = signed(key, nonce="once")
    accounts.authenticate_signature(rt, app["app_id"], sig, message, nonce, ts, SKEW_S)
    with pytest.raises(FaceplaneError) as info:
        accounts.authenticate_signature(rt, app["app_id"], sig, message, nonce, ts, SKEW_S)
    assert info.value.err is Err.SIGNATURE_INVALID
    assert "replay" in info.value.message
    sig, message, nonce, ts = signed(other_key, nonce="once")
    who = accounts.authenticate_signature(rt, other["app_id"], sig, message, nonce, ts, SKEW_S)
    assert who.app_id == other["app_id"]


def test_a_deactivated_app_cannot_sign_requests(rt: Runtime, company: dict[str, Any]) -> None:
    app, key = accounts.create_app(rt, company["id"], "web", rate_limit=60)
    accounts.update_app(rt, company["id"], app["app_id"], {"status": "deactivated"})
    sig, message, nonce, ts = signed(key)
    err = code_of(
        lambda: accounts.authenticate_signature(rt, app["app_id"], sig, message, nonce, ts, SKEW_S)
    )
    assert err is Err.APP_DEACTIVATED


def test_a_signature_for_an_unknown_app_is_app_not_found(rt: Runtime) -> None:
    sig, message, nonce, ts = signed("fpk_whatever")
    err = code_of(
        lambda: accounts.authenticate_signature(rt, "app_missing", sig, message, nonce, ts, SKEW_S)
    )
    assert err is Err.APP_NOT_FOUND


@pytest.mark.parametrize("sig", ["é" * 64, "\u2603", ""], ids=["latin-1", "snowman", "empty"])
def test_a_signature_that_is_not_hex_text_is_invalid_not_a_crash(
    rt: Runtime, company: dict[str, Any], sig: str
) -> None:
    # Headers arrive as latin-1 text: a signature may hold any character at all.
    app, key = accounts.create_app(rt, company["id"], "web", rate_limit=60)
    _, message, nonce, ts = signed(key)
    err = code_of(
        lambda: accounts.authenticate_signature(rt, app["app_id"], sig, message, nonce, ts, SKEW_S)
    )
    assert err is Err.SIGNATURE_INVALID


# ---- first run -----------------------------------------------------------------------------


def test_bootstrap_creates_a_company_an_admin_and_an_app_once(rt: Runtime) -> None:
    made = accounts.bootstrap(rt, rate_limit=42)
    assert made is not None and made["company"] == "default"
    company = accounts.find_company(rt, "default")
    assert company is not None
    # The printed secrets work.
    pair = accounts.login(rt, made["admin_email"], made["admin_password"], 900, 3600)
    assert accounts.authenticate_token(rt, pair["access_token"]).role == "admin"
    who = accounts.authenticate_key(rt, made["key"])
    assert (who.app_id, who.company_id, who.rate_limit) == (made["app_id"], company["id"], 42)
    # A second start finds the database in use and makes nothing.
    assert accounts.bootstrap(rt, rate_limit=42) is None
    assert len(accounts.list_companies(rt)) == 1
    assert len(accounts.list_apps(rt, company["id"])) == 1


def test_bootstrap_does_nothing_on_a_database_that_has_a_company(rt: Runtime) -> None:
    accounts.create_company(rt, "existing")
    assert accounts.bootstrap(rt, rate_limit=10) is None
    assert [c["name"] for c in accounts.list_companies(rt)] == ["existing"]


def test_processes_starting_together_on_a_fresh_database_bootstrap_it_once(
    rt: Runtime,
) -> None:
    # Several server workers start at once on an empty database: one creates the first
    # company, the others must start normally, not fail on the unique company name.
    callers = 6
    start = threading.Barrier(callers)
    outcomes: list[object] = []

    def boot() -> None:
        start.wait()
        try:
            outcomes.append(accounts.bootstrap(rt, rate_limit=10))
        except FaceplaneError as exc:
            outcomes.append(exc.err)

    threads = [threading.Thread(target=boot) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    made = [o for o in outcomes if isinstance(o, dict)]
    assert len(made) == 1, outcomes
    assert outcomes.count(None) == callers - 1, outcomes
    assert [c["name"] for c in accounts.list_companies(rt)] == ["default"]

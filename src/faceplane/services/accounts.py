"""Companies, users, apps and their credentials: API keys, access tokens, signed requests."""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.store import Store
from faceplane.store.db import (
    apps,
    companies,
    data_signatures,
    nonces,
    tokens,
    users,
    write_tx,
)
from faceplane.tasks.webhooks import check_secret
from faceplane.timestamps import iso_utc

ROLES = ("admin", "operator", "client")
KEY_PREFIX = "fpk_"
TOKEN_PREFIX = "fpt_"
_hasher = PasswordHasher()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the company (tenant) whose data they reach, and with which role."""

    company_id: str
    role: str
    user_id: str | None = None
    app_id: str | None = None
    via: str = "key"  # key | token | signature | disabled
    rate_limit: int | None = None  # the app's (or the user's), read with its credentials
    quota: int | None = None
    # For an app: the caps an admin set on the user who owns it; its requests count against
    # them too, so a client's apps together never exceed what its admin allowed.
    owner_rate_limit: int | None = None
    owner_quota: int | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"app:{self.app_id}" if self.app_id else f"user:{self.user_id}"

    @property
    def limit_key(self) -> str:
        """What rate limits and quotas are counted against."""
        return f"app:{self.app_id}" if self.app_id else f"user:{self.user_id}"

    def rate_buckets(self, default: int) -> list[tuple[str, int]]:
        """(counter key, limit) of every rate limit this request counts against."""
        out = [(self.limit_key, self.rate_limit or default)]
        if self.app_id and self.user_id and self.owner_rate_limit is not None:
            out.append((f"user:{self.user_id}", self.owner_rate_limit))
        return out

    def quota_buckets(self) -> list[tuple[str, int]]:
        """(counter key, quota) of every quota this request's credits are spent from."""
        out = [] if self.quota is None else [(self.limit_key, self.quota)]
        if self.app_id and self.user_id and self.owner_quota is not None:
            out.append((f"user:{self.user_id}", self.owner_quota))
        return out


def new_id() -> str:
    """A fresh id."""
    return uuid.uuid4().hex


def sha256_hex(text: str) -> str:
    """Hex sha256 of a string (how keys and tokens are stored)."""
    return hashlib.sha256(text.encode()).hexdigest()


def _aead(secret: bytes) -> AESGCM:
    return AESGCM(hashlib.sha256(b"faceplane/app-keys/v1\n" + secret).digest())


def seal(secret: bytes, text: str) -> bytes:
    """Encrypt with a key derived from the server secret (AES-256-GCM)."""
    nonce = os.urandom(12)
    return nonce + _aead(secret).encrypt(nonce, text.encode(), b"app-key")


def unseal(secret: bytes, blob: bytes) -> str:
    """Decrypt what `seal` made."""
    return _aead(secret).decrypt(blob[:12], blob[12:], b"app-key").decode()


# ---- companies and users -------------------------------------------------------------------


def create_company(rt: Runtime, name: str) -> dict[str, Any]:
    """A new company (tenant)."""
    store = rt.store
    row = {"id": new_id(), "name": name, "created_at": time.time()}
    try:
        with write_tx(store.db) as conn:
            conn.execute(insert(companies).values(**row))
    except IntegrityError:
        raise FaceplaneError(Err.RESOURCE_EXISTS, f"A company named {name!r} exists.") from None
    return public_company(row)


def public_company(row: dict[str, Any]) -> dict[str, Any]:
    """A company as answers show it (its time in ISO 8601 UTC)."""
    return {"id": row["id"], "name": row["name"], "created_at": iso_utc(row["created_at"])}


def find_company(rt: Runtime, name_or_id: str) -> dict[str, Any] | None:
    """A company by name or id."""
    store = rt.store
    with store.db.connect() as conn:
        row = (
            conn.execute(
                select(companies).where(
                    (companies.c.name == name_or_id) | (companies.c.id == name_or_id)
                )
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None


def first_company_id(rt: Runtime) -> str:
    """The id of the oldest company (the one the first run made)."""
    with rt.store.db.connect() as conn:
        return str(
            conn.execute(
                select(companies.c.id).order_by(companies.c.created_at).limit(1)
            ).scalar_one()
        )


def list_companies(rt: Runtime) -> list[dict[str, Any]]:
    """Every company."""
    store = rt.store
    with store.db.connect() as conn:
        rows = conn.execute(select(companies).order_by(companies.c.name)).mappings()
        return [public_company(dict(r)) for r in rows]


def create_user(
    rt: Runtime, company_id: str, email: str, password: str, role: str
) -> dict[str, Any]:
    """A user of a company; the password is kept only as an argon2id hash."""
    store = rt.store
    if role not in ROLES:
        raise FaceplaneError(Err.INVALID_ARGUMENT, f"`role` is one of {', '.join(ROLES)}.")
    if len(password) < 10:
        raise FaceplaneError(Err.INVALID_ARGUMENT, "A password has at least 10 characters.")
    row = {
        "id": new_id(),
        "company_id": company_id,
        "email": email.lower(),
        "password_hash": _hasher.hash(password),
        "role": role,
        "active": True,
        "created_at": time.time(),
    }
    try:
        with write_tx(store.db) as conn:
            conn.execute(insert(users).values(**row))
    except IntegrityError:
        raise FaceplaneError(Err.RESOURCE_EXISTS, f"A user {email!r} exists.") from None
    return public_user(row)


def public_user(row: dict[str, Any]) -> dict[str, Any]:
    """A user without its password hash."""
    out = {k: row.get(k) for k in ("id", "company_id", "email", "role", "active")}
    limits = {k: row.get(k) for k in ("rate_limit", "quota")}
    return {**out, **limits, "created_at": iso_utc(row["created_at"])}


def load_user(rt: Runtime, company_id: str, user_id: str) -> dict[str, Any]:
    """A user of the company, or RESOURCE_NOT_FOUND (another company's user too)."""
    store = rt.store
    with store.db.connect() as conn:
        row = (
            conn.execute(
                select(users).where(and_(users.c.id == user_id, users.c.company_id == company_id))
            )
            .mappings()
            .first()
        )
    if row is None:
        raise FaceplaneError(Err.RESOURCE_NOT_FOUND, "There is no user with this id.")
    return dict(row)


def set_user_limits(
    rt: Runtime, company_id: str, user_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """An admin caps a user: `rate_limit` (None: the default) and `quota` (None: unlimited)
    bound the user's token and every app the user owns."""
    store = rt.store
    load_user(rt, company_id, user_id)
    allowed = {k: v for k, v in changes.items() if k in LIMIT_FLOORS}
    check_limits(allowed)
    if allowed:
        with write_tx(store.db) as conn:
            conn.execute(update(users).where(users.c.id == user_id).values(**allowed))
    return public_user(load_user(rt, company_id, user_id))


def user_company(rt: Runtime, user_id: str) -> str | None:
    """The company of a user, if the user still exists."""
    store = rt.store
    with store.db.connect() as conn:
        return conn.execute(select(users.c.company_id).where(users.c.id == user_id)).scalar()


def list_users(rt: Runtime, company_id: str) -> list[dict[str, Any]]:
    """A company's users."""
    store = rt.store
    with store.db.connect() as conn:
        rows = conn.execute(
            select(users).where(users.c.company_id == company_id).order_by(users.c.email)
        ).mappings()
        return [public_user(dict(r)) for r in rows]


# ---- apps and keys -------------------------------------------------------------------------


def public_app(row: dict[str, Any]) -> dict[str, Any]:
    """An app without its key material."""
    out = {
        k: row.get(k)
        for k in (
            "company_id",
            "user_id",
            "name",
            "status",
            "expires_at",
            "rate_limit",
            "quota",
            "created_at",
            "rotated_at",
            "webhook_url",
        )
    }
    for k in ("expires_at", "created_at", "rotated_at"):
        out[k] = iso_utc(out[k])
    return {"app_id": row["id"], "key_prefix": row["key_prefix"], **out}


def _new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create_app(
    rt: Runtime,
    company_id: str,
    name: str,
    rate_limit: int,
    quota: int | None = None,
    user_id: str | None = None,
    expires_at: float | None = None,
) -> tuple[dict[str, Any], str]:
    """A new app; returns (its public form, its KEY). The KEY is shown only this once."""
    store = rt.store
    check_limits({"rate_limit": rate_limit, "quota": quota})
    key = _new_key()
    row = {
        "id": "app_" + secrets.token_hex(8),
        "company_id": company_id,
        "user_id": user_id,
        "name": name,
        "key_hash": sha256_hex(key),
        "key_sealed": seal(store.secret, key),
        "key_prefix": key[:10],
        "status": "active",
        "expires_at": expires_at,
        "rate_limit": rate_limit,
        "quota": quota,
        "created_at": time.time(),
    }
    with write_tx(store.db) as conn:
        conn.execute(insert(apps).values(**row))
    return public_app(row), key


def load_app(rt: Runtime, company_id: str | None, app_id: str) -> dict[str, Any]:
    """An app by APP_ID within `company_id` (None: any company, for authentication and the
    operator's CLI), or APP_NOT_FOUND."""
    store = rt.store
    query = select(apps).where(apps.c.id == app_id)
    if company_id is not None:
        query = query.where(apps.c.company_id == company_id)
    with store.db.connect() as conn:
        row = conn.execute(query).mappings().first()
    if row is None:
        # Authenticating (no company yet): Pho.to's "bad APP_ID". Managing a company's apps:
        # a plain 404, the same whether the app is another company's or does not exist.
        err = Err.APP_NOT_FOUND if company_id is None else Err.RESOURCE_NOT_FOUND
        raise FaceplaneError(err, "There is no app with this APP_ID.", app_id=app_id)
    return dict(row)


def list_apps(rt: Runtime, company_id: str, user_id: str | None = None) -> list[dict[str, Any]]:
    """A company's apps (only a user's own when `user_id` is given)."""
    store = rt.store
    query = select(apps).where(apps.c.company_id == company_id)
    if user_id is not None:
        query = query.where(apps.c.user_id == user_id)
    with store.db.connect() as conn:
        return [
            public_app(dict(r)) for r in conn.execute(query.order_by(apps.c.created_at)).mappings()
        ]


def rotate_key(rt: Runtime, company_id: str | None, app_id: str) -> tuple[dict, str]:
    """Give an app of `company_id` (None: any, the operator's CLI) a new KEY; the old one
    stops working at once."""
    store = rt.store
    load_app(rt, company_id, app_id)
    key = _new_key()
    with write_tx(store.db) as conn:
        # The old key's SIGN_DATA replay tokens go with it: the new key signs differently.
        conn.execute(delete(data_signatures).where(data_signatures.c.app_id == app_id))
        conn.execute(
            update(apps)
            .where(apps.c.id == app_id)
            .values(
                key_hash=sha256_hex(key),
                key_sealed=seal(store.secret, key),
                key_prefix=key[:10],
                rotated_at=time.time(),
            )
        )
    return public_app(load_app(rt, company_id, app_id)), key


def update_app(
    rt: Runtime, company_id: str | None, app_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change the status, expiry, rate limit or quota of an app of `company_id` (None: any,
    the operator's CLI)."""
    store = rt.store
    load_app(rt, company_id, app_id)
    allowed = {
        k: v
        for k, v in changes.items()
        if k
        in ("status", "expires_at", "rate_limit", "quota", "name", "webhook_url", "webhook_secret")
    }
    if "status" in allowed and allowed["status"] not in ("active", "deactivated"):
        raise FaceplaneError(Err.INVALID_ARGUMENT, "`status` is active or deactivated.")
    check_limits(allowed)
    if "webhook_secret" in allowed:
        check_secret(allowed["webhook_secret"])
    if allowed:
        with write_tx(store.db) as conn:
            conn.execute(update(apps).where(apps.c.id == app_id).values(**allowed))
    return public_app(load_app(rt, company_id, app_id))


def app_webhook(rt: Runtime, company_id: str, app_id: str) -> tuple[str | None, str | None]:
    """The default webhook (URL, secret) of the company's app `app_id`, if it has one."""
    query = select(apps.c.webhook_url, apps.c.webhook_secret).where(
        and_(apps.c.id == app_id, apps.c.company_id == company_id)
    )
    with rt.store.db.connect() as conn:
        row = conn.execute(query).first()
    return (row[0], row[1]) if row else (None, None)


def _check_app_usable(row: dict[str, Any]) -> None:
    if row["status"] != "active":
        raise FaceplaneError(Err.APP_DEACTIVATED, "This APP_ID is deactivated.", app_id=row["id"])
    if row["expires_at"] is not None and row["expires_at"] < time.time():
        raise FaceplaneError(Err.APP_EXPIRED, "This APP_ID is out of date.", app_id=row["id"])


def _app_row(store: Store, where: Any) -> dict[str, Any] | None:
    """An app with its owner's caps (`owner_rate_limit`, `owner_quota`), in one query."""
    query = (
        select(
            apps,
            users.c.rate_limit.label("owner_rate_limit"),
            users.c.quota.label("owner_quota"),
        )
        .select_from(apps.outerjoin(users, users.c.id == apps.c.user_id))
        .where(where)
    )
    with store.db.connect() as conn:
        row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def _app_principal(row: dict[str, Any], via: str) -> Principal:
    return Principal(
        owner_rate_limit=row.get("owner_rate_limit"),
        owner_quota=row.get("owner_quota"),
        company_id=row["company_id"],
        role="client",
        user_id=row["user_id"],
        app_id=row["id"],
        via=via,
        rate_limit=row["rate_limit"],
        quota=row["quota"],
    )


def authenticate_key(rt: Runtime, key: str) -> Principal:
    """The app whose KEY this is; AUTH_INVALID for an unknown key."""
    store = rt.store
    digest = sha256_hex(key)
    row = _app_row(store, apps.c.key_hash == digest)
    if row is None or not hmac.compare_digest(row["key_hash"], digest):
        raise FaceplaneError(Err.AUTH_INVALID, "The API key is not valid.")
    _check_app_usable(dict(row))
    return _app_principal(dict(row), "key")


def sign(key: str, message: bytes) -> str:
    """SIGN_DATA: hex HMAC-SHA256 of `message` with the app's KEY."""
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def authenticate_signature(
    rt: Runtime,
    app_id: str,
    signature: str,
    message: bytes,
    nonce: str,
    timestamp: str,
    max_skew_s: float,
) -> Principal:
    """Check SIGN_DATA over `message`, the timestamp's freshness and the nonce's novelty."""
    store = rt.store
    row = _signing_app(store, app_id)
    try:
        ts = float(timestamp)
        if not math.isfinite(ts):  # "nan" would pass every freshness comparison below
            raise ValueError(timestamp)
    except ValueError:
        raise FaceplaneError(Err.SIGNATURE_INVALID, "The timestamp is not a number.") from None
    now = time.time()
    if abs(now - ts) > max_skew_s:
        raise FaceplaneError(
            Err.SIGNATURE_INVALID,
            f"The timestamp is more than {max_skew_s:.0f} s off the clock.",
            skew_s=round(now - ts, 1),
        )
    _check_hmac(store, row, message, signature)
    try:
        with write_tx(store.db) as conn:
            conn.execute(delete(nonces).where(nonces.c.expires_at < now))
            conn.execute(
                insert(nonces).values(app_id=app_id, nonce=nonce, expires_at=now + 2 * max_skew_s)
            )
    except IntegrityError:
        raise FaceplaneError(
            Err.SIGNATURE_INVALID, "This nonce was used already: the request is a replay."
        ) from None
    return _app_principal(row, "signature")


def _signing_app(store: Store, app_id: str) -> dict[str, Any]:
    """The usable app `app_id` (with its owner's caps), or the error that names why not."""
    row = _app_row(store, apps.c.id == app_id)
    if row is None:
        raise FaceplaneError(Err.APP_NOT_FOUND, "There is no app with this APP_ID.", app_id=app_id)
    _check_app_usable(row)
    return row


def _check_hmac(store: Store, row: dict[str, Any], message: bytes, signature: str) -> None:
    key = unseal(store.secret, row["key_sealed"])
    # Bytes, not str: compare_digest raises TypeError on a non-ASCII str (any header text).
    if not hmac.compare_digest(sign(key, message).encode(), signature.lower().encode()):
        raise FaceplaneError(Err.SIGNATURE_INVALID, "Invalid SIGN_DATA parameter.")


def signed_message(
    method: str, path: str, timestamp: str, nonce: str, body: bytes, query: str = ""
) -> bytes:
    """What a native signed request signs: method, path, the raw query string (as sent,
    without `?`; empty when there is none), timestamp, nonce, body hash — one per line."""
    return "\n".join(
        [method.upper(), path, query, timestamp, nonce, hashlib.sha256(body).hexdigest()]
    ).encode()


# ---- user sessions -------------------------------------------------------------------------


def _issue(
    store: Store, user_id: str, access_ttl_s: int, refresh_ttl_s: int, family: str | None = None
) -> dict[str, Any]:
    """A token pair of `family`: every token descending from one login shares it (a new
    family for a login), so a stolen refresh token's reuse can revoke them all."""
    access, refresh = (
        TOKEN_PREFIX + secrets.token_urlsafe(32),
        TOKEN_PREFIX + secrets.token_urlsafe(32),
    )
    family = family or new_id()
    now = time.time()
    with write_tx(store.db) as conn:
        conn.execute(
            insert(tokens),
            [
                {
                    "hash": sha256_hex(access),
                    "user_id": user_id,
                    "kind": "access",
                    "expires_at": now + access_ttl_s,
                    "revoked": False,
                    "created_at": now,
                    "family": family,
                },
                {
                    "hash": sha256_hex(refresh),
                    "user_id": user_id,
                    "kind": "refresh",
                    "expires_at": now + refresh_ttl_s,
                    "revoked": False,
                    "created_at": now,
                    "family": family,
                },
            ],
        )
    return {
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": access_ttl_s,
    }


@dataclass(frozen=True)
class LoginAccount:
    """What a login needs of an account before the password is checked."""

    user_id: str | None
    company_id: str | None
    password_hash: str
    active: bool


def login_account(rt: Runtime, email: str) -> LoginAccount:
    """The account of `email`; for an unknown one, a dummy hash to check against, so timing
    does not reveal which emails exist."""
    store = rt.store
    with store.db.connect() as conn:
        row = conn.execute(select(users).where(users.c.email == email.lower())).mappings().first()
    if row is None:
        return LoginAccount(None, None, _dummy_hash(), False)
    return LoginAccount(row["id"], row["company_id"], row["password_hash"], bool(row["active"]))


def password_matches(account: LoginAccount, password: str) -> bool:
    """Whether `password` is the account's (an argon2id check: CPU and 64 MiB for a while);
    always False for an unknown or inactive account, after the same work."""
    try:
        _hasher.verify(account.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    return account.user_id is not None and account.active


def issue_login(
    rt: Runtime, account: LoginAccount, access_ttl_s: int, refresh_ttl_s: int
) -> dict[str, Any]:
    """The token pair of a checked login: a new family."""
    store = rt.store
    assert account.user_id is not None
    return _issue(store, account.user_id, access_ttl_s, refresh_ttl_s)


def login(
    rt: Runtime, email: str, password: str, access_ttl_s: int, refresh_ttl_s: int
) -> dict[str, Any]:
    """Exchange user credentials for an access and a refresh token (no throttle: the server's
    routes go through services.logins, which throttles and bounds the hashing)."""
    account = login_account(rt, email)
    if not password_matches(account, password):
        raise FaceplaneError(Err.AUTH_INVALID, "Wrong email or password.")
    return issue_login(rt, account, access_ttl_s, refresh_ttl_s)


@dataclass(frozen=True)
class TokenTheft:
    """A spent refresh token came back: whose, and how many tokens of its family were revoked."""

    user_id: str
    family: str | None
    revoked: int


class RefreshReuse(FaceplaneError):
    """AUTH_INVALID for a refresh token spent already: its family has been revoked."""

    def __init__(self, theft: TokenTheft) -> None:
        super().__init__(Err.AUTH_INVALID, "The token is not valid.")
        self.theft = theft


def _revoke_family(store: Store, row: dict[str, Any]) -> TokenTheft:
    # Tokens issued before families existed have none: then every token of the user goes.
    where = (
        tokens.c.family == row["family"]
        if row.get("family")
        else tokens.c.user_id == row["user_id"]
    )
    with write_tx(store.db) as conn:
        revoked = conn.execute(
            update(tokens).where(and_(where, tokens.c.revoked.is_(False))).values(revoked=True)
        ).rowcount
    return TokenTheft(row["user_id"], row.get("family"), int(revoked or 0))


def refresh_tokens(
    rt: Runtime, refresh_token: str, access_ttl_s: int, refresh_ttl_s: int
) -> dict[str, Any]:
    """A new token pair of the same family for a valid refresh token, which is spent.

    A refresh token presented again after it was spent (or revoked) is taken for a stolen
    one: every token of its family, access and refresh, is revoked, and RefreshReuse (an
    AUTH_INVALID) says so."""
    store = rt.store
    found = _find_token(store, refresh_token, "refresh")
    if found is not None and found["revoked"]:
        raise RefreshReuse(_revoke_family(store, found))
    row = _usable_token(found)
    with write_tx(store.db) as conn:
        # Spend it only if still unspent: of concurrent refreshes with one token, one wins.
        spent = conn.execute(
            update(tokens)
            .where(and_(tokens.c.hash == row["hash"], tokens.c.revoked.is_(False)))
            .values(revoked=True)
        ).rowcount
    if spent != 1:
        # Another refresh spent it between the read and here: the same token twice.
        raise RefreshReuse(_revoke_family(store, row))
    return _issue(store, row["user_id"], access_ttl_s, refresh_ttl_s, row.get("family"))


def _find_token(store: Store, token: str, kind: str) -> dict[str, Any] | None:
    with store.db.connect() as conn:
        row = (
            conn.execute(
                select(tokens).where(
                    and_(tokens.c.hash == sha256_hex(token), tokens.c.kind == kind)
                )
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None


def _usable_token(row: dict[str, Any] | None) -> dict[str, Any]:
    """The token's row when it exists, is not revoked and has not expired."""
    if row is None or row["revoked"]:
        raise FaceplaneError(Err.AUTH_INVALID, "The token is not valid.")
    if row["expires_at"] < time.time():
        raise FaceplaneError(Err.AUTH_EXPIRED, "The token has expired; log in or refresh.")
    return row


def authenticate_token(rt: Runtime, token: str) -> Principal:
    """The user an access token belongs to."""
    store = rt.store
    row = _usable_token(_find_token(store, token, "access"))
    with store.db.connect() as conn:
        user = conn.execute(select(users).where(users.c.id == row["user_id"])).mappings().first()
    if user is None or not user["active"]:
        raise FaceplaneError(Err.AUTH_INVALID, "The token's user no longer exists.")
    return Principal(
        company_id=user["company_id"],
        role=user["role"],
        user_id=user["id"],
        via="token",
        rate_limit=user["rate_limit"],
        quota=user["quota"],
    )


MAX_LIMIT = 2**31 - 1
"""The largest rate limit or quota: both columns are 32-bit integers in PostgreSQL."""

# The least value of each limit (a quota of 0 allows only free calls); None means the default
# rate limit, or no quota.
LIMIT_FLOORS = {"rate_limit": 1, "quota": 0}


def check_limits(limits: dict[str, Any]) -> None:
    """INVALID_ARGUMENT unless each rate limit or quota in `limits` is an integer the database
    can store (10**20 would overflow the column: a 500 instead of an answer)."""
    for name, low in LIMIT_FLOORS.items():
        value = limits.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_LIMIT:
            raise FaceplaneError(
                Err.INVALID_ARGUMENT,
                f"`{name}` must be an integer from {low} to {MAX_LIMIT}.",
                field=name,
                minimum=low,
                maximum=MAX_LIMIT,
            )


def bootstrap(rt: Runtime, rate_limit: int) -> dict[str, str] | None:
    """On a fresh database: a company, an admin and an app; their secrets, to print once."""
    store = rt.store
    with store.db.connect() as conn:
        if conn.execute(select(companies.c.id).limit(1)).first() is not None:
            return None
    try:
        company = create_company(rt, "default")
    except FaceplaneError as exc:
        if exc.err is not Err.RESOURCE_EXISTS:
            raise
        return None  # another process starting at the same time bootstrapped it
    password = secrets.token_urlsafe(15)
    admin = create_user(rt, company["id"], "admin@localhost", password, "admin")
    app, key = create_app(rt, company["id"], "default", rate_limit, user_id=admin["id"])
    return {
        "company": company["name"],
        "admin_email": admin["email"],
        "admin_password": password,
        "app_id": app["app_id"],
        "key": key,
    }


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash("not a real password, only for constant timing")


# ---- vendor credential schemes (Pho.to APP_ID/KEY/SIGN_DATA, Linkface api_id/api_secret) -----


def authenticate_app_key(rt: Runtime, app_id: str, key: str) -> Principal:
    """The app whose KEY this is, which must be the app `app_id`; AUTH_INVALID otherwise."""
    principal = authenticate_key(rt, key)
    if principal.app_id != app_id:
        raise FaceplaneError(Err.AUTH_INVALID, "The key does not belong to this app id.")
    return principal


def authenticate_data_signature(rt: Runtime, app_id: str, signature: str, data: bytes) -> Principal:
    """SIGN_DATA = HMAC-SHA256(DATA, KEY) of app `app_id`; the signature is the replay token.

    Pho.to signs no time and no nonce, so a signature is accepted once per key: every accepted
    one is remembered (data_signatures) until the key is rotated or the app deleted."""
    store = rt.store
    row = _signing_app(store, app_id)
    _check_hmac(store, row, data, signature)
    digest = hashlib.sha256(signature.lower().encode()).hexdigest()
    try:
        with write_tx(store.db) as conn:
            conn.execute(
                insert(data_signatures).values(app_id=app_id, digest=digest, created_at=time.time())
            )
    except IntegrityError:
        raise FaceplaneError(
            Err.SIGNATURE_INVALID, "This SIGN_DATA was used already: the call is a replay."
        ) from None
    return _app_principal(row, "signature")

"""`faceplane admin ...`: companies, users, apps and keys, on the local database (no server
needed), through the runtime and services.accounts like the admin routes."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faceplane.errors import Err, FaceplaneError
from faceplane.runtime import Runtime
from faceplane.services import accounts
from faceplane.settings import Settings


def _company(rt: Runtime, name: str, create: bool) -> dict[str, Any]:
    found = accounts.find_company(rt, name)
    if found is None and create:
        return accounts.create_company(rt, name)
    if found is None:
        raise FaceplaneError(Err.RESOURCE_NOT_FOUND, f"No company {name!r}.")
    return found


def _print(obj: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj, indent=2, default=str))
    elif isinstance(obj, list):
        for item in obj:
            print("  ".join(f"{k}={v}" for k, v in item.items()))
    else:
        for k, v in obj.items():
            print(f"{k:12s} {v}")


@dataclass(frozen=True)
class Expiry:
    """A parsed `--expires`: the instant (epoch seconds), or None for "never expires"."""

    at: float | None


def parse_expiry(text: str) -> Expiry:
    """`--expires`: `none` (never), or an ISO 8601 date or date-time; no offset means UTC.

    An offset is honoured (`2030-01-01T00:00:00+05:00` is 19:00 UTC the day before); anything
    else is a usage error (argparse prints it and exits 2).
    """
    if text.strip().lower() in ("none", "never"):
        return Expiry(None)
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date-time (e.g. 2030-01-01T00:00:00+05:00) or `none`"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return Expiry(when.timestamp())


def run_admin(args: argparse.Namespace, settings: Settings) -> int:
    """Dispatch `faceplane admin <what> <action>`."""
    rt = Runtime.open(settings)
    try:
        out = _dispatch(args, rt)
    except FaceplaneError as exc:
        print(f"error {exc.err.name}: {exc.message}", file=sys.stderr)
        return 2
    finally:
        rt.close()
    if out is not None:
        _print(out, getattr(args, "json", False))
    return 0


def _dispatch(args: argparse.Namespace, rt: Runtime) -> Any:
    what, action = args.what, args.action
    if what == "company":
        if action == "create":
            return accounts.create_company(rt, args.name)
        return accounts.list_companies(rt)
    if what == "user":
        company = _company(rt, args.company, create=False)
        if action == "create":
            password = args.password or (
                getpass.getpass("password: ") if sys.stdin.isatty() else secrets.token_urlsafe(15)
            )
            user = accounts.create_user(rt, company["id"], args.email, password, args.role)
            if not args.password and not sys.stdin.isatty():
                user["password"] = password  # generated: shown this once
            return user
        return accounts.list_users(rt, company["id"])
    # apps
    if action == "create":
        company = _company(rt, args.company, create=True)
        app, key = accounts.create_app(
            rt,
            company["id"],
            args.name,
            args.rate_limit or rt.settings.default_rate_limit,
            args.quota,
            None,
            args.expires.at if args.expires else None,
        )
        return {**app, "key": key}
    if action == "list":
        company = _company(rt, args.company, create=False)
        return accounts.list_apps(rt, company["id"])
    if action == "rotate":
        app, key = accounts.rotate_key(rt, None, args.app_id)
        return {**app, "key": key}
    if action in ("deactivate", "activate"):
        status = "deactivated" if action == "deactivate" else "active"
        return accounts.update_app(rt, None, args.app_id, {"status": status})
    changes: dict[str, Any] = {}
    if args.rate_limit is not None:
        changes["rate_limit"] = args.rate_limit
    if args.quota is not None:
        changes["quota"] = args.quota if args.quota >= 0 else None
    if args.expires is not None:
        changes["expires_at"] = args.expires.at
    return accounts.update_app(rt, None, args.app_id, changes)


def add_admin_parser(sub: Any) -> None:
    """Add `admin` and its sub-commands to the main parser."""
    admin = sub.add_parser("admin", help="manage companies, users, apps and keys")
    what = admin.add_subparsers(dest="what", required=True)

    company = what.add_parser("company", help="companies (tenants)")
    c_act = company.add_subparsers(dest="action", required=True)
    c_new = c_act.add_parser("create")
    c_new.add_argument("name")
    c_new.add_argument("--json", action="store_true")
    c_list = c_act.add_parser("list")
    c_list.add_argument("--json", action="store_true")

    user = what.add_parser("user", help="users and their roles")
    u_act = user.add_subparsers(dest="action", required=True)
    u_new = u_act.add_parser("create")
    u_new.add_argument("--company", required=True)
    u_new.add_argument("--email", required=True)
    u_new.add_argument("--role", choices=accounts.ROLES, default="client")
    u_new.add_argument("--password", help="default: asked, or generated and shown once")
    u_new.add_argument("--json", action="store_true")
    u_list = u_act.add_parser("list")
    u_list.add_argument("--company", required=True)
    u_list.add_argument("--json", action="store_true")

    app = what.add_parser("app", help="apps: APP_ID and KEY, status, limits")
    a_act = app.add_subparsers(dest="action", required=True)
    a_new = a_act.add_parser("create", help="a new app; prints app_id and key (once)")
    a_new.add_argument("--company", required=True, help="name or id (created if missing)")
    a_new.add_argument("--name", default="app")
    a_new.add_argument("--rate-limit", type=limit_arg(1), help="requests per window")
    a_new.add_argument("--quota", type=limit_arg(0), help="credits per period (default: unlimited)")
    a_new.add_argument(
        "--expires",
        type=parse_expiry,
        help="ISO 8601 date-time after which it is refused (no offset: UTC), or `none`",
    )
    a_new.add_argument("--json", action="store_true")
    a_list = a_act.add_parser("list")
    a_list.add_argument("--company", required=True)
    a_list.add_argument("--json", action="store_true")
    for name in ("rotate", "deactivate", "activate"):
        p = a_act.add_parser(name)
        p.add_argument("app_id")
        p.add_argument("--json", action="store_true")
    lim = a_act.add_parser("limits", help="set rate limit, quota (-1: unlimited) or expiry")
    lim.add_argument("app_id")
    lim.add_argument("--rate-limit", type=limit_arg(1))
    lim.add_argument("--quota", type=limit_arg(-1))
    lim.add_argument(
        "--expires",
        type=parse_expiry,
        help="ISO 8601 date-time after which it is refused (no offset: UTC); `none` clears it",
    )
    lim.add_argument("--json", action="store_true")
    admin.set_defaults(fn=run_admin)


def limit_arg(low: int) -> Callable[[str], int]:
    """An argparse type: an integer from `low` to the largest limit the database stores."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= accounts.MAX_LIMIT:
            raise argparse.ArgumentTypeError(f"{value} is not from {low} to {accounts.MAX_LIMIT}")
        return value

    return parse

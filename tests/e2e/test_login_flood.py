"""Issue 11, items 3 and 10: a flood of wrong passwords against a real server is throttled (429,
Retry-After), audited, and never starves other requests; a reused refresh token revokes its
whole login."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx

from live import Server

EMAIL, PASSWORD = "boss@e2e.test", "long enough pw"


def _server(tmp_path: Path) -> Server:
    server = Server(tmp_path / "data", FACEPLANE_WORKERS="0", FACEPLANE_LOGIN_LOCKOUT_S="2")
    server.start()
    subprocess.run(
        [sys.executable, "-m", "faceplane.cli", "admin", "user", "create", "--company", "e2e",
         "--email", EMAIL, "--role", "admin", "--password", PASSWORD],
        env=server.env, check=True, capture_output=True,
    )  # fmt: skip
    return server


async def _flood(
    base: str, headers: dict[str, str], n: int
) -> tuple[list[httpx.Response], list[int]]:
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        logins = [
            client.post("/v1/auth/login", json={"email": EMAIL, "password": f"wrong {i}"})
            for i in range(n)
        ]
        flood = asyncio.gather(*logins)
        me = [(await client.get("/v1/me", headers=headers)).status_code for _ in range(3)]
        return list(await flood), me


def test_forty_concurrent_wrong_passwords_are_throttled_and_audited(tmp_path: Path) -> None:
    server = _server(tmp_path)
    try:
        answers, me = asyncio.run(_flood(server.base, server.headers, 40))
        codes = [r.status_code for r in answers]
        # At most `login_max_failures` (5) guesses at one account are ever checked at once.
        assert codes.count(401) == 5 and codes.count(429) == 35, codes
        for r in answers:
            if r.status_code == 429:
                assert r.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
                assert int(r.headers["Retry-After"]) >= 1
        assert me == [200, 200, 200]
        # Locked now, even with the right password, until the backoff ends.
        right = {"email": EMAIL, "password": PASSWORD}
        locked = httpx.post(server.base + "/v1/auth/login", json=right)
        assert locked.status_code == 429
        time.sleep(int(locked.headers["Retry-After"]) + 0.5)
        ok = httpx.post(server.base + "/v1/auth/login", json=right)
        assert ok.status_code == 200, ok.text
        admin = {"Authorization": f"Bearer {ok.json()['access_token']}"}
        entries = httpx.get(server.base + "/v1/admin/audit?limit=100", headers=admin).json()
        failed = [e for e in entries["entries"] if e["action"] == "login.failed"]
        assert len(failed) == 5
        assert {(e["resource"], e["status"], e["ip"]) for e in failed} == {
            (f"account:{EMAIL}", 401, "127.0.0.1")
        }
        assert any(e["action"] == "login.locked" for e in entries["entries"])
        assert all("wrong" not in str(e) for e in entries["entries"])
    finally:
        server.stop()


def test_a_reused_refresh_token_revokes_its_whole_login(tmp_path: Path) -> None:
    server = _server(tmp_path)
    try:
        base = server.base
        a = httpx.post(base + "/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}).json()
        b = httpx.post(base + "/v1/auth/refresh", json={"refresh_token": a["refresh_token"]})
        assert b.status_code == 200
        b_pair = b.json()
        bearer = {"Authorization": f"Bearer {b_pair['access_token']}"}
        assert httpx.get(base + "/v1/me", headers=bearer).status_code == 200
        reuse = httpx.post(base + "/v1/auth/refresh", json={"refresh_token": a["refresh_token"]})
        assert reuse.status_code == 401 and reuse.json()["error"]["code"] == "AUTH_INVALID"
        assert httpx.get(base + "/v1/me", headers=bearer).status_code == 401
        again = httpx.post(
            base + "/v1/auth/refresh", json={"refresh_token": b_pair["refresh_token"]}
        )
        assert again.status_code == 401
        other = httpx.post(base + "/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
        admin = {"Authorization": f"Bearer {other.json()['access_token']}"}
        entries = httpx.get(base + "/v1/admin/audit", headers=admin).json()["entries"]
        reused = [e for e in entries if e["action"] == "refresh.reused"]
        # The reuse of A revoked its family (A's access token, B's two); B's refresh afterwards
        # is a reuse of a revoked token too, audited, with nothing left to revoke.
        assert [(e["status"], e["resource"].split()[-1]) for e in reversed(reused)] == [
            (401, "revoked:3"),
            (401, "revoked:0"),
        ]
    finally:
        server.stop()

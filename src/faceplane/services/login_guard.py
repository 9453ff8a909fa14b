"""Login throttles: per account and per client address, with doubling lockouts, and the small
pool of password-hashing slots.

The state lives in the server process (each API process keeps its own: with N processes on one
database an attacker gets N times the allowance). It is bounded: at most `MAX_ENTRIES`
accounts and addresses are remembered, the least recently seen forgotten first.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from faceplane.errors import Err, FaceplaneError
from faceplane.settings import Settings

MAX_ENTRIES = 100_000


@dataclass
class _Entry:
    failures: int = 0
    in_flight: int = 0
    blocked_until: float = 0.0
    last_failure: float = 0.0


@dataclass(frozen=True)
class Limit:
    """How many failures a kind of subject (account, address) may have."""

    max_failures: int
    lockout_s: float
    max_lockout_s: float
    window_s: float


class LoginThrottle:
    """Failures and attempts in flight per subject ("account:..." or "address:...").

    An attempt is admitted (`admit`) only when no subject of it is locked out and its failures
    plus its attempts in flight stay below the limit, so a burst of concurrent guesses at one
    account gets at most `max_failures` of them hashed. Each admitted attempt ends with
    `failed` or `succeeded`.
    """

    def __init__(self, limits: dict[str, Limit], max_entries: int = MAX_ENTRIES) -> None:
        self.limits = limits
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def _entry(self, key: str, now: float) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        limit = self.limits[key.split(":", 1)[0]]
        if entry.failures and now - entry.last_failure > limit.window_s and not entry.in_flight:
            entry.failures, entry.blocked_until = 0, 0.0
        return entry

    def admit(self, subjects: list[str], now: float | None = None) -> None:
        """Count one attempt in flight for each subject, or refuse with RATE_LIMIT_EXCEEDED
        (`retry_after_s`: when the longest lockout among them ends)."""
        now = time.time() if now is None else now
        with self._lock:
            entries = [(s, self._entry(s, now)) for s in subjects]
            wait = 0.0
            for subject, entry in entries:
                limit = self.limits[subject.split(":", 1)[0]]
                if entry.blocked_until > now:
                    wait = max(wait, entry.blocked_until - now)
                elif entry.in_flight >= max(1, limit.max_failures - entry.failures):
                    # Guesses already in flight may each be one more failure; once a lockout
                    # has ended, one attempt at a time (its failure doubles the next one).
                    wait = max(wait, limit.lockout_s)
            if wait > 0:
                raise FaceplaneError(
                    Err.RATE_LIMIT_EXCEEDED,
                    "Too many failed logins: wait before trying again.",
                    retry_after_s=max(1, math.ceil(wait)),
                )
            for _, entry in entries:
                entry.in_flight += 1

    def failed(self, subjects: list[str], now: float | None = None) -> bool:
        """One admitted attempt failed; True when it started (or lengthened) a lockout."""
        now = time.time() if now is None else now
        locked = False
        with self._lock:
            for subject in subjects:
                entry = self._entry(subject, now)
                limit = self.limits[subject.split(":", 1)[0]]
                entry.in_flight = max(0, entry.in_flight - 1)
                entry.failures += 1
                entry.last_failure = now
                over = entry.failures - limit.max_failures
                if over >= 0:
                    lockout = min(limit.max_lockout_s, limit.lockout_s * 2 ** min(over, 64))
                    entry.blocked_until = max(entry.blocked_until, now + lockout)
                    locked = True
        return locked

    def succeeded(self, subjects: list[str], forget: list[str]) -> None:
        """One admitted attempt succeeded: its subjects in `forget` lose their failures."""
        with self._lock:
            for subject in subjects:
                entry = self._entries.get(subject)
                if entry is None:
                    continue
                entry.in_flight = max(0, entry.in_flight - 1)
                if subject in forget:
                    entry.failures, entry.blocked_until = 0, 0.0

    def abandoned(self, subjects: list[str]) -> None:
        """One admitted attempt ended without a verdict (no hashing slot, an error)."""
        with self._lock:
            for subject in subjects:
                entry = self._entries.get(subject)
                if entry is not None:
                    entry.in_flight = max(0, entry.in_flight - 1)

    def failures(self, subject: str) -> int:
        """The failures remembered for a subject."""
        with self._lock:
            entry = self._entries.get(subject)
            return entry.failures if entry else 0


class HashSlots:
    """At most `size` password hashes at once; more wait `wait_s`, then SERVER_BUSY (503)."""

    def __init__(self, size: int, wait_s: float) -> None:
        self.size, self.wait_s = size, wait_s
        self._sem: asyncio.Semaphore | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.size)
        return self._sem

    async def acquire(self) -> None:
        """Take a slot within `wait_s`, or refuse with SERVER_BUSY (retry_after_s 1)."""
        sem = self._semaphore()
        try:
            await asyncio.wait_for(sem.acquire(), timeout=self.wait_s)
        except TimeoutError:
            raise FaceplaneError(
                Err.SERVER_BUSY,
                "Too many logins are being checked at once; try again shortly.",
                retry_after_s=1,
            ) from None

    def release(self) -> None:
        """Give back a slot taken by `acquire`."""
        self._semaphore().release()


class LoginGuard:
    """The throttle and the hashing slots of one server process."""

    def __init__(self, throttle: LoginThrottle, slots: HashSlots) -> None:
        self.throttle = throttle
        self.slots = slots

    @classmethod
    def from_settings(cls, s: Settings) -> LoginGuard:
        """From the `login_*` settings."""
        window, lockout, longest = (
            s.login_failure_window_s,
            s.login_lockout_s,
            s.login_max_lockout_s,
        )
        throttle = LoginThrottle(
            {
                "account": Limit(s.login_max_failures, lockout, longest, window),
                "address": Limit(s.login_max_failures_per_address, lockout, longest, window),
            }
        )
        return cls(throttle, HashSlots(s.login_hash_threads, s.login_hash_wait_s))


def subjects(email: str, address: str | None) -> list[str]:
    """The throttle subjects of one attempt: the account (its email, lower-cased, whether or
    not it exists) and the client address when known."""
    out = ["account:" + email.strip().lower()]
    if address:
        out.append("address:" + address)
    return out

"""Cashier authentication against the local replica of HQ's cashier list, usable while HQ is unreachable.

HQ replicates argon2 password hashes and a revocation list; the POS never receives or stores a plain password.
A successful login returns a random session token. The database keeps only its SHA-256, which is enough for a
256-bit random value, so that a copied database file does not hand out live sessions. Every request looks its
session up in the database, so a revocation takes effect on the first request after the sync agent stored it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from retail_edge.pos.storage import CashierRecord

# Bound on the failure counters kept in memory, so that guessing random cashier ids cannot grow them forever.
MAX_TRACKED_CASHIERS = 10_000


def new_session_token() -> tuple[str, str]:
    """Return a new session token and the SHA-256 hex digest under which it is stored."""
    token = secrets.token_urlsafe(32)
    return token, token_digest(token)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class _FailureWindow:
    count: int = 0
    locked_until: float = 0.0


class LoginGuard:
    """Argon2 verification plus a per-cashier lockout after repeated failed logins.

    The lockout lives in memory: a restart clears it, which is acceptable because a restart takes longer than the
    argon2 work an attacker saves.
    """

    def __init__(self, max_failures: int, lockout_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds
        self._clock = clock
        self._hasher = PasswordHasher()
        self._failures: dict[str, _FailureWindow] = {}
        self._dummy_hash: str | None = None

    def retry_after(self, cashier_id: str) -> float:
        """Return the seconds until the cashier may try again, or 0 when no lockout is active."""
        window = self._failures.get(cashier_id)
        if window is None:
            return 0.0
        return max(0.0, window.locked_until - self._clock())

    def verify(self, cashier: CashierRecord | None, password: str) -> bool:
        """Check a password against the cashier's replicated argon2 hash; blocking, so call it from a thread.

        An unknown or revoked cashier still costs one argon2 verification, so response times do not reveal which
        cashier ids exist.
        """
        if cashier is None:
            if self._dummy_hash is None:
                self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
            target = self._dummy_hash
        else:
            target = cashier.password_hash
        try:
            matched = self._hasher.verify(target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            matched = False
        return matched and cashier is not None

    def record_failure(self, cashier_id: str) -> None:
        if cashier_id not in self._failures and len(self._failures) >= MAX_TRACKED_CASHIERS:
            now = self._clock()
            self._failures = {key: value for key, value in self._failures.items() if value.locked_until > now}
        window = self._failures.setdefault(cashier_id, _FailureWindow())
        window.count += 1
        if window.count >= self.max_failures:
            window.locked_until = self._clock() + self.lockout_seconds
            window.count = 0

    def record_success(self, cashier_id: str) -> None:
        self._failures.pop(cashier_id, None)

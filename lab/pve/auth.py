"""PVE authentication: password tickets with CSRF prevention tokens, and API tokens.

Tickets and CSRF tokens carry their creation time and an HMAC over it, like PVE's signed tickets
(PVE signs with an RSA key; an HMAC gives the same observable behaviour). Both are valid for two hours.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

from lab.pve.config import TOKEN_ID_RE, LabConfig

TICKET_LIFETIME_S = 7200
CLOCK_SKEW_S = 300


class AuthError(Exception):
    """Authentication failed (HTTP 401); the message is PVE's."""


@dataclass(frozen=True)
class Caller:
    """The authenticated caller: `authid` is `user@realm` for tickets and `user@realm!token` for tokens."""

    user: str
    token: str | None = None

    @property
    def authid(self) -> str:
        return self.user if self.token is None else f"{self.user}!{self.token}"

    @property
    def is_root_password_login(self) -> bool:
        """PVE's root-only options need exactly root@pam; an API token, even root@pam's, is another identity."""
        return self.authid == "root@pam"


class Authenticator:
    def __init__(self, config: LabConfig, secret: bytes) -> None:
        self.config = config
        self.secret = secret

    def _sign(self, text: str) -> str:
        digest = hmac.new(self.secret, text.encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode().rstrip("=")

    def login(self, username: str, password: str, realm: str | None = None) -> tuple[str, str, str]:
        """Check a password and return (user, ticket, CSRF token); raise AuthError as PVE does."""
        user = username if "@" in username else f"{username}@{realm or 'pam'}"
        expected = self.config.users.get(user)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            raise AuthError("authentication failure")
        return user, self.make_ticket(user), self.make_csrf_token(user)

    def make_ticket(self, user: str, now: float | None = None) -> str:
        plain = f"PVE:{user}:{int(now or time.time()):08X}"
        return f"{plain}::{self._sign(plain)}"

    def make_csrf_token(self, user: str, now: float | None = None) -> str:
        stamp = f"{int(now or time.time()):08X}"
        return f"{stamp}:{self._sign(f'{stamp}:{user}')}"

    def check_ticket(self, ticket: str) -> Caller:
        plain, separator, signature = ticket.partition("::")
        parts = plain.split(":")
        if not separator or len(parts) != 3 or parts[0] != "PVE":
            raise AuthError("authentication failure")
        if not hmac.compare_digest(self._sign(plain), signature):
            raise AuthError("authentication failure")
        self._check_age(parts[2])
        user = parts[1]
        if user not in self.config.users:
            raise AuthError("authentication failure")
        return Caller(user)

    def check_csrf_token(self, caller: Caller, token: str | None) -> None:
        if not token:
            raise AuthError("Permission denied - invalid csrf token")
        stamp, _, signature = token.partition(":")
        if not hmac.compare_digest(self._sign(f"{stamp}:{caller.user}"), signature):
            raise AuthError("Permission denied - invalid csrf token")
        try:
            self._check_age(stamp)
        except AuthError:
            raise AuthError("Permission denied - invalid csrf token") from None

    def check_api_token(self, header_value: str) -> Caller:
        """Check `PVEAPIToken=USER@REALM!TOKENID=SECRET` (the part after the `PVEAPIToken=` prefix)."""
        token_id, separator, secret = header_value.partition("=")
        match = TOKEN_ID_RE.fullmatch(token_id)
        if not separator or match is None:
            raise AuthError("invalid token value!")
        token = self.config.tokens.get(token_id)
        if token is None or not hmac.compare_digest(token.secret.encode(), secret.encode()):
            raise AuthError("authentication failure")
        return Caller(match.group(1), match.group(2))

    @staticmethod
    def _check_age(stamp: str) -> None:
        try:
            created = int(stamp, 16)
        except ValueError:
            raise AuthError("authentication failure") from None
        age = time.time() - created
        if age < -CLOCK_SKEW_S or age > TICKET_LIFETIME_S:
            raise AuthError("authentication failure")

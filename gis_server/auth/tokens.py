"""Short-lived signed tokens (JWT, HS256) for the map pages and scripts.

``POST /auth/token`` (the OAuth2 password flow FastAPI's security tools
speak) returns one; it carries the user name and role, expires after
``GIS_AUTH_TOKEN_MINUTES``, and is checked for signature, expiry and issuer
on every request. The account is looked up again (cached for
``GIS_AUTH_LOOKUP_CACHE_SECONDS``), and the token's ``ver`` claim must equal
the account's ``token_version``, which a new password or disabling the account
raises: so the tokens issued before stop working, within that cache time, and
do not come back when a disabled account is enabled again.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import jwt

from gis_server.auth.accounts import Account
from gis_server.auth.settings import AuthSettings
from gis_server.errors import Unauthorized

ALGORITHM = "HS256"


def issue(account: Account, settings: AuthSettings) -> tuple[str, int]:
    """A signed token for ``account`` and its lifetime in seconds."""
    now = dt.datetime.now(dt.UTC)
    lifetime = settings.token_minutes * 60
    claims = {
        "sub": account.username,
        "role": account.role,
        "ver": account.token_version,
        "iss": settings.issuer,
        "iat": now,
        "exp": now + dt.timedelta(seconds=lifetime),
    }
    return jwt.encode(claims, settings.signing_key(), algorithm=ALGORITHM), lifetime


def decode(token: str, settings: AuthSettings) -> dict[str, Any]:
    """The claims of a valid token; :class:`Unauthorized` otherwise."""
    try:
        return jwt.decode(
            token,
            settings.signing_key(),
            algorithms=[ALGORITHM],
            issuer=settings.issuer,
            options={"require": ["exp", "iat", "sub", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired; sign in again") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("the token is not valid") from None

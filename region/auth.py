"""Who is calling: HS256 tokens and browser origins.

A token is a JWT with ``sub`` (user id), ``name`` (display name), ``roles`` (a subset of
viewer, host, moderator, verified) and ``exp``. HTTP clients send
``Authorization: Bearer <token>``; browsers, which cannot set headers on WebSocket or
EventSource, send ``?access_token=<token>`` instead (docs/protocol.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import jwt

from chorus.model import BADGES, Badge
from region.errors import ApiError, ErrorCode

ROLES = ("viewer", "host", "moderator", "verified")
_LEEWAY_S = 5


@dataclass(frozen=True)
class Claims:
    user: str
    name: str
    roles: tuple[str, ...]
    exp: int

    @property
    def badge(self) -> Badge:
        for badge in BADGES:
            if badge in self.roles:
                return badge
        return ""

    @property
    def is_moderator(self) -> bool:
        return "moderator" in self.roles or "host" in self.roles


def issue_token(secret: str, user: str, *, name: str | None = None,
                roles: tuple[str, ...] = ("viewer",), ttl_s: int = 3600,
                now: float | None = None) -> str:
    for role in roles:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    if not user or len(user) > 64:
        raise ValueError("a user id is 1-64 characters")
    issued = int(now if now is not None else time.time())
    return jwt.encode({"sub": user, "name": name or user, "roles": list(roles),
                       "iat": issued, "exp": issued + ttl_s}, secret, algorithm="HS256")


def verify_token(secret: str, token: str | None) -> Claims:
    if not token:
        raise ApiError(ErrorCode.UNAUTHENTICATED, "a token is required: 'Authorization: Bearer "
                                                  "<token>' or ?access_token=<token>")
    try:
        doc = jwt.decode(token, secret, algorithms=["HS256"], leeway=_LEEWAY_S,
                         options={"require": ["sub", "exp"]})
    except jwt.ExpiredSignatureError:
        raise ApiError(ErrorCode.UNAUTHENTICATED, "the token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise ApiError(ErrorCode.UNAUTHENTICATED, f"the token is not valid: {exc}") from None
    roles = doc.get("roles", ["viewer"])
    if not isinstance(roles, list) or not all(r in ROLES for r in roles):
        raise ApiError(ErrorCode.UNAUTHENTICATED, "the token's roles are not valid")
    user = doc["sub"]
    if not isinstance(user, str) or not user or len(user) > 64:
        raise ApiError(ErrorCode.UNAUTHENTICATED, "the token's subject is not a user id")
    name = doc.get("name") or user
    return Claims(user=user, name=str(name)[:64], roles=tuple(roles), exp=int(doc["exp"]))


def bearer(authorization: str | None, query_token: str | None) -> str | None:
    """The token from the Authorization header, else from the query string."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(ErrorCode.UNAUTHENTICATED,
                           "the Authorization header must be 'Bearer <token>'")
        return value.strip()
    return query_token


def origin_allowed(origin: str | None, allowed: tuple[str, ...]) -> bool:
    """Non-browser clients send no Origin and pass; a browser's must match scheme and host
    of an allowed origin (any port, so that dev servers on any port work)."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    for entry in allowed:
        want = urlsplit(entry)
        if parts.scheme == want.scheme and parts.hostname == want.hostname and (
                want.port is None or want.port == parts.port):
            return True
    return False

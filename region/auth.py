"""Who is calling: HS256 tokens and browser origins.

A token is a JWT with ``sub`` (user id, `chorus.model.USER_ID`'s alphabet), ``name`` (display
name), ``roles`` (a subset of viewer, host, moderator, verified), ``iss`` and ``aud`` (the
configured ``auth.issuer`` and ``auth.audience``), and ``iat`` and ``exp`` (numbers of seconds
since the epoch, at most ``auth.max_token_lifetime_s`` apart). HTTP clients send
``Authorization: Bearer <token>``; browsers, which cannot set headers on WebSocket or
EventSource, send ``?access_token=<token>`` instead (docs/protocol.md).

A token is checked for its shape (three base64url parts whose JSON is bounded like any client
JSON, region/validation.py) before the JWT library reads its header, so no token can make
verification fail with anything but 401.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import jwt

from chorus.config import AuthConfig
from chorus.model import BADGES, Badge, is_user_id
from region.errors import ApiError, ErrorCode
from region.validation import check_display_name, loads_bounded

ROLES = ("viewer", "host", "moderator", "verified")
LEEWAY_S = 5
MAX_TOKEN_CHARS = 4096
_SEGMENT = re.compile(r"\A[A-Za-z0-9_-]+\Z")
_NUMERIC_DATES = ("exp", "iat", "nbf")


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


def _auth(auth: AuthConfig | str) -> AuthConfig:
    """A bare secret stands for the default issuer and audience: tools and tests of a cluster
    whose regions.yaml keeps them. Pass the config's `AuthConfig` wherever it is at hand."""
    return auth if isinstance(auth, AuthConfig) else AuthConfig(dev_secret=auth)


def issue_token(auth: AuthConfig | str, user: str, *, name: str | None = None,
                roles: tuple[str, ...] = ("viewer",), ttl_s: int | None = None,
                now: float | None = None) -> str:
    """A token that this cluster's gateways accept: signed with ``auth.dev_secret``, naming
    ``auth.issuer`` and ``auth.audience``, valid for ``ttl_s`` (default
    ``auth.token_ttl_s``; negative: already expired, for tests). ValueError on bad input."""
    config = _auth(auth)
    for role in roles:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    if not is_user_id(user):
        raise ValueError("a user id is 1-64 of A-Z a-z 0-9 _ - . @ | +")
    try:
        display = check_display_name(name or user)
    except ApiError as exc:
        raise ValueError(exc.message) from None
    ttl = config.token_ttl_s if ttl_s is None else ttl_s
    if ttl > config.max_token_lifetime_s:
        raise ValueError(f"a token lives at most auth.max_token_lifetime_s "
                         f"({config.max_token_lifetime_s} s)")
    issued = int(now if now is not None else time.time())
    return jwt.encode({"sub": user, "name": display, "roles": list(roles),
                       "iss": config.issuer, "aud": config.audience,
                       "iat": issued, "exp": issued + ttl}, config.dev_secret,
                      algorithm="HS256")


def _refuse(reason: str) -> ApiError:
    return ApiError(ErrorCode.UNAUTHENTICATED, reason)


def _check_shape(token: str) -> None:
    """Three base64url segments whose header and payload are bounded JSON objects: what the
    JWT library may then parse without surprises."""
    if len(token) > MAX_TOKEN_CHARS:
        raise _refuse(f"the token is longer than {MAX_TOKEN_CHARS} characters")
    parts = token.split(".")
    if len(parts) != 3 or not all(_SEGMENT.match(p) for p in parts):
        raise _refuse("the token is not a JWT (three base64url parts)")
    for part, what in ((parts[0], "header"), (parts[1], "payload")):
        try:
            raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
            doc = loads_bounded(raw.decode("utf-8"), f"the token's {what}")
        except (binascii.Error, ValueError, ApiError):
            raise _refuse(f"the token's {what} is not JSON") from None
        if not isinstance(doc, dict):
            raise _refuse(f"the token's {what} is not a JSON object")


def _numeric_date(doc: dict[str, object], claim: str) -> float | None:
    value = doc.get(claim)
    if value is None:
        return None
    # RFC 7519 2: a NumericDate is a JSON number. The JWT library also takes "123" (a string)
    # and true (a bool is an int in Python); neither is a date.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _refuse(f"the token's '{claim}' is not a number of seconds")
    return float(value)


def verify_token(auth: AuthConfig | str, token: str | None, *,
                 now: float | None = None) -> Claims:
    """The token's claims, or ApiError 401 saying what is wrong with it."""
    config = _auth(auth)
    if not token:
        raise _refuse("a token is required: 'Authorization: Bearer <token>' or "
                      "?access_token=<token>")
    _check_shape(token)
    try:
        doc = jwt.decode(token, config.dev_secret, algorithms=["HS256"], leeway=LEEWAY_S,
                         issuer=config.issuer, audience=config.audience,
                         options={"require": ["sub", "exp", "iat", "iss", "aud"]})
    except jwt.ExpiredSignatureError:
        raise _refuse("the token has expired") from None
    except jwt.InvalidIssuerError:
        raise _refuse(f"the token's issuer is not {config.issuer!r}") from None
    except jwt.InvalidAudienceError:
        raise _refuse(f"the token's audience is not {config.audience!r}") from None
    except jwt.InvalidTokenError as exc:
        raise _refuse(f"the token is not valid: {exc}") from None
    except (ValueError, TypeError, OverflowError):
        raise _refuse("the token is not valid") from None
    dates = {claim: _numeric_date(doc, claim) for claim in _NUMERIC_DATES}
    exp, iat = dates["exp"], dates["iat"]
    assert exp is not None and iat is not None  # required above
    clock = now if now is not None else time.time()
    if iat > clock + LEEWAY_S:
        raise _refuse("the token's 'iat' is in the future")
    if exp - iat > config.max_token_lifetime_s:
        raise _refuse(f"the token lives {exp - iat:.0f} s; the limit is "
                      f"{config.max_token_lifetime_s} s (auth.max_token_lifetime_s)")
    roles = doc.get("roles", ["viewer"])
    if not isinstance(roles, list) or not all(isinstance(r, str) and r in ROLES for r in roles):
        raise _refuse("the token's roles are not valid")
    user = doc["sub"]
    if not isinstance(user, str) or not is_user_id(user):
        raise _refuse("the token's subject is not a user id (1-64 of A-Z a-z 0-9 _ - . @ | +)")
    raw_name = doc.get("name")
    try:
        name = user if raw_name is None or raw_name == "" else check_display_name(raw_name)
    except ApiError as exc:
        raise _refuse(f"the token's name cannot be shown: {exc.message}") from None
    return Claims(user=user, name=name, roles=tuple(roles), exp=int(exp))


def bearer(authorization: str | None, query_token: str | None) -> str | None:
    """The token from the Authorization header, else from the query string."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(ErrorCode.UNAUTHENTICATED,
                           "the Authorization header must be 'Bearer <token>'")
        return value.strip()
    return query_token


def origin_allowed(origin: str | None, allowed: tuple[str, ...], *,
                   own: str | None = None) -> bool:
    """Non-browser clients send no Origin and pass; a browser's must be the gateway's own
    (``own``, ``scheme://host[:port]`` as the request named it) or match scheme and host of an
    allowed origin (any port, so that dev servers on any port work). An Origin that is not a
    URL (``http://[::1``, a port out of range, ``null``) is not allowed."""
    if origin is None:
        return True
    if own is not None and origin.lower() == own.lower():
        return True
    try:
        parts = urlsplit(origin)
        host, port = parts.hostname, parts.port
    except ValueError:
        return False
    if not parts.scheme or not host:
        return False
    for entry in allowed:
        want = urlsplit(entry)
        if parts.scheme == want.scheme and host == want.hostname and (
                want.port is None or want.port == port):
            return True
    return False


# -- verified tokens, remembered -----------------------------------------------------------------


class VerifiedTokens:
    """The claims of the tokens this gateway verified, by the token's text: a client that
    posts many times with one token pays its verification (shape, base64, JSON, HMAC: the
    largest CPU cost of a post before this cache) once, not per post.

    Never stale: the signature fixes a token's claims to its text, and the one check that
    depends on the time, expiry (with ``leeway_s``), is made again at each use; an expired
    entry goes through ``verify`` again, which refuses it as it always did. Only tokens that
    verified are kept: a bad token pays the whole check each time. Bounded by
    ``max_entries`` (a few hundred bytes each): when full, expired entries go first, then the
    oldest half."""

    def __init__(self, verify: Callable[[str | None], Claims], *, leeway_s: float = LEEWAY_S,
                 max_entries: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        self._verify = verify
        self.leeway_s = leeway_s
        self.max_entries = max_entries
        self.clock = clock
        self._known: dict[str, Claims] = {}

    def verify(self, token: str | None) -> Claims:
        """``verify``'s answer for ``token``, from memory when it verified before."""
        now = self.clock()
        if token:
            claims = self._known.get(token)
            if claims is not None and claims.exp + self.leeway_s > now:
                return claims
        claims = self._verify(token)
        assert token  # verification refuses an empty one
        if len(self._known) >= self.max_entries:
            self._evict(now)
        self._known[token] = claims
        return claims

    def __len__(self) -> int:
        return len(self._known)

    def _evict(self, now: float) -> None:
        for token, claims in list(self._known.items()):
            if claims.exp + self.leeway_s <= now:
                del self._known[token]
        if len(self._known) >= self.max_entries:  # all valid: the oldest half goes
            for token in list(self._known)[: self.max_entries // 2 + 1]:
                del self._known[token]

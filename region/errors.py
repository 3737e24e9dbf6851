"""Client-visible errors of a region's gateway.

Every HTTP error body is ``{"error": {"code": ..., "message": ...}}``; WebSocket clients get
the same code in an ``error`` frame. `ErrorCode` lists each code with its HTTP status and
whether a retry can help.

Hierarchy::

    ChorusError (chorus.errors)
    └── ApiError                a request is refused; carries an ErrorCode and a message
"""

from __future__ import annotations

import enum

from chorus.errors import ChorusError


class ErrorCode(enum.Enum):
    # value: (wire code, HTTP status, retryable)
    MALFORMED = ("malformed", 400, False)
    UNAUTHENTICATED = ("unauthenticated", 401, False)
    FORBIDDEN = ("forbidden", 403, False)
    NOT_FOUND = ("not_found", 404, False)
    METHOD_NOT_ALLOWED = ("method_not_allowed", 405, False)
    REQUEST_TIMEOUT = ("request_timeout", 408, True)
    TOO_LARGE = ("too_large", 413, False)
    UNSUPPORTED_MEDIA_TYPE = ("unsupported_media_type", 415, False)
    INVALID = ("invalid", 422, False)
    # The comment contains a term the stream's moderators blocked (region/moderation_prefilter).
    BLOCKED = ("blocked", 422, False)
    RATE_LIMITED = ("rate_limited", 429, True)
    # A live connection past the user's or the client address's cap on this gateway; a retry
    # helps once one of the others is closed.
    TOO_MANY_CONNECTIONS = ("too_many_connections", 429, True)
    INTERNAL = ("internal", 500, True)
    UNAVAILABLE = ("unavailable", 503, True)

    @property
    def code(self) -> str:
        return self.value[0]

    @property
    def status(self) -> int:
        return self.value[1]

    @property
    def retryable(self) -> bool:
        return self.value[2]

    @classmethod
    def of_status(cls, status: int) -> ErrorCode | None:
        """The first code with HTTP ``status`` (None: no code has it)."""
        for code in cls:
            if code.status == status:
                return code
        return None


class ApiError(ChorusError):
    """A refused request. ``retry_after_s`` goes out as ``Retry-After`` where it is set."""

    def __init__(self, code: ErrorCode, message: str, *, retry_after_s: float | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s

    def body(self) -> dict[str, dict[str, object]]:
        return {"error": {"code": self.code.code, "message": self.message,
                          "retryable": self.code.retryable}}

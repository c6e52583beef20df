"""The domain's own exceptions.

Domain code raises these; the service turns them into HTTP answers in one place
(`uws_hub.service.handlers.base`). Each carries the message a user reads, so it should say
what went wrong and, where it can, what to do next.
"""

from __future__ import annotations


class UWSError(Exception):
    """Base class: an error with a user-facing message and an HTTP status."""

    status_code = 500

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
        detail: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        #: HTTP headers the answer carries (``Retry-After``, ``Connection``)
        self.headers = headers or {}
        #: more than UWS's own `message` says (which limit, what to do next): answered beside
        #: it as ``detail``, so UWS clients keep the text they expect
        self.detail = detail


class BadRequest(UWSError):
    """The request is malformed or asks for something impossible (400). Nothing was changed."""

    status_code = 400


class Unauthorized(UWSError):
    status_code = 401


class Forbidden(UWSError):
    status_code = 403


class NotFound(UWSError):
    status_code = 404


class ValidationFailed(UWSError):
    """Well-formed input that fails validation rules, e.g. resource options (422)."""

    status_code = 422


class PayloadTooLarge(UWSError):
    status_code = 413


class ConfigError(Exception):
    """Configuration that cannot work. The message is one line naming the setting and the fix."""


class AccountMissing(Forbidden):
    """The person has no POSIX account to own files or run jobs."""


class HubAPIError(Exception):
    """The hub's REST API answered with an error (or could not be reached: status 599)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"hub API {status}: {message}")
        self.status = status
        self.message = message

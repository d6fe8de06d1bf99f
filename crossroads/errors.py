"""The one exception tree of the gateway.

Every error the gateway itself raises is a ``GatewayError``; each class knows its HTTP status
and its Cloudflare-style numeric code. ``crossroads.server.responses.error_response`` is the one
place that turns them into HTTP responses.

    GatewayError (500, 2000)
    ├── BadRequest (400, 2001)
    │   ├── InvalidJSON (400, 2002)
    │   ├── InvalidHeader (400, 2003)
    │   ├── UnsupportedFeature (400, 2004)
    │   ├── UnknownProvider (400, 2006)
    │   ├── MissingProviderKey (400, 2008)
    │   └── InvalidRoute (400, 2010)
    ├── Unauthorized (401, 2009)
    ├── Forbidden (403, 2011)
    ├── NotFound (404, 2012)
    ├── Conflict (409, 2013)
    ├── PayloadTooLarge (413, 2014)
    ├── RateLimited (429, 2015)
    ├── UpstreamError (502, 2005)
    │   ├── UpstreamUnavailable (502, 2005)   connection refused / reset
    │   ├── UpstreamTimeout (504, 2007)       no first byte in time
    │   └── UpstreamProtocolError (502, 2018) malformed or truncated answer
    ├── RouteExhausted (502, 2005)            every model of a dynamic route failed
    └── ServiceDegraded (503, 2019)           a backing store is down and policy is fail-closed

Provider errors (an upstream that answered 4xx/5xx) are *not* GatewayErrors: their status and
body pass through to the caller (see ``ProviderHTTPError``), so a client can tell them apart.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    status = 500
    code = 2000
    default_message = "Internal gateway error"

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None,
                 details: Any = None) -> None:
        self.message = message or self.default_message
        self.headers = headers or {}
        self.details = details
        super().__init__(self.message)


class BadRequest(GatewayError):
    status = 400
    code = 2001
    default_message = "Bad request"


class InvalidJSON(BadRequest):
    code = 2002
    default_message = "Request body is not valid JSON"


class InvalidHeader(BadRequest):
    code = 2003


class UnsupportedFeature(BadRequest):
    code = 2004


class UnknownProvider(BadRequest):
    code = 2006


class MissingProviderKey(BadRequest):
    code = 2008


class InvalidRoute(BadRequest):
    code = 2010


class Unauthorized(GatewayError):
    status = 401
    code = 2009
    default_message = "Unauthorized: missing or invalid cf-aig-authorization token"


class Forbidden(GatewayError):
    status = 403
    code = 2011
    default_message = "Forbidden"


class NotFound(GatewayError):
    status = 404
    code = 2012
    default_message = "Not found"


class Conflict(GatewayError):
    status = 409
    code = 2013
    default_message = "Conflict"


class PayloadTooLarge(GatewayError):
    status = 413
    code = 2014
    default_message = "Request body too large"


class RateLimited(GatewayError):
    status = 429
    code = 2015
    default_message = "Rate limit exceeded"


class SpendLimited(RateLimited):
    """A gateway spend limit (``spend_limits``) is spent."""

    default_message = "Spending limit exceeded"


class UpstreamError(GatewayError):
    status = 502
    code = 2005
    default_message = "Failed to get response from provider"


class UpstreamUnavailable(UpstreamError):
    pass


class UpstreamTimeout(UpstreamError):
    status = 504
    code = 2007
    default_message = "Provider did not answer before the request timeout"


class UpstreamProtocolError(UpstreamError):
    code = 2018
    default_message = "Provider sent a malformed or truncated response"


class RouteExhausted(GatewayError):
    status = 502
    code = 2005
    default_message = "Every model of the route failed"


class ServiceDegraded(GatewayError):
    status = 503
    code = 2019
    default_message = "A backing service is unavailable"


class ProviderHTTPError(Exception):
    """An upstream answered with an error status. Not a GatewayError: it passes through."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}
        super().__init__(f"provider answered {status}")

    @property
    def retryable(self) -> bool:
        return self.status == 429 or self.status >= 500

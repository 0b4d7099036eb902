"""The server's gate, as one ASGI middleware in front of every route (API, page, stream, files).

In order: a body larger than the limit is refused (413) before it is read; on a loopback bind the Host
header must be a loopback name (a DNS-rebinding page cannot reach the API); with `--auth`/`--token`
every request needs credentials (401); a state-changing request from a foreign Origin is refused (403).
Responses carry a Content-Security-Policy that lets the page load nothing from outside this server.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keypaint.server.config import ServerConfig, is_loopback

TOKEN_COOKIE = "keypaint_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
                                 b"script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
                                 b"base-uri 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class Guard:
    """ASGI middleware enforcing `ServerConfig`'s limits and credentials."""

    def __init__(self, app: ASGIApp, config: ServerConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        set_cookie = self._token_from_query(scope)
        started = refused = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 has been sent; the app's own answer is dropped
            if message["type"] == "http.response.start":
                started = True
                extra = list(SECURITY_HEADERS)
                if set_cookie:
                    extra.append((b"set-cookie", f"{TOKEN_COOKIE}={set_cookie}; Path=/; HttpOnly; "
                                                 "SameSite=Strict".encode()))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        received, limit = 0, self.config.body_limit(scope["path"])

        async def receive_wrapper() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # A body without Content-Length (chunked) that grows past the limit: answer 413 now
                    # and tell the app its client left, so it stops reading.
                    refused = True
                    if not started:
                        await _too_large(limit)(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except Exception:
            if not refused:
                raise

    def _refusal(self, scope: Scope, headers: Headers) -> JSONResponse | None:
        length, limit = headers.get("content-length"), self.config.body_limit(scope["path"])
        if length is not None and (not length.isdigit() or int(length) > limit):
            return _too_large(limit)
        host = headers.get("host", "")
        if is_loopback(self.config.host) and not is_loopback(_hostname(host)):
            return _error(403, f"host {host!r} is not this server's loopback address")
        if self.config.secured and not self._authorised(scope, headers):
            challenge = 'Basic realm="keypaint"' if self.config.auth else 'Bearer realm="keypaint"'
            return _error(401, "credentials required", {"WWW-Authenticate": challenge})
        if scope["method"] not in SAFE_METHODS and not self._same_origin(headers):
            return _error(403, "cross-origin requests may not change anything on this server")
        return None

    def _authorised(self, scope: Scope, headers: Headers) -> bool:
        config = self.config
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if config.auth is not None and scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                return False
            return _equal(user, config.auth[0]) & _equal(password, config.auth[1])
        if config.token is None:
            return False
        if scheme.lower() == "bearer":
            return _equal(value.strip(), config.token)
        cookie = _cookie(headers.get("cookie", ""), TOKEN_COOKIE)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
        return _equal(cookie, config.token) or _equal(query, config.token)

    def _token_from_query(self, scope: Scope) -> str | None:
        """A correct ?token= on a page load becomes a cookie, so the page's own requests carry it."""
        if self.config.token is None or scope["method"] != "GET":
            return None
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
        return query if query and _equal(query, self.config.token) else None

    def _same_origin(self, headers: Headers) -> bool:
        origin = headers.get("origin")
        if origin is None:
            # Browsers send Origin on every cross-origin write; no Origin means a script, curl or a form
            # from this very page in an old browser. Sec-Fetch-Site still tells a cross-site one.
            return headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")
        own = {f"http://{headers.get('host', '')}", f"https://{headers.get('host', '')}"}
        return origin in own or origin in self.config.allowed_origins


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _equal(a: str, b: str) -> bool:
    """Constant time, length included: both sides are hashed to 32 bytes before they are compared."""
    return hmac.compare_digest(_digest(a), _digest(b))


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _cookie(header: str, name: str) -> str:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "detail": message}, status_code=status, headers=headers)


def _too_large(limit: int) -> JSONResponse:
    return _error(413, f"request body is larger than {limit} bytes")

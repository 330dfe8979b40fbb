"""API keys, per-key rate limits and traffic classes, checked before a request's body is read.

With ``JUDGE_API_KEYS_FILE`` unset (the default) there is no authentication at all, so the
embedded demo works with no keys. With it set, every route except ``OPEN_ROUTES`` needs a key,
sent as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``:

* no key, or one the file does not know: 401 ``unauthorized`` (with ``WWW-Authenticate``);
* a disabled key, or one whose traffic class may not call the route: 403 ``forbidden``;
* a key whose token bucket is empty: 429 ``rate_limited`` with ``Retry-After``.

``AuthMiddleware`` is pure ASGI and sits outside the body-size and Idempotency-Key middlewares,
so an unauthenticated upload is refused from its headers alone. An admitted request carries its
key's name and class in ``scope["state"]`` (``request.state.api_key_name`` / ``api_key_class``):
``effective_priority`` caps its scheduling priority and the idempotency store is scoped by it.

Secrets: the key itself is hashed at once and never logged; logs name the key (its ``name``).
The keys file is re-read when it changes (checked at most every ``RELOAD_CHECK_S``), so
``paras2s-judge keys disable`` takes effect on a running server; a broken edit keeps the old keys.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from starlette.requests import Request

from judge_service.api.error_table import status_for
from judge_service.api.keys_file import ApiKeyEntry, KeysFileError, hash_key, load_keys
from judge_service.api.middleware import ASGIApp, Receive, Scope, Send, send_json_error
from judge_service.api.rate_limit import RateLimiter, make_rate_limiter
from judge_service.api.traffic_classes import OPEN_ROUTES, TRAFFIC_CLASSES, capped_priority, route_group
from judge_service.config import Settings
from judge_service.errors import ForbiddenError, JudgeError, RateLimitedError, UnauthorizedError
from judge_service.metrics import ServiceMetrics

log = logging.getLogger(__name__)

RELOAD_CHECK_S = 1.0
STATE_NAME = "api_key_name"
STATE_CLASS = "api_key_class"
HOW_TO_SEND = "send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"


class KeyRing:
    """The keys of the keys file by hash; follows edits of the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._by_hash = self._index(load_keys(path))  # start-up: a bad file stops the server
        self._signature = self._stat()
        self._checked_s = time.monotonic()

    @staticmethod
    def _index(entries: list[ApiKeyEntry]) -> dict[str, ApiKeyEntry]:
        return {e.sha256: e for e in entries}

    def _stat(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _maybe_reload(self) -> None:
        now_s = time.monotonic()
        if now_s - self._checked_s < RELOAD_CHECK_S:
            return
        self._checked_s = now_s
        signature = self._stat()
        if signature == self._signature:
            return
        self._signature = signature
        try:
            self._by_hash = self._index(load_keys(self.path))
        except KeysFileError as exc:
            log.error("the API keys file changed but cannot be used; keeping the keys loaded before:\n%s", exc)
            return
        log.info("reloaded the API keys file %s (%d keys)", self.path, len(self._by_hash))

    def lookup(self, key: str) -> ApiKeyEntry | None:
        """The entry of a presented key, or None. A dict lookup by hash leaks no timing worth
        having: an attacker cannot steer which hash a guess lands on."""
        self._maybe_reload()
        return self._by_hash.get(hash_key(key))


def presented_key(scope: Scope) -> str | None:
    """The key from ``Authorization: Bearer`` (first) or ``X-API-Key``; None when absent."""
    api_key = None
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
        elif name == b"x-api-key" and value.strip():
            api_key = value.decode("latin-1").strip()
    return api_key


def _has_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"", b"0")):
            return True
    return False


class AuthMiddleware:
    """Pure ASGI: authenticate, authorise by class, rate-limit; then pass the request on."""

    def __init__(self, app: ASGIApp, keys: KeyRing, limiter: RateLimiter,
                 metrics_of: Callable[[], ServiceMetrics | None]) -> None:
        self.app = app
        self.keys = keys
        self.limiter = limiter
        self.metrics_of = metrics_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "") in OPEN_ROUTES:
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        key = presented_key(scope)
        if key is None:
            await self._refuse(scope, send, UnauthorizedError(f"this route needs an API key; {HOW_TO_SEND}"))
            return
        entry = self.keys.lookup(key)
        del key  # from here on only the entry (name, hash) exists: nothing to leak into a log
        if entry is None:
            await self._refuse(scope, send, UnauthorizedError(
                "the API key is not known: check that it was copied whole, or ask the operator for "
                "one (paras2s-judge keys create)"))
            return
        if entry.disabled:
            await self._refuse(scope, send, ForbiddenError(
                f"the API key {entry.name!r} is disabled; ask the operator for a new key"), entry)
            return
        group = route_group(path)
        traffic_class = TRAFFIC_CLASSES[entry.traffic_class]
        if group not in traffic_class.route_groups:
            allowed = sorted(c.name for c in TRAFFIC_CLASSES.values() if group in c.route_groups)
            fix = (f"use a key of class {' or '.join(allowed)}" if allowed
                   else "no traffic class may call it; check the path (see /docs)")
            await self._refuse(scope, send, ForbiddenError(
                f"API keys of class {entry.traffic_class!r} may not call {path}; {fix}"), entry)
            return
        wait_s = await self.limiter.acquire(entry.name, entry.rate_per_s, entry.burst)
        if wait_s > 0.0:
            retry_after_s = max(1, math.ceil(wait_s))
            await self._refuse(scope, send, RateLimitedError(
                f"the API key {entry.name!r} is over its rate limit ({entry.rate_per_s:g} requests/s, "
                f"bursts of {entry.burst}); retry after {retry_after_s} s, or ask the operator for a "
                "higher limit", retry_after_s), entry)
            return
        self._count(entry.traffic_class, "allowed")
        log.debug("%s %s by key %r (%s)", scope.get("method"), path, entry.name, entry.traffic_class)
        state = scope.setdefault("state", {})
        state[STATE_NAME] = entry.name
        state[STATE_CLASS] = entry.traffic_class
        await self.app(scope, receive, send)

    def _count(self, traffic_class: str, result: str) -> None:
        metrics = self.metrics_of()
        if metrics is not None:
            metrics.auth_requests.labels(**{"class": traffic_class, "result": result}).inc()

    async def _refuse(self, scope: Scope, send: Send, error: JudgeError, entry: ApiKeyEntry | None = None) -> None:
        status = status_for(error.error_type)
        self._count(entry.traffic_class if entry is not None else "none", error.error_type)
        who = f"key {entry.name!r} ({entry.traffic_class})" if entry is not None else "no known key"
        # 429s come in storms from a busy client: debug, the counter has them; the rest is rare.
        log.log(logging.DEBUG if status == 429 else logging.INFO, "refused %s %s with %d %s: %s",
                scope.get("method"), scope.get("path"), status, error.error_type, who)
        extra: list[tuple[bytes, bytes]] = []
        if isinstance(error, UnauthorizedError):
            extra.append((b"www-authenticate", b'Bearer realm="paras2s-judge"'))
        if isinstance(error, RateLimitedError):
            extra.append((b"retry-after", str(math.ceil(error.retry_after_s)).encode()))
        if _has_body(scope):
            # The body stays unread; closing the connection keeps it from being parsed as the
            # next request on a kept-alive connection.
            extra.append((b"connection", b"close"))
        await send_json_error(send, status, error.error_type, error.message, extra)


def effective_priority(request: Request, requested: str) -> str:
    """The scheduling priority a request gets: ``requested``, made no more urgent than its key's
    class allows. With authentication off (no class in the request's state): ``requested``."""
    traffic_class = getattr(request.state, STATE_CLASS, None)
    return requested if traffic_class is None else capped_priority(traffic_class, requested)


@dataclass(frozen=True)
class Access:
    """What ``AuthMiddleware`` needs; built once per app, the limiter closed at shutdown."""

    keys: KeyRing
    limiter: RateLimiter


def build_access(settings: Settings) -> Access | None:
    """The key ring and rate limiter for ``settings``, or None when authentication is off.

    Raises:
        KeysFileError: the keys file is invalid (the message names each bad entry and the fix).
    """
    if settings.api_keys_file is None:
        return None
    keys = KeyRing(settings.api_keys_file)
    limiter = make_rate_limiter(settings.redis_url, settings.redis_key_prefix, settings.redis_retry_interval_s)
    return Access(keys, limiter)

"""``Idempotency-Key`` for the scoring routes: a client's retry is answered, never scored twice.

A POST to ``/v1/score``, ``/v1/score/group`` or ``/v1/analyze`` with an ``Idempotency-Key``
header (1-200 visible ASCII characters) is remembered by (route, API key name, key):

* while the first request runs, a second one with the same key waits for it and gets the same
  answer (a client that timed out and retried does not queue the work again);
* once it has answered, the same key within ``ttl_s`` replays the stored status, headers and
  body, with ``idempotent-replayed: true``;
* the same key with a *different* body is refused with 422 ``idempotency_key_reused``;
* a keyed request whose client goes away is *not* cancelled (its retry is about to ask for the
  answer): it runs to the end, bounded by the request timeout, and is stored;
* answers that a retry should redo are not stored: 429, 499, 5xx, and requests cut short (the
  server shut down).

Memory is bounded: at most ``max_entries`` answers (oldest evicted first), each kept ``ttl_s``.
The store is per process; across replicas the content-addressed score cache (Redis) still makes
a retried pair cheap, but only this process can make it wait instead of recompute.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import time
from dataclasses import dataclass, field

from judge_service.api.middleware import ASGIApp, Message, Receive, Scope, Send, send_json_error

IDEMPOTENT_ROUTES = frozenset({"/v1/score", "/v1/score/group", "/v1/analyze"})
MAX_KEY_CHARS = 200


@dataclass
class _Entry:
    body_sha256: str
    done: asyncio.Event = field(default_factory=asyncio.Event)
    status: int | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    stored_at: float = 0.0


class IdempotencyStore:
    """(route, key) -> the answer, LRU-bounded and time-limited. Used from one event loop."""

    def __init__(self, max_entries: int, ttl_s: float) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._entries: collections.OrderedDict[tuple[str, str], _Entry] = collections.OrderedDict()

    def get(self, key: tuple[str, str]) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.done.is_set() and time.monotonic() - entry.stored_at > self.ttl_s:
            del self._entries[key]
            return None
        return entry

    def start(self, key: tuple[str, str], body_sha256: str) -> _Entry:
        entry = _Entry(body_sha256)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            oldest, old = next(iter(self._entries.items()))
            if not old.done.is_set():
                break  # never evict work in flight; the bound holds again once it finishes
            del self._entries[oldest]
        return entry

    def finish(self, key: tuple[str, str], entry: _Entry, keep: bool) -> None:
        entry.stored_at = time.monotonic()
        if not keep and self._entries.get(key) is entry:
            del self._entries[key]
        entry.done.set()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


class IdempotencyMiddleware:
    """Pure ASGI; sits inside the body-size limit, so reading the body here is still bounded."""

    def __init__(self, app: ASGIApp, max_entries: int, ttl_s: float) -> None:
        self.app = app
        self.store = IdempotencyStore(max_entries, ttl_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _header(scope, b"idempotency-key") if scope["type"] == "http" else None
        if key is None or scope.get("method") != "POST" or scope.get("path") not in IDEMPOTENT_ROUTES:
            await self.app(scope, receive, send)
            return
        if not 1 <= len(key) <= MAX_KEY_CHARS or not key.isascii() or not key.isprintable():
            await send_json_error(send, 422, "invalid_request", f"Idempotency-Key must be 1-{MAX_KEY_CHARS} printable ASCII characters")
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        body_sha256 = hashlib.sha256(body).hexdigest()
        # Scoped by API key (set by api.auth when keys are on): one tenant's replay must never
        # hand it another's answer. Names have no spaces, so "name key" cannot collide.
        tenant = scope.get("state", {}).get("api_key_name", "")
        store_key = (scope["path"], f"{tenant} {key}")
        entry = self.store.get(store_key)
        if entry is not None:
            if entry.body_sha256 != body_sha256:
                await send_json_error(send, 422, "idempotency_key_reused",
                            f"Idempotency-Key {key!r} was used for a different request body; use a new key per request")
                return
            await entry.done.wait()
            if entry.status is not None:
                await self._replay(send, entry)
                return
            # The first attempt was not stored (429, 5xx, cut short): this one does the work.
        await self._execute(scope, receive, send, store_key, body, body_sha256)

    async def _execute(self, scope: Scope, receive: Receive, send: Send, store_key: tuple[str, str],
                       body: bytes, body_sha256: str) -> None:
        entry = self.store.start(store_key, body_sha256)
        replayed = False

        async def replay_receive() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            # The route's disconnect watch would drop the work of a client that went away; with a
            # key, that client's retry (or a concurrent twin) is about to ask for this very answer,
            # so the work runs to the end (bounded by the request timeout) and is stored.
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        status: int | None = None
        headers: list[tuple[bytes, bytes]] = []
        parts: list[bytes] = []
        complete = False

        async def capture_send(message: Message) -> None:
            nonlocal status, headers, complete
            if message["type"] == "http.response.start":
                status, headers = message["status"], list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
                complete = not message.get("more_body", False)
            await send(message)

        try:
            await self.app(scope, replay_receive, capture_send)
        finally:
            keep = complete and status is not None and status not in (429, 499) and status < 500
            if keep:
                entry.status, entry.headers, entry.body = status, headers, b"".join(parts)
            self.store.finish(store_key, entry, keep)

    @staticmethod
    async def _replay(send: Send, entry: _Entry) -> None:
        headers = [(k, v) for k, v in entry.headers if k != b"content-length"]
        headers += [(b"content-length", str(len(entry.body)).encode()), (b"idempotent-replayed", b"true")]
        await send({"type": "http.response.start", "status": entry.status, "headers": headers})
        await send({"type": "http.response.body", "body": entry.body})

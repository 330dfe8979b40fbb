"""Serve any system over the S2S HTTP contract (v1): a runnable example of the contract, and a
way to put a reference system or a ``py:`` entry point behind a URL.

    paras2s-bench serve-system --system topline --manifest bench/manifest.jsonl [--port 8100]
    paras2s-bench run --manifest bench/manifest.jsonl --system http://127.0.0.1:8100/respond --out r.json

``POST /respond`` (multipart: ``query`` audio file, ``id``) -> ``200`` with the response audio.
Reference systems answer from the manifest item named by ``id`` (they are references: they know
the item); a user's model would answer from the audio alone. Unknown ids get ``404``, a failure
of the system ``502`` with its message.
"""

from __future__ import annotations

from fastapi import FastAPI, Form, UploadFile
from fastapi.responses import JSONResponse, Response

from benchmark_client.manifest import Manifest
from benchmark_client.systems.base import System, SystemFailure

_MEDIA_TYPES = {b"RIFF": "audio/wav", b"fLaC": "audio/flac", b"OggS": "audio/ogg"}


def create_app(system: System, manifest: Manifest) -> FastAPI:
    """``system`` must already be prepared for ``manifest``'s items."""
    items = manifest.by_id()
    app = FastAPI(title=f"S2S system {system.name} (paras2s-bench HTTP contract v1)")

    @app.post("/respond", response_class=Response)
    async def respond(query: UploadFile, id: str = Form(...)) -> Response:  # noqa: A002 - the contract's field name
        item = items.get(id)
        if item is None:
            return JSONResponse({"error": f"unknown item id {id!r}"}, status_code=404)
        await query.read()  # a real model would listen to this
        try:
            audio = (await system.respond(item)).read()
        except SystemFailure as exc:
            return JSONResponse({"error": exc.type, "message": exc.message}, status_code=502)
        return Response(audio, media_type=_MEDIA_TYPES.get(audio[:4], "application/octet-stream"))

    return app

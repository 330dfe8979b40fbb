"""The error table and handlers, in-process (the HTTP tests cover them over a real server)."""

from __future__ import annotations

import asyncio

import httpx

from judge_service import errors
from judge_service.api.error_table import ERROR_STATUS
from judge_service.app import create_app
from judge_service.backends.fake import FakeBackendForTests
from judge_service.config import load_settings


def test_every_domain_error_type_has_a_status():
    types = {cls.error_type for cls in vars(errors).values()
             if isinstance(cls, type) and issubclass(cls, errors.JudgeError) and cls is not errors.JudgeError}
    assert types <= set(ERROR_STATUS), types - set(ERROR_STATUS)


def test_unexpected_error_is_a_500_with_an_error_id_and_no_details(caplog):
    app = create_app(load_settings(backend="fake"), backend=FakeBackendForTests())

    @app.get("/boom")
    async def boom():
        raise RuntimeError("secret internal detail")

    async def call():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/boom")

    reply = asyncio.run(call())
    assert reply.status_code == 500
    body = reply.json()["error"]
    assert body["type"] == "internal_error" and len(body["error_id"]) == 12
    assert "secret" not in reply.text
    assert body["error_id"] in caplog.text and "secret internal detail" in caplog.text

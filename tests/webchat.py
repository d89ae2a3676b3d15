"""Web chat ids for tests: only ids the server issued are accepted by /api/chat."""

from __future__ import annotations

from typing import Any

from bot.channels.web import IDENTITY


async def new_web_id(http: Any, url: str = "/api/chat/session") -> str:
    """A fresh id from ``POST /api/chat/session`` (an aiohttp test client or a ClientSession + URL)."""
    async with http.post(url) as response:
        assert response.status == 200, await response.text()
        return str((await response.json())["user_id"])


async def web_id(client: Any, name: str) -> str:
    """The id the server under test issues for the public id ``name`` (conversation ``web:<name>``)."""
    return await client.server.app[IDENTITY].credential_for(name)


def public_id(credential: str) -> str:
    """The part of an id the pipeline and the staff see: ``web:<public id>``."""
    return credential.rpartition(".")[0]

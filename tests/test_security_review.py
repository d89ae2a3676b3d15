"""Manual review end to end (issue 15, finding 8): a selfie sent in the web chat goes through
the real face worker and storage, and staff open that very photo in the console.

Today's main answered the photo with 404: the worker wrote under ``faces/attempts/`` and the
console read ``attempts/``.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData

from bot import keys
from bot.core.messages import InboundMessage
from bot.records.attempts import photo_store
from face.enrol import enrol
from nlu.entities import with_check_digit
from tests.conftest import Backends, make_settings
from tests.face_support import engine, needs_model, needs_photos, photo_bytes, run_worker
from tests.test_staff_api import add_staff, login
from tests.webchat import new_web_id, public_id

pytestmark = [needs_model, needs_photos]
ID_OBAMA = with_check_digit("63010219610804001")


@pytest.fixture
def settings(tmp_path: Path, clean_backends: Backends) -> Any:
    return make_settings(tmp_path, clean_backends, **{"face.challenge": False})


async def _updates(client: Any, user_id: str) -> list[dict[str, Any]]:
    replies: list[dict[str, Any]] = []
    for _ in range(100):
        response = await client.get("/api/chat/updates", params={"user_id": user_id})
        replies += (await response.json())["replies"]
        if replies:
            return replies
        await asyncio.sleep(0.1)
    return replies


async def test_staff_open_the_selfie_the_worker_stored(client: Any, aiohttp_client: Any) -> None:
    from PIL import Image

    services = client.server.app[keys.SERVICES]
    result = await enrol(services.db, engine(), photo_store(services.settings), ID_OBAMA, "欧巴马",
                         photo_bytes("obama/obama1.jpg"))
    assert result.ok
    user_id = await new_web_id(client)
    # The flow starts from the menu (certify_now); the rest goes through the web API.
    await services.handle(InboundMessage("web", public_id(user_id), "m0", event="menu:certify_now"))
    for text in (ID_OBAMA, "欧巴马"):
        response = await client.post("/api/chat", json={"user_id": user_id, "text": text})
        assert response.status == 200
    assert "正脸照片" in (await response.json())["replies"][-1]["text"]
    form = FormData()
    form.add_field("user_id", user_id)
    form.add_field("image", photo_bytes("biden/biden2.jpg"), filename="selfie.jpg", content_type="image/jpeg")
    response = await client.post("/api/chat", data=form)
    assert "正在核验" in (await response.json())["replies"][-1]["text"]
    await run_worker(services)
    verdict = await _updates(client, user_id)
    assert verdict and "对不上" in verdict[0]["text"]
    response = await client.post("/api/chat", json={"user_id": user_id, "text": "转人工"})
    assert "转接人工" in (await response.json())["replies"][-1]["text"]

    staff = await aiohttp_client(client.server)
    await add_staff(client.server.app, "wang")
    await login(staff, "wang")
    [case] = (await (await staff.get("/api/staff/cases")).json())
    assert (await staff.post(f"/api/staff/cases/{case['id']}/claim")).status == 200
    detail = await (await staff.get(f"/api/staff/cases/{case['id']}")).json()
    [attempt] = detail["attempts"]
    assert attempt["photo"], attempt
    served = await staff.get(attempt["photo"])
    assert served.status == 200 and served.content_type == "image/jpeg"
    with Image.open(io.BytesIO(await served.read())) as image:
        assert image.size[0] > 50 and image.size[1] > 50  # the selfie itself, decodable
    assert user_id not in str(detail)  # the credential is never shown to staff


async def test_a_verdict_that_meets_the_pensioners_cap_alerts_staff(services: Any) -> None:
    """Finding 11: the cap across chats is also met by a verdict (the real worker)."""
    from sqlalchemy import select

    from bot.core.storage.models import Case
    from bot.face_service import attach
    from bot.records.attempts import AttemptRecord, record_attempt
    from tests.conftest import TestBot

    face = attach(services)
    services.outbox.senders["test"] = services.outbox.senders["web"]
    result = await enrol(services.db, engine(), photo_store(services.settings), ID_OBAMA, "欧巴马",
                         photo_bytes("obama/obama1.jpg"))
    assert result.ok and result.pensioner_id is not None
    services.settings.face.max_attempts_per_pensioner_per_day = 4
    for _ in range(3):  # someone else, on another channel, failed three times today
        await record_attempt(services.db, AttemptRecord(
            pensioner_id=result.pensioner_id, channel="wechat", chat_user="o-stranger", proxy=False,
            relationship=None, quality_codes=[], distance=0.3, threshold=0.08, decision="failed"))
    bot = TestBot(services)
    await bot.say(event="menu:certify_now")
    await bot.say(ID_OBAMA)
    await bot.say("欧巴马")
    assert "正脸照片" in bot.text  # this chat has its own attempts
    await bot.say(image=photo_bytes("biden/biden2.jpg"))
    assert "正在核验" in bot.text
    await run_worker(services)
    pushed: list[Any] = []
    for _ in range(50):
        if await face.process_pending(block_ms=100):
            break
    pushed = await bot.pushed()
    text = "\n".join(r.text for r in pushed)
    assert "对不上" in text and "多次没有通过" in text and "还可以试" not in text
    conv = await bot.conversation()
    assert conv.mode == "waiting"
    async with services.db.session() as session:
        [case] = list(await session.scalars(select(Case)))
    assert case.reason == "attempts_alert" and case.evidence["alert"]["chats"] == 2

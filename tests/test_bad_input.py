"""Hostile and malformed input never gets a 500 and the server stays healthy."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core.logs import JsonFormatter, mask
from tests.webchat import web_id

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children,
                                                                       max_size=4),
    max_leaves=10,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"user_id": json_values, "text": json_values}).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"user_id": st.from_regex(r"[a-z]{1,8}", fullmatch=True),
                           "text": st.text(max_size=300)}).map(lambda v: json.dumps(v).encode()),
))
async def test_chat_api_never_500(client: Any, body: bytes) -> None:
    try:  # a short lowercase name stands for a chat id the server issued
        fields = json.loads(body)
        name = fields.get("user_id") if isinstance(fields, dict) else None
        if isinstance(name, str) and re.fullmatch(r"[a-z]{1,8}", name):
            fields["user_id"] = await web_id(client, name)
            body = json.dumps(fields).encode()
    except (UnicodeDecodeError, ValueError, RecursionError):
        pass
    response = await client.post("/api/chat", data=body, headers={"Content-Type": "application/json"})
    assert response.status in (200, 400, 403, 413, 429), await response.text()
    payload = await response.json()
    assert "replies" in payload or "error" in payload


async def test_sql_looking_names_and_odd_texts_are_just_text(client: Any) -> None:
    for text in ["'; DROP TABLE pensioners; --", "<script>alert(1)</script>", "𠀀𠀁😀" * 50,
                 "\u202e反向文本", "1' OR '1'='1"]:
        response = await client.post("/api/chat", json={"user_id": await web_id(client, "mallory"), "text": text})
        assert response.status in (200, 429)
    assert (await client.get("/healthz")).status == 200


async def test_updates_needs_a_valid_user(client: Any) -> None:
    response = await client.get("/api/chat/updates")
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_user_id"


def test_logs_mask_id_numbers_and_phones() -> None:
    record = logging.makeLogRecord({"msg": "user 63010219500315002X phone 13912345678 said hi",
                                    "levelname": "INFO", "name": "t"})
    line = JsonFormatter().format(record)
    assert "63010219500315002X" not in line and "13912345678" not in line
    assert "630102********002X" in line and "139****5678" in line
    assert mask("630102195003150029") == "630102********0029"


async def test_metrics_on_loopback_and_behind_token(aiohttp_client: Any, settings: Any) -> None:
    from bot.app import create_app

    client = await aiohttp_client(create_app(settings))
    await client.post("/api/chat", json={"user_id": await web_id(client, "m"), "text": "你好"})
    response = await client.get("/metrics")
    assert response.status == 200
    text = await response.text()
    assert 'bot_messages_total{channel="web",outcome="answered"}' in text
    assert "bot_handoff_queue_length" in text

    settings.metrics.token = "s3cret"
    locked = await aiohttp_client(create_app(settings))
    assert (await locked.get("/metrics")).status == 401
    ok = await locked.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert ok.status == 200

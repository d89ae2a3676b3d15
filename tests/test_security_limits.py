"""Limits that one client cannot turn against others (issue 15, findings 1, 5, 6 and 11).

- Per client address on the web chat: new ids and messages a minute (429 JSON), ID lookups
  and staff cases an hour. The address is the TCP peer unless that is a trusted proxy
  (``web_chat.trusted_proxies``); ``X-Forwarded-For`` from anyone else is ignored.
- Staff cases per chat an hour, answered in Chinese, never a 500.
- Failed selfies a day per (chat, pensioner), with a higher cap per pensioner that alerts
  staff: someone who knows an ID number and name cannot use up the pensioner's attempts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.client_address import resolve
from bot.core.config import Settings
from bot.core.errors import ConfigError
from bot.core.limits import address_bucket
from bot.core.storage.models import Case
from bot.records.attempts import AttemptRecord, record_attempt, save_template
from bot.services import Services
from nlu.entities import with_check_digit
from tests.conftest import ROOT, Backends, TestBot, make_settings

ID_A = with_check_digit("63010219520101003")
FAKE_EMBEDDING = [0.01] * 128  # "enrolled" for the steps before a selfie is verified


# ---------------------------------------------------------------- the client address

def test_forwarded_for_is_believed_only_from_a_trusted_proxy() -> None:
    spoofed = ["6.6.6.6, 198.51.100.7"]
    # No trusted proxies: the TCP peer, whatever the header says.
    assert resolve("203.0.113.9", spoofed, []) == "203.0.113.9"
    assert resolve("127.0.0.1", spoofed, []) == "127.0.0.1"
    # A peer that is not one of the trusted proxies: its header is ignored.
    assert resolve("203.0.113.9", spoofed, ["10.0.0.0/8"]) == "203.0.113.9"
    # The trusted proxy appended the real peer on the right; the left part is the client's own.
    assert resolve("10.0.0.2", spoofed, ["10.0.0.0/8"]) == "198.51.100.7"
    # Several trusted hops (two headers, in order): the right-most address that is not trusted.
    assert resolve("10.0.0.2", ["6.6.6.6, 198.51.100.7", "10.0.0.5"], ["10.0.0.0/8"]) == "198.51.100.7"
    # Only trusted hops: the outermost one.
    assert resolve("10.0.0.2", ["10.0.0.9"], ["10.0.0.0/8"]) == "10.0.0.9"
    # Garbage from a trusted hop stops the walk at the hop that sent it.
    assert resolve("10.0.0.2", ["not-an-ip, 10.0.0.7"], ["10.0.0.0/8"]) == "10.0.0.7"
    assert resolve("::1", ["[2001:db8::5]:4711"], ["::1/128"]) == "2001:db8::5"
    assert resolve("10.0.0.2", [], ["10.0.0.0/8"]) == "10.0.0.2"


def test_an_ipv6_client_counts_as_its_64_network() -> None:
    assert address_bucket("2001:db8:1:2::5") == address_bucket("2001:db8:1:2:ffff::9")
    assert address_bucket("2001:db8:1:2::5") != address_bucket("2001:db8:1:3::5")
    assert address_bucket("198.51.100.7") != address_bucket("198.51.100.8")
    assert address_bucket("::ffff:198.51.100.7") == address_bucket("198.51.100.7")
    assert "198.51.100.7" not in address_bucket("198.51.100.7")


def test_trusted_proxies_are_validated_at_start_up(tmp_path: Path, clean_backends: Backends) -> None:
    with pytest.raises(ConfigError, match="web_chat.trusted_proxies"):
        make_settings(tmp_path, clean_backends, **{"web_chat.trusted_proxies": ["10.0.0.0/8", "nginx"]})
    with pytest.raises(ConfigError, match="max_attempts_per_pensioner_per_day"):
        make_settings(tmp_path, clean_backends, **{"face.max_attempts_per_pensioner_per_day": 2})
    from bot.core.config import load_settings

    settings = load_settings(ROOT / "config.yml", env={"WEB_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8",
                                                         "WEB_ADDRESS_LIMITS_EXEMPT": ""})
    assert settings.web_chat.trusted_proxies == ["127.0.0.1", "10.0.0.0/8"]
    assert settings.web_chat.address_limits_exempt == []


# ---------------------------------------------------------------- web chat, per address

def _settings(tmp_path: Path, backends: Backends, **overrides: Any) -> Settings:
    return make_settings(tmp_path, backends, **overrides)


async def _client(aiohttp_client: Any, settings: Settings) -> Any:
    from bot.app import create_app

    return await aiohttp_client(create_app(settings))


async def _fresh_id(client: Any, headers: dict[str, str] | None = None) -> Any:
    """POST /api/chat/session as a new visitor (no cookie)."""
    client.session.cookie_jar.clear()
    return await client.post("/api/chat/session", headers=headers or {})


async def test_new_chat_ids_are_limited_per_address_and_spoofed_headers_do_not_help(
        aiohttp_client: Any, tmp_path: Path, clean_backends: Backends) -> None:
    settings = _settings(tmp_path, clean_backends, **{"rate_limit.per_address.sessions_per_minute": 3})
    client = await _client(aiohttp_client, settings)
    for _ in range(3):
        assert (await _fresh_id(client)).status == 200
    # The test client is not a trusted proxy: a made-up X-Forwarded-For is not another address.
    response = await _fresh_id(client, {"X-Forwarded-For": "198.51.100.7"})
    assert response.status == 429
    body = await response.json()
    assert body["error"] == "rate_limited" and "太多" in body["message"]


async def test_a_page_with_its_cookie_keeps_its_id_without_counting(
        aiohttp_client: Any, tmp_path: Path, clean_backends: Backends) -> None:
    settings = _settings(tmp_path, clean_backends, **{"rate_limit.per_address.sessions_per_minute": 1})
    client = await _client(aiohttp_client, settings)
    first = await (await _fresh_id(client)).json()
    for _ in range(3):  # reloads of the page send the cookie
        response = await client.post("/api/chat/session")
        assert response.status == 200 and (await response.json()) == first
    assert (await _fresh_id(client)).status == 429


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(
        aiohttp_client: Any, tmp_path: Path, clean_backends: Backends) -> None:
    settings = _settings(tmp_path, clean_backends, **{
        "rate_limit.per_address.sessions_per_minute": 2,
        "web_chat.trusted_proxies": ["127.0.0.1/32", "::1/128"]})
    client = await _client(aiohttp_client, settings)
    for address in ("198.51.100.7", "198.51.100.8", "198.51.100.9"):
        for _ in range(2):
            response = await _fresh_id(client, {"X-Forwarded-For": address})
            assert response.status == 200, address
    # The client may prepend anything; the proxy's entry (right-most) decides.
    response = await _fresh_id(client, {"X-Forwarded-For": "192.0.2.1, 198.51.100.7"})
    assert response.status == 429


async def test_exempt_addresses_are_not_limited(aiohttp_client: Any, tmp_path: Path,
                                                clean_backends: Backends) -> None:
    """How `make bench` runs 200 users from loopback (web_chat.address_limits_exempt)."""
    settings = _settings(tmp_path, clean_backends, **{
        "rate_limit.per_address.sessions_per_minute": 2,
        "rate_limit.per_address.messages_per_minute": 2,
        "web_chat.address_limits_exempt": "127.0.0.0/8,::1/128"})
    client = await _client(aiohttp_client, settings)
    ids = [await (await _fresh_id(client)).json() for _ in range(5)]
    ids = [body["user_id"] for body in ids]
    for user_id in ids:
        response = await client.post("/api/chat", json={"user_id": user_id, "text": "你好"})
        assert response.status == 200


async def test_messages_are_limited_per_address_across_chats(aiohttp_client: Any, tmp_path: Path,
                                                             clean_backends: Backends) -> None:
    settings = _settings(tmp_path, clean_backends, **{"rate_limit.per_address.messages_per_minute": 4})
    client = await _client(aiohttp_client, settings)
    ids = [(await (await _fresh_id(client)).json())["user_id"] for _ in range(3)]
    statuses = []
    for user_id in ids + ids:
        response = await client.post("/api/chat", json={"user_id": user_id, "text": "你好"})
        statuses.append(response.status)
    assert statuses == [200, 200, 200, 200, 429, 429]
    body = await response.json()
    assert body["error"] == "rate_limited" and "太多" in body["replies"][0]["text"]


# ---------------------------------------------------------------- ID lookups and cases

async def _status_query(bot: TestBot, id_number: str = ID_A, name: str = "赵玉兰") -> None:
    await bot.say(event="menu:status_query")
    await bot.say(id_number)
    await bot.say(name)


async def test_id_lookups_are_limited_per_address(services: Services) -> None:
    await services.registry.register(ID_A, "赵玉兰")
    services.settings.rate_limit.per_address.id_lookups_per_hour = 2
    for _ in range(2):
        bot = TestBot(services, channel="web", client_address="198.51.100.7")
        await _status_query(bot)
        assert "查询次数太多" not in bot.text and "对不上" not in bot.text
    fresh = TestBot(services, channel="web", client_address="198.51.100.7")
    await _status_query(fresh)
    assert "查询次数太多" in fresh.text  # a fresh chat id does not get round it
    neighbour = TestBot(services, channel="web", client_address="198.51.100.8")
    await _status_query(neighbour)
    assert "查询次数太多" not in neighbour.text  # other addresses are not affected
    wechat = TestBot(services, channel="wechat")  # no address: the per-chat limit only
    await _status_query(wechat)
    assert "查询次数太多" not in wechat.text


async def _case_count(services: Services) -> int:
    async with services.db.session() as session:
        return len(list(await session.scalars(select(Case))))


async def test_cases_are_capped_per_chat_with_a_chinese_message(services: Services) -> None:
    services.settings.rate_limit.cases_per_chat_per_hour = 2
    bot = TestBot(services)
    for _ in range(2):
        await bot.say("转人工")
        assert "转接人工" in bot.text
        await bot.say("算了")
    await bot.say("转人工")
    assert "多次申请人工服务" in bot.text and "12333" in bot.text
    assert bot.options  # the menu again, not a dead end
    conv = await bot.conversation()
    assert conv.mode == "bot" and conv.case_id is None
    assert await _case_count(services) == 2
    other = TestBot(services)  # another chat is not affected
    await other.say("转人工")
    assert "转接人工" in other.text


async def test_cases_are_capped_per_address(services: Services) -> None:
    services.settings.rate_limit.per_address.cases_per_hour = 3
    for _ in range(3):
        bot = TestBot(services, channel="web", client_address="2001:db8:1:2::5")
        await bot.say("转人工")
        assert "转接人工" in bot.text
    # Fresh ids from the same /64 open no more cases this hour.
    bot = TestBot(services, channel="web", client_address="2001:db8:1:2::77")
    await bot.say("转人工")
    assert "多次申请人工服务" in bot.text
    assert await _case_count(services) == 3
    elsewhere = TestBot(services, channel="web", client_address="2001:db8:9:9::1")
    await elsewhere.say("转人工")
    assert "转接人工" in elsewhere.text


async def test_case_limit_over_http_is_an_answer_not_a_500(aiohttp_client: Any, tmp_path: Path,
                                                           clean_backends: Backends) -> None:
    settings = _settings(tmp_path, clean_backends, **{"rate_limit.per_address.cases_per_hour": 1})
    client = await _client(aiohttp_client, settings)
    first = (await (await _fresh_id(client)).json())["user_id"]
    second = (await (await _fresh_id(client)).json())["user_id"]
    response = await client.post("/api/chat", json={"user_id": first, "text": "转人工"})
    assert response.status == 200 and "转接人工" in (await response.text())
    response = await client.post("/api/chat", json={"user_id": second, "text": "转人工"})
    assert response.status == 200
    assert "多次申请人工服务" in (await response.json())["replies"][0]["text"]


# ---------------------------------------------------------------- daily selfie attempts

async def _enrolled(services: Services) -> int:
    pensioner = await services.registry.register(ID_A, "赵玉兰")
    await save_template(services.db, pensioner.id, FAKE_EMBEDDING, "Dlib", None, None)
    return int(pensioner.id)


async def _failed(services: Services, pensioner_id: int, channel: str, chat_user: str, times: int) -> None:
    for _ in range(times):
        await record_attempt(services.db, AttemptRecord(
            pensioner_id=pensioner_id, channel=channel, chat_user=chat_user, proxy=False,
            relationship=None, quality_codes=[], distance=0.3, threshold=0.08, decision="failed"))


async def _to_selfie(bot: TestBot) -> None:
    await bot.say(event="menu:certify_now")
    await bot.say(ID_A)
    await bot.say("赵玉兰")


async def test_another_chat_cannot_use_up_the_pensioners_attempts(services: Services) -> None:
    pensioner_id = await _enrolled(services)
    # Someone who knows the ID number and name fails three times from another channel.
    await _failed(services, pensioner_id, "wechat", "o-stranger", 3)
    stranger = TestBot(services, channel="wechat", user_id="o-stranger")
    await _to_selfie(stranger)
    assert "不要再拍" in stranger.text  # that chat's own limit
    owner = TestBot(services, channel="web")
    await _to_selfie(owner)
    assert "正脸照片" in owner.text and "不要再拍" not in owner.text  # the pensioner still can


async def test_the_pensioner_cap_across_chats_alerts_staff_once(services: Services) -> None:
    pensioner_id = await _enrolled(services)
    services.settings.face.max_attempts_per_pensioner_per_day = 5
    await _failed(services, pensioner_id, "wechat", "o-one", 3)
    await _failed(services, pensioner_id, "telegram", "42", 2)
    first = TestBot(services, channel="web")
    await _to_selfie(first)
    assert "多次没有通过" in first.text and "工作人员" in first.text and "正脸照片" not in first.text
    conv = await first.conversation()
    assert conv.mode == "waiting"
    async with services.db.session() as session:
        [case] = list(await session.scalars(select(Case)))
    assert case.reason == "attempts_alert" and case.pensioner_id == pensioner_id
    assert case.evidence["alert"] == {"failed_today": 5, "chats": 2, "cap": 5}
    assert len(case.evidence["attempts"]) == 5
    # Later chats are told, without a second alert.
    second = TestBot(services, channel="web")
    await _to_selfie(second)
    assert "已经在核查" in second.text and "转人工" in second.options
    assert (await second.conversation()).mode == "bot"
    assert await _case_count(services) == 1


async def test_metrics_without_a_token_are_not_served_through_a_local_proxy(
        aiohttp_client: Any, tmp_path: Path, clean_backends: Backends) -> None:
    """nginx on the same host connects from loopback: its forwarded requests are not local."""
    for trusted in ([], ["127.0.0.1/32", "::1/128"]):
        settings = _settings(tmp_path, clean_backends, **{"web_chat.trusted_proxies": trusted})
        client = await _client(aiohttp_client, settings)
        assert (await client.get("/metrics")).status == 200
        for header in ({"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"},
                       {"X-Forwarded-For": "127.0.0.1"}):
            response = await client.get("/metrics", headers=header)
            assert response.status == 403, (trusted, header)


async def test_staff_lockout_uses_the_client_address_behind_a_trusted_proxy(
        aiohttp_client: Any, tmp_path: Path, clean_backends: Backends) -> None:
    """Behind nginx every login came from 127.0.0.1: anyone could lock any account again."""
    from bot.staff.web import AUTH

    settings = _settings(tmp_path, clean_backends, **{"web_chat.trusted_proxies": ["127.0.0.1/32", "::1/128"]})
    client = await _client(aiohttp_client, settings)
    await client.server.app[AUTH].create_user("agent2", "secret-pass-1", "agent")

    async def login(password: str, address: str) -> Any:
        return await client.post("/staff/login", data={"username": "agent2", "password": password},
                                 headers={"X-Forwarded-For": address}, allow_redirects=False)

    for _ in range(5):
        assert (await login("wrong-password!", "198.51.100.7")).status != 303
    assert (await login("secret-pass-1", "198.51.100.7")).status != 303  # that address is locked
    assert (await login("secret-pass-1", "198.51.100.8")).status == 303  # the agent's own is not


async def test_a_spoofed_forwarded_for_does_not_escape_a_staff_lockout(
        aiohttp_client: Any, tmp_path: Path, clean_backends: Backends) -> None:
    from bot.staff.web import AUTH

    client = await _client(aiohttp_client, _settings(tmp_path, clean_backends))
    await client.server.app[AUTH].create_user("agent2", "secret-pass-1", "agent")
    for index in range(5):
        await client.post("/staff/login", data={"username": "agent2", "password": "wrong-password!"},
                          headers={"X-Forwarded-For": f"198.51.100.{index}"}, allow_redirects=False)
    response = await client.post("/staff/login", data={"username": "agent2", "password": "secret-pass-1"},
                                 headers={"X-Forwarded-For": "198.51.100.99"}, allow_redirects=False)
    assert response.status != 303 and "锁定" in await response.text()

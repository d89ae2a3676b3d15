"""A Tibetan reader, in Tibetan, from the switch on (issue 19): through the fake channel and
through signed WeChat callbacks.

What counts as "in Tibetan": after removing what may stay Chinese on purpose (app names and
on-screen labels in quotes “…” or 《…》, Chinese glosses in brackets, the language option
shown in both scripts, what the user typed), a reply has no Han character left.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.core.i18n import BO, LANGUAGE_OPTIONS, ZH, render
from bot.core.storage.models import Case, HomeVisitRequest
from dialogs.family import relationship_of
from nlu import training_data
from nlu.embedded import EmbeddedNlu
from nlu.entities import with_check_digit
from tests.channel_fakes import FakeWechat, message_xml, passive_text, text_xml, wechat_settings
from tests.conftest import Backends, TestBot

HAN = re.compile(r"[\u4e00-\u9fff]")
TIBETAN = re.compile(r"[\u0F40-\u0FBC]")
_KEPT = re.compile(r"“[^”]*”|《[^》]*》|\([^)]*\)|（[^）]*）")
ID_A = with_check_digit("63262219500101003")  # Golog prefecture, own test data


def untranslated(text: str, typed: tuple[str, ...] = ()) -> list[str]:
    """Han characters left in a reply once the allowed Chinese is taken out."""
    for label in (*LANGUAGE_OPTIONS.values(), *typed):
        text = text.replace(label, "")
    return HAN.findall(_KEPT.sub("", text))


def assert_tibetan(testbot: TestBot, *typed: str) -> None:
    for reply in testbot.replies:
        assert untranslated(reply.text, typed) == [], reply.text
        for option in reply.options:
            assert untranslated(option, typed) == [], option
    assert TIBETAN.search(testbot.text), testbot.text


async def language(testbot: TestBot) -> str:
    return str((await testbot.conversation()).language)


# ---------------------------------------------------------------- switching


@pytest.mark.parametrize("text", [
    "我是藏族，汉字看不太懂，有藏文的吗", "有藏文的吗", "能用藏语说吗", "བོད་ཡིག", "བོད་སྐད།",
])
async def test_asking_for_tibetan_switches_and_shows_the_tibetan_menu(testbot: TestBot, text: str) -> None:
    await testbot.say(text)
    assert await language(testbot) == BO
    assert_tibetan(testbot)
    assert "光线" not in testbot.text and len(testbot.options) == 6
    assert testbot.options[-1] == LANGUAGE_OPTIONS[ZH]  # the way back, in both scripts


async def test_a_tibetan_who_cannot_read_chinese_is_offered_tibetan(testbot: TestBot) -> None:
    await testbot.say("我是藏族，汉字看不太懂")
    assert await language(testbot) == ZH  # not asked for yet: offered, in both scripts
    assert "光线" not in testbot.text and "བོད་ཡིག" in testbot.text and "藏文" in testbot.text
    assert LANGUAGE_OPTIONS[BO] in testbot.options
    await testbot.say(str(testbot.options.index(LANGUAGE_OPTIONS[BO]) + 1))
    assert await language(testbot) == BO
    assert_tibetan(testbot)


async def test_a_message_mostly_in_tibetan_switches_and_is_answered_in_tibetan(testbot: TestBot) -> None:
    await testbot.say("ཁྱེད་རང་བདེ་མོ།")  # hello
    assert await language(testbot) == BO
    assert_tibetan(testbot)
    assert "抱歉" not in testbot.text and testbot.options


async def test_unclear_tibetan_gets_the_tibetan_menu_and_a_person(testbot: TestBot) -> None:
    await testbot.say("བོད་ཡིག")
    await testbot.say("ཆར་པ་བབས་ཀྱི་འདུག་གམ།")  # "is it raining?": nothing we understand
    assert_tibetan(testbot)
    assert "ལས་བྱེད་པ" in testbot.text  # the offer of a person
    assert "ལས་བྱེད་པ་འབོད།" in testbot.options and len(testbot.options) == 6


async def test_the_menu_option_and_the_wechat_menu_entry_switch(testbot: TestBot) -> None:
    await testbot.say("你好")
    assert testbot.options[-1] == LANGUAGE_OPTIONS[BO]
    await testbot.say("6")
    assert await language(testbot) == BO
    assert_tibetan(testbot)
    await testbot.say("༦")  # the same place now offers Chinese
    assert await language(testbot) == ZH and "请回复数字" in testbot.text
    await testbot.say(event="menu:lang_bo")
    assert await language(testbot) == BO
    assert_tibetan(testbot)


@pytest.mark.parametrize("back", ["中文", "汉语", "汉文", "རྒྱ་ཡིག"])
async def test_chinese_switches_back(testbot: TestBot, back: str) -> None:
    await testbot.say("藏文")
    await testbot.say(back)
    assert await language(testbot) == ZH
    assert "汉语" in testbot.text and "请回复数字选择" in testbot.text
    assert testbot.options[0] == "怎么认证"


async def test_chinese_messages_about_tibetans_do_not_switch(testbot: TestBot) -> None:
    await testbot.say("藏族老人怎么认证")
    assert await language(testbot) == ZH


# ---------------------------------------------------------------- the done-when conversation


async def test_a_tibetan_reader_completes_the_main_flows_in_tibetan(testbot: TestBot) -> None:
    await testbot.say("我是藏族，汉字看不太懂，有藏文的吗")
    assert_tibetan(testbot)

    # choosing a method, with Tibetan digits, into the app walkthrough
    await testbot.say("ར་སྤྲོད་ཇི་ལྟར་བྱེད།")  # the first menu option, typed as its label
    assert_tibetan(testbot)
    await testbot.say("ཐབས་འདེམས་རོགས་གནང་།")  # "help me choose"
    assert_tibetan(testbot)
    assert "༡" not in testbot.text and testbot.options[0] == "ཡིན། ཕྱི་རྒྱལ་དུ་ཡོད།"
    await testbot.say("༢")  # not abroad
    await testbot.say("༡")  # can use a smartphone
    assert_tibetan(testbot)
    assert "“青海人社通”" in testbot.options[0]
    await testbot.say("༡")  # 青海人社通: its walkthrough
    assert_tibetan(testbot)
    await testbot.say("༡")  # an Android phone
    assert_tibetan(testbot)
    assert "青海人社通" in testbot.text and "གོམ་པ་རྗེས་མ།" in testbot.options  # app name kept, glossed

    # a failure fix
    await testbot.say("འདེམས་ཐོ།")  # the main menu (a command)
    await testbot.say("༢")  # certification failed
    assert_tibetan(testbot)
    await testbot.say("༡")  # poor light
    assert_tibetan(testbot)
    assert "འོད" in testbot.text
    await testbot.say("༡")  # it worked
    assert_tibetan(testbot)

    # a home-visit request to its reference number
    await testbot.say("བགྲེས་པོ་ཕྱི་ལ་འགྲོ་མི་ཐུབ། ཁྱིམ་དུ་ཡོང་ནས་ར་སྤྲོད་བྱེད་ཐུབ་བམ།")
    assert_tibetan(testbot)
    await testbot.say("བཀྲ་ཤིས་སྒྲོལ་མ")
    assert_tibetan(testbot)
    await testbot.say(ID_A)
    await testbot.say("མགོ་ལོག་ཁུལ་རྨ་ཆེན་རྫོང་གྲོང་ཚོ་ཨང་༥")
    await testbot.say("༡༣༨༩༧༢༠༡༢༣༤")  # the phone number in Tibetan digits
    await testbot.say("ཉལ་ས་ནས་ལང་མི་ཐུབ།")
    assert_tibetan(testbot, "བཀྲ་ཤིས་སྒྲོལ་མ")
    assert "13897201234" in testbot.text
    await testbot.say("༡")  # submit
    assert_tibetan(testbot)
    async with testbot.services.db.session() as session:
        stored = (await session.scalars(select(HomeVisitRequest))).one()
    assert stored.reference in testbot.text and stored.phone == "13897201234"
    assert stored.pensioner_name == "བཀྲ་ཤིས་སྒྲོལ་མ"

    # a handoff
    await testbot.say("ལས་བྱེད་པ་འབོད།")
    assert_tibetan(testbot)
    conversation = await testbot.conversation()
    assert conversation.mode == "waiting" and conversation.language == BO
    async with testbot.services.db.session() as session:
        case = (await session.scalars(select(Case))).one()
    assert case.conversation_key == testbot.key

    # "中文" switches back (after leaving the queue)
    await testbot.say("དོར")
    assert_tibetan(testbot)
    await testbot.say("中文")
    assert await language(testbot) == ZH and not TIBETAN.search(testbot.text)


async def test_the_rate_limit_message_is_in_the_chat_language(tmp_path: Path, clean_backends: Backends) -> None:
    from bot.app import started
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, clean_backends, **{"rate_limit.messages_per_minute": 2})
    async with started(settings) as services:
        testbot = TestBot(services)
        await testbot.say("བོད་ཡིག")
        await testbot.say("༡")
        await testbot.say("༢")
        assert testbot.replies and untranslated(testbot.text) == [] and TIBETAN.search(testbot.text)


async def test_dates_in_tibetan_order_and_digits(testbot: TestBot) -> None:
    from datetime import date

    from bot.core.facts import format_date
    from bot.core.i18n import render

    assert render(format_date(date(2027, 3, 15)), BO) == "སྤྱི་ལོ་༢༠༢༧ ཟླ་༣ ཚེས་༡༥"


async def test_a_later_message_from_staff_reaches_the_reader_in_tibetan(testbot: TestBot) -> None:
    await testbot.say("བོད་ཡིག")
    await testbot.say("ལས་བྱེད་པ་འབོད།")
    from bot.core.i18n import tr
    from bot.core.messages import Reply

    await testbot.services.outbox.push(testbot.key, [Reply(tr("已经转给工作人员了，请稍等回复。"))])
    pushed = await testbot.pushed()
    assert pushed and not HAN.search(pushed[-1].text) and TIBETAN.search(pushed[-1].text)


# ---------------------------------------------------------------- understanding Tibetan


def test_embedded_nlu_understands_the_held_out_tibetan_phrases() -> None:
    held_out = [e for e in training_data.load(training_data.DATA_DIR / "test.yml").examples
                if TIBETAN.search(e.text)]
    assert len(held_out) >= 25
    nlu = EmbeddedNlu()
    nlu.train()
    wrong = [(e.text, e.intent, (nlu.parse_sync(e.text).intent() or "none")) for e in held_out
             if (nlu.parse_sync(e.text).intent() or "none") != e.intent]
    assert len(wrong) / len(held_out) <= 0.2, wrong


# ---------------------------------------------------------------- WeChat


@pytest.fixture
async def fake_wechat(aiohttp_server: Any) -> FakeWechat:
    fake = FakeWechat()
    fake.server = await aiohttp_server(fake.app)  # type: ignore[attr-defined]
    return fake


@pytest.fixture
async def wx(aiohttp_client: Any, tmp_path: Path, clean_backends: Backends, fake_wechat: FakeWechat) -> Any:
    from bot.app import create_app
    from bot.channels.wechat import WECHAT

    client = await aiohttp_client(create_app(wechat_settings(tmp_path, clean_backends, fake_wechat)))
    client.server.app[WECHAT].retry_delays = (0.01, 0.01)
    return client


async def wechat_says(client: Any, fake: FakeWechat, xml: str) -> str:
    """Everything the user reads for one message: the passive reply and any pushed parts."""
    from tests.channel_fakes import query

    before = len(fake.sent)
    response = await client.post("/wechat", params=query(), data=xml, headers={"Content-Type": "text/xml"})
    assert response.status == 200
    body = await response.text()
    parts = [passive_text(body)] if body not in ("", "success") else []
    for sent in fake.sent[before:]:
        parts.append(str(sent.get("text", {}).get("content", "")))
    return "\n".join(parts)


async def test_a_tibetan_reader_through_wechat(wx: Any, fake_wechat: FakeWechat) -> None:
    text = await wechat_says(wx, fake_wechat, text_xml("我是藏族，汉字看不太懂，有藏文的吗"))
    assert untranslated(text) == [] and "༡. ར་སྤྲོད་ཇི་ལྟར་བྱེད།" in text  # options numbered in Tibetan
    text = await wechat_says(wx, fake_wechat, text_xml("༢"))  # certification failed
    assert untranslated(text) == [] and "འོད" in text
    text = await wechat_says(wx, fake_wechat, text_xml("༡"))  # poor light: the fix
    assert untranslated(text) == [] and "སྒེའུ་ཁུང" in text
    text = await wechat_says(wx, fake_wechat, text_xml("༡"))  # it worked
    assert untranslated(text) == []
    text = await wechat_says(wx, fake_wechat, text_xml("ཁྱིམ་དུ་ཡོང་ནས་ར་སྤྲོད།"))  # a home visit
    assert untranslated(text) == [] and "མིང" in text
    for answer in ("ཚེ་རིང་སྒྲོལ་མ", ID_A, "ཡུས་ཧྲུའུ་ཁྲོམ་ཁྱེར་ལམ་ཨང་༣", "༡༣༩༠༩༧༡༡༢༣༤", "འགྲོ་འཁྱམ་མི་བདེ།"):
        text = await wechat_says(wx, fake_wechat, text_xml(answer))
    assert untranslated(text, ("ཚེ་རིང་སྒྲོལ་མ",)) == [] and "13909711234" in text
    text = await wechat_says(wx, fake_wechat, text_xml("༡"))
    assert untranslated(text) == [] and "SM" in text  # the reference number
    text = await wechat_says(wx, fake_wechat, text_xml("ལས་བྱེད་པ་འབོད།"))
    assert untranslated(text) == [] and "ལས་བྱེད་པ" in text
    text = await wechat_says(wx, fake_wechat, text_xml("དོར"))
    text = await wechat_says(wx, fake_wechat, text_xml("中文"))
    assert "回复 1 怎么认证" in text and not TIBETAN.search(text.replace(LANGUAGE_OPTIONS[BO], ""))


async def test_the_wechat_menu_entry_switches_to_tibetan(wx: Any, fake_wechat: FakeWechat) -> None:
    from bot import keys

    entries = [s for b in wx.server.app[keys.SERVICES].settings.wechat.menu for s in b.get("sub_button", [])]
    assert {"type": "click", "name": LANGUAGE_OPTIONS[BO], "key": "lang_bo"} in entries
    text = await wechat_says(wx, fake_wechat, message_xml(
        "event", "<Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[lang_bo]]></EventKey>"))
    assert untranslated(text) == [] and "༡." in text


# ---------------------------------------------------------------- staff


async def _staff_client(aiohttp_client: Any, tmp_path: Path, clean_backends: Backends, **overrides: Any) -> Any:
    from bot.app import create_app
    from tests.conftest import make_settings

    return await aiohttp_client(create_app(make_settings(tmp_path, clean_backends, **overrides)))


async def _login(client: Any, username: str) -> str:
    response = await client.post("/staff/login", data={"username": username, "password": STAFF_PASSWORD},
                                 allow_redirects=False)
    assert response.status == 303
    return str((await (await client.get("/api/staff/me")).json())["csrf_token"])


async def _claim(client: Any, token: str, case_id: int) -> Any:
    origin = f"http://{client.server.host}:{client.server.port}"
    return await client.post(f"/api/staff/cases/{case_id}/claim",
                             headers={"X-CSRF-Token": token, "Origin": origin})


async def _chat(client: Any, user: str, *texts: str) -> list[dict[str, Any]]:
    from tests.webchat import web_id

    replies: list[dict[str, Any]] = []
    for text in texts:
        response = await client.post("/api/chat", json={"user_id": await web_id(client, user), "text": text})
        assert response.status == 200, await response.text()
        replies = list((await response.json())["replies"])
    return replies


STAFF_PASSWORD = "secret-pass-1"


async def test_staff_languages_are_validated_and_changed(client: Any) -> None:
    from bot.core.errors import BadRequest
    from bot.staff.web import AUTH

    auth = client.server.app[AUTH]
    dolma = await auth.create_user("dolma", STAFF_PASSWORD, "agent", "zh,bo")
    assert dolma.languages == "zh,bo" and dolma.language_list == ["zh", "bo"]
    wang = await auth.create_user("wang", STAFF_PASSWORD)
    assert wang.languages == "zh"
    assert (await auth.set_languages("wang", "bo")).languages == "zh,bo"  # Chinese always stays
    with pytest.raises(BadRequest):
        await auth.set_languages("wang", "zh,xx")
    with pytest.raises(BadRequest):
        await auth.create_user("li", STAFF_PASSWORD, "agent", "en")


async def test_a_tibetan_case_goes_to_tibetan_speakers_first(aiohttp_client: Any, tmp_path: Path,
                                                              clean_backends: Backends) -> None:
    from bot.staff.web import AUTH

    client = await _staff_client(aiohttp_client, tmp_path, clean_backends)
    auth = client.server.app[AUTH]
    await auth.create_user("wang", STAFF_PASSWORD)  # Chinese only
    await auth.create_user("dolma", STAFF_PASSWORD, "agent", "zh,bo")
    await _chat(client, "han", "你好", "转人工")  # a Chinese case first (older)
    replies = await _chat(client, "tashi", "བོད་ཡིག", "ལས་བྱེད་པ་འབོད།")
    assert TIBETAN.search(replies[0]["text"]) and not untranslated(replies[0]["text"])

    # the Tibetan speaker sees the Tibetan case first, marked in the console
    dolma_client = await aiohttp_client(client.server)
    dolma_token = await _login(dolma_client, "dolma")
    listed = (await (await dolma_client.get("/api/staff/cases")).json())
    assert [c["language"] for c in listed] == ["bo", "zh"]
    page = await (await dolma_client.get("/staff")).text()
    assert "lang-bo" in page and "藏文" in page and "语言" in page
    case_page = await (await dolma_client.get(f"/staff/cases/{listed[0]['id']}")).text()
    assert "语言：" in case_page and "藏文" in case_page

    # a Chinese-only colleague sees it after the Chinese one and cannot take it yet
    wang_token = await _login(client, "wang")
    listed_for_wang = (await (await client.get("/api/staff/cases")).json())
    assert [c["language"] for c in listed_for_wang] == ["zh", "bo"]
    tibetan_case = listed[0]["id"]
    refused = await _claim(client, wang_token, tibetan_case)
    assert refused.status == 409 and "藏文" in (await refused.json())["message"]

    taken = await _claim(dolma_client, dolma_token, tibetan_case)
    assert taken.status == 200
    # the greeting reaches the reader in Tibetan
    from tests.webchat import web_id

    pushed = await client.get("/api/chat/updates", params={"user_id": await web_id(client, "tashi")})
    texts = [r["text"] for r in (await pushed.json())["replies"]]
    assert texts and all(TIBETAN.search(t) and not untranslated(t) for t in texts), texts


async def test_without_a_tibetan_speaker_or_after_the_wait_anyone_may_claim(
        aiohttp_client: Any, tmp_path: Path, clean_backends: Backends) -> None:
    from bot.staff.web import AUTH

    client = await _staff_client(aiohttp_client, tmp_path, clean_backends, **{"staff.language_first_s": 0})
    dolma = await client.server.app[AUTH].create_user("dolma", STAFF_PASSWORD, "agent", "zh,bo")
    await client.server.app[AUTH].create_user("wang", STAFF_PASSWORD)
    await _chat(client, "tashi", "བོད་ཡིག", "ལས་བྱེད་པ་འབོད།")
    token = await _login(client, "wang")
    [case] = (await (await client.get("/api/staff/cases")).json())
    assert (await _claim(client, token, case["id"])).status == 200

    other = await _staff_client(aiohttp_client, tmp_path / "2", clean_backends)  # the default wait
    await other.server.app[AUTH].set_active(dolma.id, False)  # no active Tibetan speaker now
    await other.server.app[AUTH].create_user("li", STAFF_PASSWORD)
    await _chat(other, "norbu", "བོད་ཡིག", "ལས་བྱེད་པ་འབོད།")
    token = await _login(other, "li")
    waiting = [c for c in (await (await other.get("/api/staff/cases")).json()) if c["status"] == "waiting"]
    assert (await _claim(other, token, waiting[0]["id"])).status == 200


def test_staff_cli_marks_tibetan_speakers(tmp_path: Path, clean_backends: Backends, monkeypatch: Any,
                                           capsys: Any) -> None:
    import io
    import sys

    from bot.cli import main

    for name, value in {"REDIS_URL": clean_backends.redis_url, "DATABASE_URL": clean_backends.database_url,
                        "BOT_DATA_DIR": str(tmp_path / "var")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "stdin", io.StringIO(STAFF_PASSWORD + "\n"))
    assert main(["staff", "add", "dolma", "--languages", "zh,bo"]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO(STAFF_PASSWORD + "\n"))
    assert main(["staff", "add", "wang"]) == 0
    assert main(["staff", "languages", "wang", "zh,bo"]) == 0
    assert main(["staff", "languages", "wang", "klingon"]) == 1
    assert main(["staff", "list"]) == 0
    out = capsys.readouterr().out
    assert "dolma (agent, zh,bo)" in out and "wang chats in zh,bo" in out
    assert "dolma\tagent\tactive\tzh,bo" in out


# ---------------------------------------------------------------- reminders


def test_a_reminder_is_said_in_the_language_of_the_chat_that_asked() -> None:
    from datetime import date

    from bot.records.reminders import FIRST, MISSED, Reminder

    for kind in (FIRST, MISSED):
        for role in ("self", "family"):
            tibetan = Reminder(kind, role, "ཚེ་*", date(2027, 3, 15), date(2027, 2, 13), "bo")
            text, options = tibetan.said()
            assert untranslated(text) == [] and "༢༠༢༧" in text, text
            assert all(untranslated(o) == [] for o in options), options
            assert all(untranslated(v) == [] for v in tibetan.said_fields().values())
            chinese = Reminder(kind, role, "张*兰", date(2027, 3, 15), date(2027, 2, 13))
            assert "2027年3月15日" in chinese.said()[0]


async def tibetan_pensioner(services: Any) -> int:
    """A pensioner of Golog with a Tibetan name; their id."""
    from bot.core.storage.models import Pensioner

    async with services.db.session() as session:
        pensioner = Pensioner(id_number=ID_A, name="བཀྲ་ཤིས་སྒྲོལ་མ", region="果洛")
        session.add(pensioner)
        await session.flush()
        return int(pensioner.id)


async def test_the_subscription_keeps_the_chat_language(services: Any) -> None:
    from bot.core.storage.models import ReminderSubscription
    from bot.records.reminders import subscribe

    pensioner_id = await tibetan_pensioner(services)
    await subscribe(services.db, "wechat:tashi", pensioner_id, "self", "bo")
    async with services.db.session() as session:
        row = (await session.scalars(select(ReminderSubscription))).one()
    assert row.language == "bo"


async def test_the_success_message_and_reminder_offer_are_in_tibetan(services: Any) -> None:
    """Said after a pensioner's own selfie passes: both the asked offer and the kept promise."""
    from datetime import date, datetime
    from zoneinfo import ZoneInfo

    from bot.core.conversation import Conversation
    from bot.core.i18n import render, tr
    from bot.records.proxy_links import link_pensioner
    from bot.records.reminders import subscribe
    from dialogs.family_verdict import proxy_certified
    from dialogs.reminders import offer_after_success

    pensioner_id = await tibetan_pensioner(services)
    success = tr("认证成功！{who}今年的养老待遇资格认证已经完成，养老金会照常发放。\n下次请在 {due} 前后再认证。",
                 who=tr("您"), due="༢༠༢༧")
    conv = Conversation(key="wechat:tashi", language=BO)
    offered = await offer_after_success(services, conv, pensioner_id, date(2027, 3, 15), success)
    await subscribe(services.db, conv.key, pensioner_id, "self", BO)
    promised = await offer_after_success(services, Conversation(key="wechat:tashi", language=BO),
                                         pensioner_id, date(2027, 3, 15), success)
    # a family member's proxy certification: the due date and the reminder question
    await link_pensioner(services.db, ZoneInfo("Asia/Shanghai"), "wechat:son", pensioner_id, "son", "wechat",
                         datetime.now(ZoneInfo("Asia/Shanghai")))
    family = await proxy_certified(services, Conversation(key="wechat:son", language=BO), None,
                                   {"pensioner_id": pensioner_id, "channel": "wechat"}, date(2027, 3, 15))
    assert len(family) == 1 and len(family[0].options) == 2
    for reply in (*offered, *promised, *family):
        text = render(reply.text, BO)
        assert TIBETAN.search(text) and untranslated(text) == [], text
        assert all(untranslated(render(option, BO)) == [] for option in reply.options), reply.options


async def test_every_answer_and_flow_start_is_in_tibetan(tmp_path: Path, clean_backends: Backends) -> None:
    """A sweep: each knowledge answer and each guided flow's first question, in a Tibetan chat."""
    from bot.app import started
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, clean_backends, **{"rate_limit.messages_per_minute": 10000})
    async with started(settings) as services:
        await _sweep(TestBot(services))


async def _sweep(testbot: TestBot) -> None:
    await testbot.say("བོད་ཡིག")
    services = testbot.services
    intents = sorted({e.intent for e in services.faq.entries if e.intent} | set(services.dialogs.by_intent))
    assert len(intents) > 30
    for intent in intents:
        if intent in ("human_handoff", "pensioner_died"):
            continue  # a case, or condolences: covered elsewhere
        await testbot.say("འདེམས་ཐོ།")  # back to the menu between questions
        await testbot.say(event=f"menu:{intent}")
        for reply in testbot.replies:
            assert untranslated(reply.text) == [], (intent, reply.text)
            assert all(untranslated(o) == [] for o in reply.options), (intent, reply.options)


def test_selfie_quality_advice_is_in_tibetan() -> None:
    from bot.core.i18n import render
    from face.quality import ADVICE, advice_for

    for code in ADVICE:
        assert not untranslated(render(advice_for([code]), BO)), code
    two = render(advice_for(["too_dark", "blurry"]), BO)
    second = render(ADVICE["blurry"], BO)
    assert not untranslated(two) and two.endswith(" " + second)  # two sentences, not run together


@pytest.mark.parametrize("said", ["ཁ་པར་བཏང་ནས་ལས་བྱེད་པ་ཡིན་ཟེར་ནས་དངུལ་སྐྱེལ་དགོས་ཟེར།",
                                  "ལས་བྱེད་པ་ཡིན་ཟེར་མཁན་ཞིག་གིས་ངའི་དངུལ་ཁང་གི་གསང་ཨང་འདྲི་གི་འདུག"])
async def test_a_scam_told_in_tibetan_gets_the_warning_in_tibetan(testbot: TestBot, said: str) -> None:
    await testbot.say("བོད་ཡིག")
    await testbot.say(said)
    assert "【མགོ་སྐོར་ཉེན་བརྡ།】" in testbot.text
    assert (await testbot.conversation()).mode == "bot", "a warning, not a queue for a person"


@pytest.mark.parametrize("said", ["ངའི་ཨ་ཕ་འདས་སོང་།", "ང་ཚོའི་ཨ་མ་ཚེ་ལས་འདས་སོང་། ར་སྤྲོད་བྱེད་དགོས་སམ།"])
async def test_a_death_told_in_tibetan_gets_condolences(testbot: TestBot, said: str) -> None:
    await testbot.say("བོད་ཡིག")
    await testbot.say(said)
    entry = testbot.services.faq.for_intent("pensioner_died")
    assert entry is not None
    assert render(entry.answer[0], "bo") in testbot.text


async def test_certifying_for_a_parent_and_thanks_written_in_tibetan(testbot: TestBot) -> None:
    await testbot.say("ཐུགས་རྗེ་ཆེ།")  # "thank you"
    assert "ཐུགས་རྗེ་ཆེ" in testbot.text and "ངས་གོ་མ་སོང" not in testbot.text
    await testbot.say("ང་ཨ་མའི་ཚབ་ཏུ་ར་སྤྲོད་བྱེད་འདོད།")  # "I want to certify for my mother"
    assert (await testbot.conversation()).frame.dialog == "family"
    frame = (await testbot.conversation()).frame
    assert frame.state == "ask_id"  # "ཨ་མ" (mother): the caller is a child, not asked again
    assert "བུ་ཕྲུག་ཡིན" in testbot.text
    await testbot.say("ཤེས་ཀྱི་མི་འདུག")  # "I don't know": where the number is, in Tibetan
    assert "ཐེམ་ཐོ" in testbot.text and (await testbot.conversation()).frame.state == "ask_id"


def test_tibetan_relationship_words_are_whole_words() -> None:
    assert relationship_of("ངའི་ཨ་མའི་ར་སྤྲོད་བྱེད་དགོས།") == "子女"
    assert relationship_of("ང་ཁོ་མོའི་བུ་མོ་ཡིན།") == "子女"
    assert relationship_of("ངའི་ཁྱོ་གའི་ཚབ་ཏུ་ར་སྤྲོད།") == "配偶"
    assert relationship_of("ང་ཨ་མདོ་ནས་ཡིན།") is None  # Amdo, not "mother"


async def test_a_failure_and_a_situation_told_in_tibetan_are_understood(testbot: TestBot) -> None:
    await testbot.say("བོད་ཡིག")
    await testbot.say("ར་སྤྲོད་བྱས་མ་ཐུབ།")  # certification failed
    await testbot.say("འོད་མི་འདང་།")  # not enough light
    assert (await testbot.conversation()).frame.state == "fix_poor_light"
    assert_tibetan(testbot)
    other = TestBot(testbot.services)
    await other.say("བོད་ཡིག")
    await other.say("ང་ལ་ཁ་པར་བེད་སྤྱོད་བྱེད་མི་ཤེས།")  # I cannot use a phone: the questions, that one known
    assert (await other.conversation()).frame.dialog == "choose_method"
    assert_tibetan(other)

"""The knowledge base: coverage of the seed document, short answers, options, retrieval."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faq.knowledge import FaqHit, KnowledgeBase
from nlu.embedded import EmbeddedNlu
from nlu.rules import match_command, normalise

from .test_nlu import INTENTS

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT.parent / "shared" / "seed" / "qinghai-pension-certification.txt"
MAX_CHARS = 120
THRESHOLD = 0.45
FAQ_FLOOR = 0.3
NOT_INFORMATIONAL = {"greet", "human_handoff"}  # the router shows the menu / escalates

# Every fact of the seed document (and the public facts the issue adds), as words that must
# appear in some answer. Grouped by the seed's sections.
FACTS: dict[str, list[str]] = {
    "开头": ["防止被别人冒领", "按时"],
    "大数据比对": ["公安", "民政", "卫生健康", "交通运输", "不用做任何操作", "不会用智能手机"],
    "人脸识别认证": ["国家社会保险公共服务平台", "掌上12333", "中国领事", "行动不便"],
    "社会化服务认证": ["社区", "村", "健康体检", "上门认证"],
    "手机APP认证": ["青海人社通"],
    "注意事项": ["正对屏幕", "不要抬头或低头", "五官", "开灯", "一致", "网络要稳定"],
    "社保认证打不开": ["填完整", "重新操作", "社保客服"],
    "认证失败": ["光线", "身份证号输错", "建模", "申诉", "人工审核"],
    "线上认证": ["应用宝", "华为应用商店", "App Store", "二维码", "养老待遇资格认证", "扫描身份证",
                 "开始认证"],
    "支付宝": ["支付宝", "更多", "城市服务", "电子社保卡", "同意协议", "密码"],
    "线下认证": ["社保机构", "委托社区", "邮储银行", "《养老保险认证申请表》", "工作人员审核"],
    "上门服务": ["残疾", "重病", "上门"],
    "材料": ["身份证原件和复印件", "社保卡原件和复印件", "户口簿", "身体状况证明"],
    "常见问题": ["补认证", "逆光", "摄像头的角度", "等网络恢复", "通知公告", "避开维护时间",
                 "技术支持", "街镇", "修改个人基础信息"],
    "解决方法总结": ["社保卡号", "指纹认证", "线下认证", "上门认证"],
    "public": ["每12个月至少认证一次", "暂停发放", "补发", "参保地的社保经办机构审核"],
}

# A question from every seed section, as a user might ask it, and the entry that answers it.
SECTION_QUESTIONS = [
    ("认证到底是为了啥", "purpose"),
    ("大数据比对认证是怎么回事", "method_bigdata"),
    ("掌上12333能刷脸认证吗", "method_face_app"),
    ("在国外住着用什么app认证", "method_abroad"),
    ("社区活动的时候能认证吗", "method_community"),
    ("青海人社通怎么操作认证", "process_online"),
    ("刷脸的时候要注意什么", "precautions"),
    ("个人信息和社保登记的不一致", "fail_info_mismatch"),
    ("网络不好认证失败", "fail_network"),
    ("社保认证的页面打不开", "fail_app_wont_open"),
    ("认证失败是什么原因", "cert_failed"),
    ("光线太暗脸识别不了", "fail_poor_light"),
    ("提示我没有建模", "fail_no_model"),
    ("多次失败能申诉吗", "appeal"),
    ("人社通app在哪里下载", "app_download"),
    ("支付宝电子社保卡怎么认证", "method_alipay"),
    ("线下去社保机构认证", "method_offline"),
    ("邮储银行网点能认证吗", "method_offline"),
    ("认证申请表怎么填写", "process_offline"),
    ("老人行动特别困难能上门吗", "method_home_visit"),
    ("认证需要带哪些材料", "materials"),
    ("错过了认证时间怎么办", "missed_deadline"),
    ("系统维护认证不了", "fail_maintenance"),
    ("能用指纹认证吗", "fingerprint"),
    ("社保客服电话是多少", "contact"),
]


@functools.cache
def shared_kb() -> KnowledgeBase:
    return KnowledgeBase()


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return shared_kb()


@pytest.fixture(scope="module")
def nlu() -> EmbeddedNlu:
    backend = EmbeddedNlu()
    backend.train()
    return backend


def test_answers_are_short_sourced_and_end_with_options(kb: KnowledgeBase) -> None:
    assert len(kb.by_id) == len(kb.entries)
    for entry in kb.entries:
        assert entry.source, entry.id
        assert entry.source.split(":")[0] in ("seed", "public", "product"), entry.id
        assert entry.answer and entry.options, entry.id
        assert 2 <= len(entry.options) <= 4, entry.id
        for message in entry.answer:
            assert len(message) <= MAX_CHARS, (entry.id, len(message))


def test_every_informational_intent_has_an_entry(kb: KnowledgeBase) -> None:
    missing = [i for i in INTENTS if i not in NOT_INFORMATIONAL and kb.for_intent(i) is None]
    assert missing == []


def test_every_fact_of_the_seed_is_covered(kb: KnowledgeBase) -> None:
    text = "\n".join(part for entry in kb.entries for part in entry.answer)
    missing = {section: [w for w in words if w not in text] for section, words in FACTS.items()}
    assert {k: v for k, v in missing.items() if v} == {}


def test_seed_sections_all_have_a_source_note(kb: KnowledgeBase) -> None:
    if not SEED.exists():
        pytest.skip(f"seed document not found at {SEED}")
    sources = " ".join(entry.source for entry in kb.entries)
    for section in ["大数据比对", "人脸识别认证", "社会化服务认证", "注意事项", "个人信息一致性",
                    "网络连接", "社保认证打不开", "认证失败", "线上认证", "线下认证", "上门服务",
                    "需要哪些材料", "错过认证时间", "光线不好", "系统维护", "解决方法总结"]:
        assert section in SEED.read_text(encoding="utf-8"), section
        assert section in sources, section


def test_follow_up_options_are_understood(kb: KnowledgeBase, nlu: EmbeddedNlu) -> None:
    """Clicked options come back as text: each must reach an intent that has an answer."""
    for entry in kb.entries:
        for option in entry.options:
            if match_command(option):
                continue
            top = nlu.parse_sync(option).top
            assert top is not None and top.confidence >= THRESHOLD, (entry.id, option, top)
            assert kb.for_intent(top.name) is not None, (entry.id, option, top.name)
            assert top.name != entry.intent, (entry.id, option)  # an option never loops back


@pytest.mark.parametrize(("question", "entry_id"), SECTION_QUESTIONS)
def test_retrieval_answers_every_seed_section(kb: KnowledgeBase, question: str, entry_id: str) -> None:
    hits = kb.search(question)
    assert hits and hits[0].entry.id == entry_id, [(h.entry.id, round(h.score, 2)) for h in hits]
    assert hits[0].score >= FAQ_FLOOR


def test_gibberish_retrieves_nothing(kb: KnowledgeBase) -> None:
    for text in ["啊啊啊啊", "嗯嗯嗯嗯", "", "。。", "zzzz"]:
        assert [h for h in kb.search(text) if h.score >= FAQ_FLOOR] == []


def reference_search(kb: KnowledgeBase, question: str, limit: int) -> list[FaqHit]:
    """KnowledgeBase.search as first written: row by row, nothing kept between calls."""
    cleaned = normalise(question)
    if not cleaned or not any(cleaned[i:i + 2] in kb._vocabulary for i in range(len(cleaned) - 1)):
        return []
    indices, weights = kb._vectorize(cleaned)
    if not len(indices):
        return []
    scores = kb._matrix[:, indices] @ weights
    best: dict[int, float] = {}
    for row in np.flatnonzero(scores > 0):
        score = scores[row]
        entry_index = kb._rows[row]
        if score > best.get(entry_index, 0.0):
            best[entry_index] = float(score)
    ranked = sorted(best.items(), key=lambda item: item[1], reverse=True)[:limit]
    return [FaqHit(kb.entries[i], score) for i, score in ranked]


def test_search_equals_the_row_by_row_ranking() -> None:
    kb = KnowledgeBase()  # nothing ranked yet
    texts = [question for entry in kb.entries for question in entry.questions + entry.options]
    texts += [question for question, _ in SECTION_QUESTIONS]
    texts += ["你好", "1", "认证", "认证认证", "刷脸老是不过咋整", "我妈妈在外地怎么认证", "啊啊啊啊", "", "zzzz",
              "身份证号码632123195001011234", "社保", "怎么办怎么办", "材料"]
    for text in texts:
        for limit in (1, 2, 3, 100, 0):
            assert kb.search(text, limit) == reference_search(kb, text, limit), (text, limit)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("认证刷脸失败怎么办材料户口本社保卡不过了吗啊1 x"), max_size=12))
def test_search_equals_the_row_by_row_ranking_on_generated_text(text: str) -> None:
    kb = shared_kb()
    for limit in (1, 2, 5, 100):
        assert kb.search(text, limit) == reference_search(kb, text, limit)


def test_a_repeated_search_is_ranked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The router may search one text up to four times in a turn (two limits, two places)."""
    kb = KnowledgeBase()
    ranked: list[str] = []
    vectorize = kb._vectorize

    def counted(cleaned: str) -> tuple[np.ndarray, np.ndarray]:
        ranked.append(cleaned)
        return vectorize(cleaned)

    monkeypatch.setattr(kb, "_vectorize", counted)
    text = "忘了认证能补吗，补认证要去哪儿"
    first, second, again = kb.search(text, limit=2), kb.search(text, limit=1), kb.search(text, limit=2)
    assert ranked == [normalise(text)]
    assert second == first[:1] and again == first


async def test_chat_answers_colloquial_questions_with_facts(testbot: Any) -> None:
    cases = [
        ("刷脸老是不过咋整", "光线"),
        ("人在澳洲养老金认证咋办", "中国领事"),
        ("我爸瘫在床上出不了门", "上门"),
        ("青海人社通咋下载", "安卓"),  # the walkthrough asks the phone type first
        ("错过年审了养老金停了咋整", "补给您"),
        ("今天天气咋样", "帮不上忙"),
    ]
    for text, expected in cases:
        await testbot.say("主菜单")
        replies = await testbot.say(text)
        # a fact in the answer, or the guided dialog that leads to it in its options
        shown = testbot.text + " ".join(option for reply in replies for option in reply.options)
        assert expected in shown, (text, shown)
        assert replies[-1].options, text
    await testbot.say("主菜单")
    await testbot.say("青海人社通咋下载")
    await testbot.say("1")  # an Android phone
    assert "应用宝" in testbot.text


async def test_retrieval_answers_what_no_intent_routes(testbot: Any) -> None:
    await testbot.say("能不能按指纹认证")
    assert "指纹" in testbot.text

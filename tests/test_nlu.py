"""NLU: training data, entities, the embedded backend, the Rasa backend (real server)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import services as bot_services
from bot.core.understanding import Entity, IntentScore, ParseResult
from bot.services import Services, build_nlu
from nlu import cues, entities, rasa_model, training_data
from nlu import embedded as embedded_module
from nlu.embedded import EmbeddedNlu
from nlu.rasa_backend import RasaNlu, RasaUnavailableError
from nlu.rules import COMMAND_PATTERNS, COMMAND_WORDS, match_command, normalise

from .conftest import make_settings

INTENTS = """greet goodbye thanks affirm deny out_of_scope human_handoff purpose how_to_certify
choose_method method_bigdata method_face_app method_alipay method_community method_offline
method_home_visit method_abroad process_online process_offline app_download materials precautions
cert_failed fail_app_wont_open fail_poor_light fail_no_model fail_info_mismatch fail_network
fail_maintenance missed_deadline appeal family_certification status_query certify_now
scam_warning privacy lost_card cert_cycle proxy_presence backpay_timing pensioner_died abroad_help office_hours
other_province how_long""".split()
REGIONS = ["西宁", "海东", "海北", "黄南", "海南", "果洛", "玉树", "海西"]
GIBBERISH = ["啊啊啊啊", "嗯嗯嗯嗯", "嗯啊啊啊", "哦哦哦哦", "哈哈哈哈", "asdfgh", "。。。", "？？", "嗯", "呃呃呃"]


@pytest.fixture(scope="module")
def train() -> training_data.TrainingData:
    return training_data.load(training_data.DATA_DIR / "nlu.yml")


@pytest.fixture(scope="module")
def test_set() -> training_data.TrainingData:
    return training_data.load(training_data.DATA_DIR / "test.yml")


@pytest.fixture(scope="module")
def embedded() -> EmbeddedNlu:
    nlu = EmbeddedNlu()
    nlu.train()
    return nlu


# ---------------------------------------------------------------- training data


def test_every_intent_has_enough_training_and_test_examples(train: Any, test_set: Any) -> None:
    counts = Counter(e.intent for e in train.examples)
    held_out = Counter(e.intent for e in test_set.examples)
    assert set(counts) == set(INTENTS), set(counts) ^ set(INTENTS)
    assert set(held_out) == set(INTENTS), set(held_out) ^ set(INTENTS)
    assert {i: n for i, n in counts.items() if n < 20} == {}
    assert {i: n for i, n in held_out.items() if n < 10} == {}


def test_no_example_in_two_intents_and_no_train_test_overlap(train: Any, test_set: Any) -> None:
    seen: dict[str, str] = {}
    for example in train.examples:
        key = normalise(example.text)
        assert seen.setdefault(key, example.intent) == example.intent, example.text
    dup_train = [k for k, n in Counter(normalise(e.text) for e in train.examples).items() if n > 1]
    assert dup_train == []
    overlap = [e.text for e in test_set.examples if normalise(e.text) in seen]
    assert overlap == []


def test_commands_are_rules_not_training_examples(train: Any, test_set: Any) -> None:
    assert [e.text for e in train.examples + test_set.examples if match_command(e.text)] == []
    assert not any(e.intent.startswith("cmd_") for e in train.examples)


def test_synonyms_regexes_and_lookups(train: Any) -> None:
    required = {
        "刷脸": ["人脸识别", "面部识别", "扫脸"],
        "认证": ["年审", "资格认证", "核验", "年检"],
        "养老金": ["退休金", "退休工资", "养老钱"],
        "社保局": ["社保机构", "人社局", "经办机构", "社保中心"],
        "青海人社通": ["人社通", "青海人社APP"],
        "父亲": ["爸", "爸爸"], "母亲": ["妈", "妈妈"], "配偶": ["老伴"],
    }
    for canonical, variants in required.items():
        for variant in variants:
            assert train.synonyms.get(variant) == canonical, variant
    assert set(train.regexes) >= {"id_number", "phone"}
    for word in ["父亲", "母亲", "爸", "妈", "老伴", "公公", "婆婆", "岳父", "岳母"]:
        assert word in train.lookups["relationship"]
    for region in REGIONS:
        assert region in train.lookups["region"]
        assert any(v.startswith(region) and v[-1] in "州市" for v in train.lookups["region"]), region
    annotated = {t for e in train.examples for t, *_ in e.entities}
    assert annotated >= {"id_number", "phone", "relationship", "region", "date"}


def test_annotations_are_stripped_with_positions() -> None:
    text, found = training_data.strip_annotations('替我[妈](relationship)去[西宁]{"entity": "region"}认证')
    assert text == "替我妈去西宁认证"
    assert found == [("relationship", "妈", 2, 3), ("region", "西宁", 4, 6)]


# ---------------------------------------------------------------- entities


def test_id_checksum() -> None:
    assert entities.id_checksum_ok("11010519491231002X")
    assert entities.id_checksum_ok("11010519491231002x")
    assert entities.id_checksum_ok("630102195403121236")
    assert not entities.id_checksum_ok("630102195403121230")
    assert not entities.id_checksum_ok("63010219540312123")
    assert not entities.id_checksum_ok("63010219540312123A")
    assert entities.with_check_digit("63010219540312123") == "630102195403121236"


def test_id_numbers_and_phones() -> None:
    found = entities.extract("我的身份证是６３０１０２ １９５４０３１２ １２３６，电话13909712345")
    assert [(e.type, e.value) for e in found] == [("id_number", "630102195403121236"),
                                                  ("phone", "13909712345")]
    assert [(e.type, e.value) for e in entities.extract("号码630102195403121230对吗")] == [
        ("id_number_invalid", "630102195403121230")]
    assert entities.extract("电话12345678901") == []


@pytest.mark.parametrize(("text", "expected"), [
    ("替我妈认证", [("relationship", "母亲")]),
    ("帮我爸爸刷脸", [("relationship", "父亲")]),
    ("我家阿大瘫在床上", [("relationship", "父亲")]),
    ("给老伴儿办年审", [("relationship", "配偶")]),
    ("丈母娘不会用手机", [("relationship", "岳母")]),
    ("替公公和婆婆认证", [("relationship", "公公"), ("relationship", "婆婆")]),
    ("我在海西蒙古族藏族自治州", [("region", "海西")]),
    ("玉树州的社保局在哪", [("region", "玉树")]),
    ("西宁市城东区", [("region", "西宁")]),
    ("格尔木能现场认证吗", [("region", "海西")]),
])
def test_relationship_and_region_are_normalised(text: str, expected: list[tuple[str, str]]) -> None:
    found = [(e.type, e.value) for e in entities.extract(text) if e.type in ("relationship", "region")]
    assert found == expected


def test_surface_form_and_positions_are_kept() -> None:
    (entity,) = entities.extract("帮老爹认证")
    assert (entity.value, entity.extra["text"], entity.start, entity.end) == ("父亲", "老爹", 1, 3)


@pytest.mark.parametrize(("text", "value"), [
    ("我2024年3月5日认证的", "2024-03-05"),
    ("2023-11-02去的社保局", "2023-11-02"),
    ("三月五号认证的", "2026-03-05"),
    ("一九五四年三月十二日出生", "1954-03-12"),
    ("十二月二十号", "2026-12-20"),
    ("去年没认证", "2025"),
    ("昨天刷的脸", "2026-06-14"),
    ("2024年认证过", "2024"),
])
def test_dates(text: str, value: str) -> None:
    today = dt.date(2026, 6, 15)
    found = [e.value for e in entities.extract(text, today=today) if e.type == "date"]
    assert found == [value]


def test_no_false_dates_inside_numbers_or_invalid_days() -> None:
    assert [e for e in entities.extract("630102195403121236") if e.type == "date"] == []
    assert [e for e in entities.extract("2月30日", today=dt.date(2026, 1, 1)) if e.type == "date"] == []


# ---------------------------------------------------------------- fast paths = the plain algorithms
# The rules and extractors run on every message, so they take shortcuts (one combined regex,
# a quick check before the date patterns). These tests compare them with the plain versions.


def reference_match_command(text: str) -> IntentScore | None:
    """match_command as first written: each intent's pattern in turn."""
    cleaned = normalise(text)
    for intent, pattern in COMMAND_PATTERNS.items():
        if pattern.match(cleaned):
            return IntentScore(intent, 1.0)
    return None


def reference_extract_dates(text: str, today: dt.date) -> list[Entity]:
    """extract_dates as first written: no quick pre-check, one search per relative word."""
    spans = entities.DateSpans(text)
    spans.add_written_dates(today)
    for word, offset in entities._RELATIVE_DAYS.items():
        for match in re.finditer(word, text):
            spans.add((today + dt.timedelta(days=offset)).isoformat(), match.start(), match.end())
    for word, offset in entities._RELATIVE_YEARS.items():
        for match in re.finditer(word, text):
            spans.add(str(today.year + offset), match.start(), match.end())
    return spans.in_order()


def as_tuples(found: list[Entity]) -> list[tuple[str, str, int, int, dict[str, Any]]]:
    return [(e.type, e.value, e.start, e.end, e.extra) for e in found]


COMMAND_VARIANTS = [variant for words in COMMAND_WORDS.values() for word in words
                    for variant in (word, word.upper(), word.title(), f" {word}！", f"{word}吗", f"不{word}",
                                    f"{word}{word}", word[:-1], f"{word[:1]} {word[1:]}")]
DATE_TEXTS = [
    "", "你好", "需要带什么材料", "我2024年3月5日认证的", "2023-11-02去的社保局", "2023/1/31", "2023.02.30",
    "三月五号认证的", "一九五四年三月十二日出生", "十二月二十号", "去年没认证", "昨天刷的脸", "2024年认证过",
    "前天昨天今天明天后天", "今儿明儿", "前年去年今年明年", "今年3月5号", "去年十二月", "13月1日", "0月1日",
    "3月0日", "2月30日", "二〇二四年五月", "两月", "二十五月", "2024 年 3 月", "1999年12月", "天天", "儿子",
    "年年", "630102195403121236", "6301021954031212362024-01-01", "1954年3月12日出生，2024-01-05认证",
    "明天西宁冷不冷", "后天后天", "今天天气", "前前天", "明明年", "１２月１日",
]
SAMPLE_ALPHABET = "年月日号天儿今明昨前后去0123456789-/. 一二三十两零〇认证刷脸妈西宁aXx１"


def test_match_command_equals_pattern_by_pattern() -> None:
    for text in COMMAND_VARIANTS + DATE_TEXTS + ["ＢＡＣＫ", "reſtart", "BACK\n", "ⅯENU", "/START"]:
        assert match_command(text) == reference_match_command(text), text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(sorted(set("".join(COMMAND_VARIANTS)) | set(" ，。!?ſK\n"))),
               max_size=12))
def test_match_command_equals_pattern_by_pattern_on_generated_text(text: str) -> None:
    assert match_command(text) == reference_match_command(text)


def test_fast_date_extraction_equals_the_plain_one() -> None:
    for today in (dt.date(2026, 6, 15), dt.date(2024, 1, 1), dt.date(2024, 2, 29), dt.date(2025, 12, 31)):
        for text in DATE_TEXTS:
            assert as_tuples(entities.extract_dates(text, today)) == \
                as_tuples(reference_extract_dates(text, today)), (text, today)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(SAMPLE_ALPHABET), max_size=20))
def test_fast_date_extraction_equals_the_plain_one_on_generated_text(text: str) -> None:
    today = dt.date(2026, 6, 15)
    assert as_tuples(entities.extract_dates(text, today)) == as_tuples(reference_extract_dates(text, today))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(SAMPLE_ALPHABET + "13579 -"), max_size=30))
def test_numbers_need_a_digit(text: str) -> None:
    """The shortcut (no digit, no number) never hides an ID or phone number."""
    cleaned = entities.normalise_digits(text)
    expected = [m.group(1) for m in entities._ID_CANDIDATE.finditer(cleaned)]
    expected += [m.group(1) for m in entities._PHONE.finditer(cleaned)]
    assert sorted(e.value.upper() for e in entities.extract_numbers(text)) == sorted(v.upper() for v in expected)


# ---------------------------------------------------------------- cue phrases (nlu/data/cues.yml)


def test_the_cue_file_is_not_training_data() -> None:
    assert cues.PATH.parent == training_data.DATA_DIR and cues.PATH.name != rasa_model.DATA.name
    assert training_data.load(cues.PATH) == training_data.TrainingData()  # no nlu: section


def test_every_cue_in_the_file_is_read_by_the_code() -> None:
    code = "".join((Path(cues.__file__).parent / name).read_text(encoding="utf-8")
                   for name in ("reading.py", "rules.py"))
    names = [*cues.CUES.yes_no, *cues.CUES.choices, *cues.CUES.patterns]
    assert [name for name in names if f'"{name}"' not in code] == []


def test_cue_lists_fill_patterns_as_escaped_alternatives(tmp_path: Path) -> None:
    path = tmp_path / "cues.yml"
    path.write_text("lists:\n  places: [西宁, a.b]\npatterns:\n  at: ['在(?:{places})', 'x{0,4}y']\n"
                    "choices:\n  os:\n    ios: {pattern: ios, flags: [IGNORECASE]}\n", encoding="utf-8")
    loaded = cues.load(path)
    assert loaded.take("at")[0].pattern == r"在(?:西宁|a\.b)|x{0,4}y"
    assert loaded.choice_table("os")[0][1][0][1].flags & re.IGNORECASE


@pytest.mark.parametrize(("text", "error"), [
    ("patterns: [a", "not valid YAML"),
    ("patterns:\n  x: '(?:a'\n", "patterns.x: missing ), unterminated subpattern"),
    ("patterns:\n  x: ['(?:a', 'b)']\n", "patterns.x: missing )"),  # split inside a group
    ("patterns:\n  x: ''\n", "patterns.x: a pattern is a non-empty string"),
    ("patterns:\n  x: 'a|'\n", "patterns.x: matches an empty message"),
    ("patterns:\n  x: '在{places}'\n", "patterns.x: {places} names no list"),
    ("patterns:\n  x: {pattern: a, flags: [CASELESS]}\n", "'CASELESS' is not a re flag"),
    ("patterns:\n  x: a\n  x: b\n", "line 3: 'x' written twice"),
    ("yes_no:\n  s:\n    no: a\n    yes: b\n", "yes_no.s: False is not a name (quote it"),
    ("yes_no:\n  s:\n    'no': a\n", "yes_no.s: needs exactly 'no' and 'yes'"),
    ("regex:\n  x: a\n", "unknown sections ['regex']"),
])
def test_a_malformed_cue_stops_the_import_with_its_name(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "cues.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(cues.CueError, match=re.escape(error)):
        cues.load(path)


def test_a_missing_cue_or_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(cues.CueError, match="no cue patterns.nowhere"):
        cues.CUES.take("person", "nowhere")
    with pytest.raises(cues.CueError, match="no cue yes_no.pets"):
        cues.CUES.yes_no_table("pets")
    with pytest.raises(cues.CueError, match="cannot read the cue file"):
        cues.load(tmp_path / "missing.yml")


# ---------------------------------------------------------------- embedded backend


def test_embedded_accuracy_on_held_out_set(embedded: EmbeddedNlu, test_set: Any) -> None:
    wrong = []
    for example in test_set.examples:
        top = embedded.parse_sync(example.text).top
        if top is None or top.name != example.intent:
            wrong.append((example.text, example.intent, top.name if top else None))
    accuracy = 1 - len(wrong) / len(test_set.examples)
    assert accuracy >= 0.90, wrong


@pytest.mark.parametrize(("text", "expected"), [
    ("刷脸老是不过咋整", "cert_failed"),
    ("我爸瘫在床上出不了门", "method_home_visit"),
    ("人在澳洲养老金认证咋办", "method_abroad"),
    ("替我妈认证", "family_certification"),
    ("青海人社通咋下载", "app_download"),
    ("需要带什么材料", "materials"),
])
def test_issue_examples_are_understood(embedded: EmbeddedNlu, text: str, expected: str) -> None:
    result = embedded.parse_sync(text)
    assert result.intent(0.45) == expected, result.intents[:3]


def test_gibberish_gets_no_intent(embedded: EmbeddedNlu) -> None:
    for text in GIBBERISH:
        result = embedded.parse_sync(text)
        assert result.intent(0.45) is None, (text, result.top)


def test_out_of_scope_questions_are_rejected(embedded: EmbeddedNlu, test_set: Any) -> None:
    """Held-out off-topic questions end as out_of_scope or below the threshold, never a topic."""
    off_topic = [e.text for e in test_set.examples if e.intent == "out_of_scope"]
    off_topic += ["明天西宁冷不冷", "帮我订个外卖", "医保卡余额怎么查", "养老金能涨到多少"]
    for text in off_topic:
        result = embedded.parse_sync(text)
        assert result.intent(0.45) in (None, "out_of_scope"), (text, result.top)


def test_rules_come_first_and_ranking_is_sorted(embedded: EmbeddedNlu) -> None:
    assert embedded.parse_sync("转人工").top == match_command("转人工")
    ranking = embedded.parse_sync("刷脸不过").intents
    assert len(ranking) == 5
    assert [s.confidence for s in ranking] == sorted((s.confidence for s in ranking), reverse=True)
    assert 0.0 <= ranking[-1].confidence <= ranking[0].confidence <= 1.0


TURN_TEXTS = ["你好", "需要带什么材料", "1", "刷脸老是不过咋整", "主菜单", "3", "要不要带户口本", "谢谢",
              "我妈妈在外地怎么认证", "身份证号码632123195001011234", "转人工", "替我爸认证，电话13909712345",
              "去年3月5号认证的", "啊啊啊啊", "。。。", "帮我妈和我爸认证"]


async def test_understand_applies_the_rules_once_with_the_same_result(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """One command check and one entity extraction per message; the result is what the
    backend gives by itself (commands as rules, its ranking, the rule entities)."""
    assert isinstance(services.nlu, EmbeddedNlu)
    calls: Counter[str] = Counter()

    def counted(name: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return function(*args, **kwargs)
        return wrapper

    for text in TURN_TEXTS:
        alone = services.nlu.parse_sync(text)
        calls.clear()
        with monkeypatch.context() as patch:
            patch.setattr(bot_services, "match_command", counted("command", match_command))
            patch.setattr(embedded_module, "match_command", counted("command", match_command))
            patch.setattr(entities, "extract", counted("entities", entities.extract))
            result = await services.understand(text)
        assert calls == {"command": 1, "entities": 1}, text
        assert result.intents == alone.intents, text
        assert result.entities == alone.entities, text
        assert result.backend == ("rules" if match_command(text) else "embedded"), text


async def test_understand_adds_rule_entities_the_backend_did_not_find(services: Services) -> None:
    class OwnEntities:
        name = "fake"

        async def parse(self, text: str, *, rules_applied: bool = False) -> ParseResult:
            assert rules_applied
            return ParseResult(text, [IntentScore("family_certification", 0.9)],
                               [Entity("relationship", "母亲", 2, 3)], self.name)

        async def start(self) -> None:
            return None

        async def close(self) -> None:
            return None

    fake = dataclasses.replace(services, nlu=OwnEntities())
    result = await fake.understand("替我妈认证，电话13909712345")
    assert [(e.type, e.value) for e in result.entities] == [("relationship", "母亲"), ("phone", "13909712345")]
    assert result.entities[0].start == 2 and result.backend == "fake"


def test_a_repeated_text_is_scored_once_with_the_same_ranking(
        embedded: EmbeddedNlu, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    scored: list[str] = []
    scores = embedded.scores

    def counted(cleaned: str) -> np.ndarray:
        scored.append(cleaned)
        return scores(cleaned)

    monkeypatch.setattr(embedded, "scores", counted)
    text = "我妈妈的身份证丢了，刷脸老是不过咋整"
    first, again = embedded.parse_sync(text), embedded.parse_sync(text)
    assert len(scored) == 1 and again.intents == first.intents and again.intents is not first.intents
    probabilities = scores(scored[0])
    order = np.argsort(probabilities)[::-1][: embedded.top_k]
    assert first.intents == [IntentScore(embedded.labels[i], float(probabilities[i])) for i in order]


def test_fast_features_equal_sklearn_and_scores_match(embedded: EmbeddedNlu) -> None:
    import numpy as np

    assert embedded.model is not None
    for text in ["刷脸老是不过咋整", "养老金认证认证咋办", "app打不开", "帮我妈查查认证"]:
        cleaned = embedded.normaliser(text) if embedded.normaliser else text
        reference = embedded._features(cleaned).toarray()[0]
        indices, values = embedded.fast_features(cleaned)
        fast = np.zeros_like(reference)
        fast[indices] = values
        assert np.allclose(fast, reference)
        margins = embedded.model.decision_function(embedded._features(cleaned))[0]
        assert embedded.labels[int(np.argmax(embedded.scores(cleaned)))] == embedded.labels[int(np.argmax(margins))]


def test_synonyms_normalise_wording(embedded: EmbeddedNlu) -> None:
    assert embedded.normaliser is not None
    assert embedded.normaliser("退休工资年审咋办？") == "养老金认证咋办"
    assert embedded.normaliser("青海人社APP") == "青海人社通"


async def test_embedded_parse_returns_entities(embedded: EmbeddedNlu) -> None:
    result = await embedded.parse("帮我妈查查630102195403121236认证了没")
    assert result.backend == "embedded"
    assert result.entity("relationship") is not None and result.entity("relationship").value == "母亲"
    assert result.entity("id_number") is not None


# ---------------------------------------------------------------- rasa backend


def test_build_nlu_follows_the_config(tmp_path: Path, clean_backends: Any) -> None:
    assert build_nlu(make_settings(tmp_path, clean_backends)).name == "embedded"
    rasa = build_nlu(make_settings(tmp_path, clean_backends, **{"nlu.backend": "rasa",
                                                               "nlu.rasa_url": "http://127.0.0.1:1/"}))
    assert isinstance(rasa, RasaNlu)
    assert rasa.url == "http://127.0.0.1:1"


def test_rasa_json_is_mapped() -> None:
    nlu = RasaNlu("http://127.0.0.1:5005")
    body = {"intent": {"name": "status_query", "confidence": 0.9},
            "intent_ranking": [{"name": "status_query", "confidence": 0.9},
                               {"name": "cert_failed", "confidence": 0.05}],
            "entities": [{"entity": "id_number", "value": "630102195403121230", "start": 2, "end": 20,
                          "extractor": "RegexEntityExtractor"},
                         {"entity": "relationship", "value": "母亲", "start": 0, "end": 1}]}
    result = nlu.to_result("x", body)
    assert [(s.name, s.confidence) for s in result.intents] == [("status_query", 0.9), ("cert_failed", 0.05)]
    assert [(e.type, e.value) for e in result.entities] == [("id_number_invalid", "630102195403121230"),
                                                           ("relationship", "母亲")]
    fallback = {"intent": {"name": "nlu_fallback", "confidence": 0.3},
                "intent_ranking": [{"name": "nlu_fallback", "confidence": 0.3},
                                   {"name": "greet", "confidence": 0.2}], "entities": []}
    assert nlu.to_result("x", fallback).intents == []


async def test_rasa_unreachable_is_a_bot_error() -> None:
    nlu = RasaNlu(f"http://127.0.0.1:{rasa_model.free_port()}", timeout_s=1.0)
    await nlu.start()
    try:
        assert (await nlu.parse("重新开始")).top is not None  # rules need no server
        with pytest.raises(RasaUnavailableError):
            await nlu.parse("认证失败了")
    finally:
        await nlu.close()
    assert nlu.session is None


def test_rasa_domain_lists_intents_and_entities(train: Any) -> None:
    domain = rasa_model.domain_for(train)
    assert domain["intents"] == sorted(INTENTS)
    assert set(domain["entities"]) >= {"id_number", "phone", "relationship", "region", "date"}  # type: ignore[arg-type]


async def _chat_through_app(settings: Any, texts: list[str]) -> list[str]:
    """Run messages through a whole application (its cleanup_ctx) and return the answers."""
    from bot.app import create_app
    from bot.keys import SERVICES

    from .conftest import TestBot

    app = create_app(settings, features=[])
    contexts = [ctx(app) for ctx in app.cleanup_ctx]
    for ctx in contexts:
        await ctx.__anext__()
    try:
        services = app[SERVICES]
        assert services.nlu.name == "rasa"
        bot = TestBot(services)
        answers = []
        for text in texts:
            await bot.say(text)
            answers.append(bot.text)
        return answers
    finally:
        for ctx in reversed(contexts):
            with contextlib.suppress(StopAsyncIteration):
                await ctx.__anext__()


@pytest.mark.slow
async def test_rasa_server_trained_from_nlu_yml(tmp_path: Path, clean_backends: Any) -> None:
    """A real Rasa 3.6 server, trained from nlu.yml (cached by hash), through RasaNlu and the app."""
    try:
        rasa_model.rasa_executable()
    except rasa_model.RasaUnavailable as exc:
        pytest.skip(f"no Rasa venv: {exc} (make rasa needs Python 3.10)")
    import asyncio

    model = await asyncio.to_thread(rasa_model.train)
    server = rasa_model.RasaServer(model)
    await server.start()
    nlu = RasaNlu(server.url, timeout_s=30.0)
    await nlu.start()
    try:
        failed = await nlu.parse("刷脸老是不过咋整")
        assert failed.backend == "rasa"
        assert failed.top is not None and failed.top.name == "cert_failed", failed.intents[:3]
        abroad = await nlu.parse("人在澳洲养老金认证咋办")
        assert abroad.top is not None and abroad.top.name == "method_abroad", abroad.intents[:3]
        family = await nlu.parse("替我妈认证")
        assert family.top is not None and family.top.name == "family_certification"
        assert [(e.type, e.value) for e in family.entities] == [("relationship", "母亲")]
        status = await nlu.parse("帮我查查630102195403121230认证了没")
        assert ("id_number_invalid", "630102195403121230") in [(e.type, e.value) for e in status.entities]
        region = await nlu.parse("海西州哪里能现场认证")
        assert ("region", "海西") in [(e.type, e.value) for e in region.entities]
        assert (await nlu.parse("转人工")).top == match_command("转人工")
        for text in GIBBERISH:
            assert (await nlu.parse(text)).intents == [], text
        settings = make_settings(tmp_path, clean_backends, **{
            "nlu.backend": "rasa", "nlu.rasa_url": server.url, "nlu.rasa_timeout_s": 30.0})
        answers = await _chat_through_app(settings, ["人在澳洲养老金认证咋办", "啊啊啊啊"])
        assert "中国领事" in answers[0]
        assert "没太明白" in answers[1] or "没听明白" in answers[1]  # in or out of the walkthrough
    finally:
        await nlu.close()
        server.stop()


def test_two_trainings_give_the_same_model() -> None:
    """Every server process trains its own copy; they must answer alike behind a balancer."""
    first, second = EmbeddedNlu(), EmbeddedNlu()
    first.train()
    second.train()
    for text in ("刷脸老是不过咋整", "我妈在外地怎么认证", "要带户口本吗", "随便问问"):
        assert first.parse_sync(text).intents == second.parse_sync(text).intents, text

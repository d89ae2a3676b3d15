"""The staff console's render functions, without a server: plain data in, HTML out."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bot.core.storage.models import Case, CaseMessage, CertificationAttempt
from bot.staff import render
from bot.staff.auth import StaffSession
from bot.staff.desk import CaseContext

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc)
AGENT = StaffSession(token="t", staff_id=7, username="wang<b>", role="agent", csrf='c"sr&f')


def case(**fields: object) -> Case:
    values: dict[str, object] = {"id": 12, "conversation_key": "web:u1", "channel": "wechat",
                                 "user_id": "u1", "reason": "face_failed", "status": "waiting",
                                 "created_at": NOW, "transcript": [], "proxy": {}}
    values.update(fields)
    return Case(**values)


def test_user_text_is_escaped_in_messages_and_transcript() -> None:
    attack = '<script>alert("x")</script> & 照片'
    message = CaseMessage(id=1, case_id=12, author="user", text=attack, created_at=NOW)
    html = render.messages(12, [message], {}, timezone.utc)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; 照片" in html
    transcript = render.transcript([{"role": "user", "text": attack, "at": NOW.timestamp()}], timezone.utc)
    assert "<script>" not in transcript and "&lt;script&gt;" in transcript
    assert "2026-03-01 09:30" in transcript


def test_photo_marks_become_images_only_for_well_formed_names() -> None:
    name = "0123456789abcdef0123456789abcdef.img"
    html = render.messages(12, [CaseMessage(id=1, case_id=12, author="user", created_at=NOW,
                                            text=f"[照片 {name}] [照片 ../../etc/passwd]")], {}, None)
    assert f'src="/staff/cases/12/files/{name}"' in html
    assert html.count("<img") == 1 and "[照片 ../../etc/passwd]" in html


def test_staff_names_and_tokens_are_escaped_in_forms_and_layout() -> None:
    page = render.layout("队列 <1>", "<p>body</p>", AGENT)
    assert "wang&lt;b&gt;（办事员）" in page and "wang<b>" not in page
    assert 'value="c&quot;sr&amp;f"' in page and "<title>队列 &lt;1&gt; · 人工服务台</title>" in page
    button = render.post_button(AGENT, "/staff/cases/1/claim?x=<y>", "认领<", button_id="claim")
    assert 'action="/staff/cases/1/claim?x=&lt;y&gt;"' in button and ">认领&lt;</button>" in button


def test_status_labels_and_unknown_status() -> None:
    rows = render.case_rows([case(status="waiting"), case(id=13, status="signoff", assigned_to=7)],
                            "空", {7: "li"}, now=NOW.timestamp() + 125)
    assert '<td class="status-waiting">排队中</td>' in rows
    assert '<td class="status-signoff">待主管复核</td>' in rows
    assert "<td>2分钟</td>" in rows and "<td>li</td>" in rows
    odd = render.case_rows([case(status="<odd>")], "空")
    assert "&lt;odd&gt;" in odd and "<odd>" not in odd
    assert render.case_rows([], "现在没有排队的案件。") == "<p>现在没有排队的案件。</p>"


def test_waited_in_words() -> None:
    assert render.waited(NOW, NOW.timestamp() + 30) == "不到1分钟"
    assert render.waited(NOW, NOW.timestamp() + 3 * 3600 + 5 * 60) == "3小时5分钟"


def test_distance_bar_marks_threshold_and_colours_by_side() -> None:
    near = render.distance_bar(0.2, 0.4)  # scale 1.0: 20 %, mark at 40 %
    assert 'class="fill ok" style="width:20%"' in near and 'style="left:40%"' in near
    assert "距离 0.200，阈值 0.400" in near
    far = render.distance_bar(5.0, 0.4)  # capped at the end of the bar
    assert 'class="fill bad" style="width:100%"' in far
    assert render.distance_bar(None, 0.4) == render.distance_bar(0.3, None) == '<p class="meta">没有比对距离</p>'


def test_evidence_shows_verdicts_and_hides_expired_photos() -> None:
    kept = CertificationAttempt(id=3, channel="web", chat_user="u1", proxy=True, relationship="女儿<script>",
                                quality_codes=["too_dark"], distance=0.9, threshold=0.4, decision="failed",
                                photo_path="/p/3.jpg", photo_expires_at=NOW + timedelta(days=1), created_at=NOW)
    expired = CertificationAttempt(id=4, channel="telegram", chat_user="u1", proxy=False, quality_codes=[],
                                   distance=0.1, threshold=0.4, decision="passed", photo_path="/p/4.jpg",
                                   photo_expires_at=NOW - timedelta(days=1), created_at=NOW)
    ctx = CaseContext(case=case(), messages=[], pensioner=None, attempts=[kept, expired], proxies=[],
                      assignee=None, concerns=["没有一次刷脸通过。"])
    html = render.evidence(ctx, timezone.utc, now=NOW)
    assert 'src="/staff/cases/12/photos/3"' in html and "/photos/4" not in html
    assert "照片已过保存期限" in html and "没有登记照片（未建模）" in html
    assert "和登记照片很不像" in html and "和登记照片很像（通过）" in html
    assert "代办（女儿&lt;script&gt;）" in html and "质量问题：太暗" in html
    assert "审核通过需要主管复核" in html


def test_decision_box_depends_on_status_and_role() -> None:
    claimed = CaseContext(case=case(status="claimed", assigned_to=7, pensioner_id=None), messages=[],
                          pensioner=None, attempts=[], proxies=[], assignee="wang")
    box = render.decision_box(AGENT, claimed)
    assert 'action="/staff/cases/12/resolve"' in box and "不能审核通过" in box
    assert 'name="csrf" value="c&quot;sr&amp;f"' in box
    waiting = CaseContext(case=case(status="signoff", note="<i>ok</i>"), messages=[], pensioner=None,
                          attempts=[], proxies=[], assignee=None, requested_by="staff:zhao")
    assert "正在等待主管复核" in render.decision_box(AGENT, waiting)
    boss = StaffSession(token="t", staff_id=1, username="boss", role="supervisor", csrf="x")
    signoff = render.decision_box(boss, waiting)
    assert "申请人：zhao；理由：&lt;i&gt;ok&lt;/i&gt;" in signoff and "/staff/cases/12/signoff" in signoff

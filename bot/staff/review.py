"""What a manual review shows and checks: verdicts in words, concerns against an approval.

Pure functions over attempt rows, so the page, the API and the decision rules agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from bot.core.storage.models import CertificationAttempt, Pensioner

QUALITY_LABELS = {
    "not_an_image": "不是照片", "too_large": "文件太大", "no_face": "没有找到人脸",
    "multiple_faces": "画面里不止一个人", "face_too_small": "脸太小（离得太远）",
    "face_cut_off": "脸没有拍全", "not_frontal": "没有正对镜头（侧脸、歪头或抬头低头）",
    "too_dark": "太暗", "too_bright": "太亮、脸发白", "backlit": "逆光、脸在阴影里", "blurry": "模糊",
}
# Liveness evidence another part of the system may keep in an attempt's ``details``;
# unknown keys are still shown (generically), internal ones never.
DETAIL_LABELS = {
    "challenge": "要求的动作", "challenge_text": "要求的动作", "pose": "测得的姿态",
    "measured_pose": "测得的姿态", "yaw": "左右转头", "pitch": "抬头/低头", "roll": "歪头",
    "replay": "翻拍/回放迹象", "replay_signals": "翻拍/回放迹象", "liveness": "活体检测",
    "live": "是否活人", "passed": "是否通过", "score": "得分", "reason": "原因",
    "moire": "屏幕摩尔纹", "screen": "疑似屏幕翻拍", "exif": "照片信息", "seconds": "用时（秒）",
}
HIDDEN_DETAIL_WORDS = ("path", "hash", "file", "embedding", "token", "id_number", "request_id")


@dataclass(frozen=True)
class Verdict:
    """One attempt in words: ``tone`` is ok | warn | bad (the colour on the page)."""

    tone: str
    words: str


def quality_words(codes: Iterable[Any]) -> str:
    return "、".join(QUALITY_LABELS.get(str(c), str(c)) for c in codes)


def over_threshold(attempt: CertificationAttempt) -> bool:
    return (attempt.distance is not None and attempt.threshold is not None
            and attempt.distance > attempt.threshold)


def verdict(attempt: CertificationAttempt) -> Verdict:
    """和登记照片很像 / 不像, quality problems in words."""
    codes = list(attempt.quality_codes or [])
    if attempt.decision == "passed" and not over_threshold(attempt):
        return Verdict("ok", "和登记照片很像（通过）")
    if attempt.decision == "flagged":
        return Verdict("warn", "和登记照片很像，但这张照片以前用过（重复使用或翻拍），没有算通过")
    if attempt.decision == "rejected" or (attempt.distance is None and codes):
        return Verdict("bad", "照片不合格，没有比对：" + (quality_words(codes) or "看不清"))
    if over_threshold(attempt):
        text = "和登记照片不像"
        if attempt.distance is not None and attempt.threshold and attempt.distance > 2 * attempt.threshold:
            text = "和登记照片很不像，可能不是同一个人"
        return Verdict("bad", text + (f"（另外：{quality_words(codes)}）" if codes else ""))
    if attempt.decision == "not_enrolled":
        return Verdict("bad", "没有登记照片，无法比对")
    return Verdict("bad", "没有通过")


def bar_percent(distance: float, threshold: float) -> tuple[int, int]:
    """(distance, threshold) as percentages of a scale of 2.5 × threshold (capped)."""
    scale = max(threshold * 2.5, 1e-9)
    return min(100, round(distance / scale * 100)), min(100, round(threshold / scale * 100))


def detail_items(details: Any) -> list[tuple[str, str]]:
    """(label, value) pairs of an attempt's extra evidence, without internal fields."""
    if not isinstance(details, Mapping):
        return []
    out = []
    for key, value in details.items():
        name = str(key)
        if any(word in name.lower() for word in HIDDEN_DETAIL_WORDS):
            continue
        out.append((DETAIL_LABELS.get(name, name), _value_words(value)))
    return out


def _value_words(value: Any) -> str:
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, Mapping):
        return "，".join(f"{DETAIL_LABELS.get(str(k), str(k))} {_value_words(v)}" for k, v in value.items()
                        if not any(w in str(k).lower() for w in HIDDEN_DETAIL_WORDS))
    if isinstance(value, (list, tuple)):
        return "、".join(_value_words(v) for v in value) or "无"
    if value is None:
        return "—"
    return QUALITY_LABELS.get(str(value), str(value))[:200]


def approval_concerns(attempts: list[CertificationAttempt], enrolled: bool) -> list[str]:
    """Why approving would go against the face evidence (empty: the evidence supports it).

    Against the evidence: no passing selfie, or any distance over the threshold."""
    concerns = []
    if not enrolled:
        concerns.append("这位退休人员没有建模（没有登记照片），刷脸结果无从比对。")
    if not any(a.decision == "passed" and not over_threshold(a) for a in attempts):
        concerns.append("没有一次刷脸通过。" if attempts else "没有任何刷脸记录。")
    far = [a for a in attempts if over_threshold(a)]
    if far:
        worst = max(far, key=lambda a: a.distance or 0.0)
        concerns.append(f"有 {len(far)} 张自拍和登记照片差别超过阈值（最大距离 {worst.distance:.3f}，"
                        f"阈值 {worst.threshold:.3f}，越小越像）。")
    return concerns


def pensioner_state(p: Pensioner, today: date) -> tuple[str, str]:
    """(tone, words) of the pensioner's record: overdue shows as overdue."""
    if p.status == "suspended":
        return "bad", "暂停发放"
    if p.next_due is None:
        return "warn", "还没有认证记录（从未认证）"
    if p.next_due < today:
        return "bad", f"已逾期未认证（{(today - p.next_due).days} 天）"
    return "ok", "正常（在认证有效期内）"

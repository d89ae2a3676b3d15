"""What people are told while selfies queue up (back-pressure), in plain words.

At the peak hour a selfie may wait behind many others. Instead of "please wait a few
seconds" and a long silence, the person hears how many are ahead and about how long it
takes, and that they need not send the photo again. When the wait would be unreasonable
(``face.max_queue_wait_s``) the photo is not queued at all: they are asked to come back
later, and it does not count as an attempt.
"""

from __future__ import annotations

import math
import time
from typing import Any

from bot.core.i18n import tr
from bot.core.services import FaceBacklog

VERIFYING = tr("收到照片，正在核验，请稍等几秒，结果出来我马上告诉您。")
ETA, AHEAD, WAIT = "face_eta", "face_ahead", "face_wait"


def wait_words(seconds: float) -> str:
    """A wait as people say it: 大约30秒, 大约3分钟, 1个多小时."""
    if seconds < 60:
        return tr("大约{seconds}秒", seconds=max(10, math.ceil(seconds / 10) * 10))
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return tr("大约{minutes}分钟", minutes=minutes)
    return tr("{hours}个多小时", hours=minutes // 60)


def too_long(backlog: FaceBacklog, max_wait_s: float) -> str | None:
    """The refusal when the expected wait is over ``max_wait_s`` (0: never refuse)."""
    if max_wait_s and backlog.wait_s is not None and backlog.wait_s > max_wait_s:
        return tr("现在来认证的人太多了，排队核验估计要等{wait}。这张照片先不核验，也不算次数。"
                  "请过一会儿再发一张照片过来（比如晚饭后或明天上午，人会少很多）。",
                  wait=wait_words(backlog.wait_s))
    return None


def note(slots: dict[str, Any], backlog: FaceBacklog, notice_s: float) -> None:
    """Keep the expected verdict time in the dialog's slots when it is worth telling."""
    for key in (ETA, AHEAD, WAIT):
        slots.pop(key, None)
    if backlog.wait_s is not None and backlog.wait_s >= notice_s:
        slots.update({ETA: time.time() + backlog.wait_s, AHEAD: backlog.waiting,
                      WAIT: backlog.wait_s})


def verifying_text(slots: dict[str, Any], notice_s: float, just_sent: bool = True) -> str:
    """The "checking" message: the place in the queue and the wait when it is long
    (``just_sent``: said right after the photo, else to a message sent while waiting)."""
    eta = slots.get(ETA)
    if not eta:
        return VERIFYING
    left = float(eta) - time.time()
    if left < min(notice_s, 10):
        return VERIFYING
    wait = float(slots.get(WAIT) or left)
    ahead = math.ceil(int(slots.get(AHEAD) or 0) * min(1.0, left / wait))
    if just_sent:
        return tr("收到照片了。现在来认证的人比较多，正在排队核验：您前面大约还有{ahead}位，"
                  "估计要等{wait}。结果出来我会马上在这里告诉您，不用重新发照片，可以先去忙别的。",
                  ahead=ahead, wait=wait_words(left))
    return tr("还在排队核验，您前面大约还有{ahead}位，估计还要等{wait}。结果出来我马上告诉您，不用重新发照片。",
              ahead=ahead, wait=wait_words(left))

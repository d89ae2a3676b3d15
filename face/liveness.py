"""The pose challenge (活体动作): after a frontal selfie matched, a second photo in a random pose.

The worker chooses the pose (:func:`choose`), keeps what it needs from the first photo in
Redis for ``face.challenge_ttl_s`` (:func:`remember` / :func:`recall`: embedding, pose,
landmark shape, hash; never the photo) and judges the second photo with :func:`judge`:

- the pose asked is shown, measured against the first photo (a change of at least
  ``TURN_DEG`` of yaw for left/right, ``UP_DEG`` of pitch for up, a mouth opening of
  ``MOUTH_OPEN`` and ``MOUTH_GAIN`` more than before), within ``MAX_DEG`` overall;
- it is not the first photo again: the same file, a crop or a re-encode keeps the 68-point
  shape nearly unchanged (``SAME_SHAPE``; with a dHash within a few bits, 1.5 times that);
- it matches the template and the first photo (the grey zone applies to both).

Failing (pose not shown, the same photo, another face, expired) is one attempt; a distance
in the grey zone or a replay signal goes to a person. Thresholds: BENCHMARKS.md "Liveness".
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bot.core.i18n import tr
from bot.records.attempts import hamming

POSES = ("left", "right", "up", "mouth")
TURN_DEG = 15.0     # yaw change toward the side asked
UP_DEG = 8.0        # pitch change upward
MOUTH_OPEN = 0.3    # inner-lip gap / mouth width
MOUTH_GAIN = 0.15   # ... and this much more than in the first photo
MAX_DEG = 60.0      # beyond this the landmarks are guesses
SAME_SHAPE = 0.045  # 68-point shape residual (Procrustes); re-sent copies measured <= 0.038
SAME_HASH_BITS = 6  # as bot.records.attempts.REUSE_MAX_BITS

# What the pensioner is asked, in plain words, and what to do if it is hard.
ASK = {
    # {whose}: "您自己", or "老人自己" when a family member is told what the pensioner does.
    "left": (tr("请把头慢慢向{whose}的左边转一点（像看左边肩膀那样，转到一半就够了），"
             "保持这个姿势，让别人帮您拍一张，或者自己拍一张发过来。", whose=tr("您自己"))),
    "right": (tr("请把头慢慢向{whose}的右边转一点（像看右边肩膀那样，转到一半就够了），"
              "保持这个姿势，让别人帮您拍一张，或者自己拍一张发过来。", whose=tr("您自己"))),
    "up": tr("请把下巴稍微抬起来，眼睛往上看（像看天花板那样），保持这个姿势拍一张发过来。"),
    "mouth": tr("请把嘴巴张开（像说“啊”那样），保持张嘴拍一张发过来。"),
}
HARD = (tr("脸还要在画面里，光线要亮。做不到这个动作的话，回复“换一个动作”；"
        "实在不方便，可以回复“转人工”，请工作人员帮您。"))
WHY = {
    "pose": tr("照片里看不出您按要求做了动作"),
    "same_photo": tr("这张和刚才那张是同一张照片，要按要求做动作后重新拍一张"),
    "mismatch": tr("这张照片里的人和刚才的不像"),
    "expired": tr("动作照片超过了时间"),
    "no_face": tr("照片里没有找到清楚的脸"),
}


def choose(poses: list[str] | tuple[str, ...] = POSES, avoid: str | None = None) -> str:
    """A pose at random (a cryptographic choice: it must not be guessable)."""
    pool = [p for p in poses if p != avoid] or list(poses)
    return random.SystemRandom().choice(pool)


def shape_of(points: NDArray[np.float64]) -> list[float]:
    """The 68 points centred and scaled to unit size (what is kept of the first photo)."""
    centred = points - points.mean(axis=0)
    scale = float(np.linalg.norm(centred)) or 1.0
    return [round(float(v), 5) for v in (centred / scale).flatten()]


def _mirror_order() -> list[int]:
    """dlib's 68 points of a mirrored face, in the original's numbering."""
    pairs = [(i, 16 - i) for i in range(17)] + [(17 + i, 26 - i) for i in range(10)]
    pairs += [(27, 27), (28, 28), (29, 29), (30, 30), (31, 35), (32, 34), (33, 33), (34, 32),
              (35, 31), (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46), (42, 39),
              (43, 38), (44, 37), (45, 36), (46, 41), (47, 40)]
    pairs += [(48 + i, 54 - i) for i in range(7)] + [(55, 59), (56, 58), (57, 57), (58, 56),
                                                     (59, 55), (60, 64), (61, 63), (62, 62),
                                                     (63, 61), (64, 60), (65, 67), (66, 66),
                                                     (67, 65)]
    order = [0] * 68
    for a, b in pairs:
        order[a] = b
    return order


_MIRROR = _mirror_order()


def _procrustes(pa: NDArray[np.float64], pb: NDArray[np.float64]) -> float:
    u, _, vt = np.linalg.svd(pb.T @ pa)
    return float(np.linalg.norm(pa - pb @ (u @ vt)))


def shape_residual(a: list[float], b: list[float]) -> float:
    """How different two normalised shapes are after the best rotation (Procrustes),
    also against the mirrored second shape (a flipped copy of the first photo)."""
    pa = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    pb = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    flipped = pb[_MIRROR] * np.array([-1.0, 1.0])
    return min(_procrustes(pa, pb), _procrustes(pa, flipped))


@dataclass
class First:
    """What the challenge photo is compared with (kept in Redis, not in the database)."""

    embedding: list[float]
    pose: dict[str, float]
    shape: list[float]
    photo_hash: str | None
    challenge: str
    attempt_id: int | None = None

    def dumps(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def loads(cls, raw: str | bytes) -> First:
        return cls(**json.loads(raw))


def key(request_id: str) -> str:
    return f"face:challenge:{request_id}"


async def remember(redis: Any, request_id: str, first: First, ttl_s: int) -> None:
    await redis.set(key(request_id), first.dumps(), ex=ttl_s)


async def recall(redis: Any, request_id: str | None) -> First | None:
    if not request_id:
        return None
    raw = await redis.get(key(str(request_id)))
    return First.loads(raw) if raw else None


@dataclass
class Judgement:
    """The challenge photo's outcome: ``reason`` is None when the pose was shown."""

    shown: bool
    reason: str | None
    same_photo: bool
    measured: dict[str, float] = field(default_factory=dict)


def pose_shown(challenge: str, pose: dict[str, float], before: dict[str, float]) -> bool:
    """Whether ``pose`` shows ``challenge`` compared with the frontal photo's pose."""
    if max(abs(pose["yaw"]), abs(pose["pitch"])) > MAX_DEG:
        return False
    d_yaw, d_pitch = pose["yaw"] - before["yaw"], pose["pitch"] - before["pitch"]
    if challenge == "left":
        return d_yaw >= TURN_DEG
    if challenge == "right":
        return d_yaw <= -TURN_DEG
    if challenge == "up":
        return d_pitch >= UP_DEG and abs(d_yaw) < 30
    if challenge == "mouth":
        return pose["mouth"] >= MOUTH_OPEN and pose["mouth"] - before["mouth"] >= MOUTH_GAIN
    return False


def judge(first: First, pose: dict[str, float] | None, shape: list[float] | None,
          photo_hash: str | None) -> Judgement:
    """Pose shown and not the first photo again (distances are judged by the caller)."""
    if pose is None or shape is None:
        return Judgement(False, "no_face", False)
    residual = shape_residual(first.shape, shape)
    bits = (hamming(first.photo_hash, photo_hash)
            if first.photo_hash and photo_hash and len(first.photo_hash) == len(photo_hash) else 64)
    # The landmarks decide: a second photo taken seconds later in the same room keeps the
    # whole-picture dHash close, but a real pose moves the 68 points. The hash only helps
    # when the shape is close too.
    same = residual < SAME_SHAPE or (bits <= SAME_HASH_BITS and residual < 1.5 * SAME_SHAPE)
    shown = pose_shown(first.challenge, pose, first.pose)
    if shown and first.challenge in ("up", "mouth"):
        # A copy (cropped, re-encoded or mirrored) cannot raise the pitch or open the mouth
        # compared with the first photo; an open mouth moves few points, so the shape may
        # stay close for a real second photo.
        same = False
    measured = {"shape_residual": round(residual, 4), "hash_bits": bits,
                "yaw_change": round(pose["yaw"] - first.pose["yaw"], 1),
                "pitch_change": round(pose["pitch"] - first.pose["pitch"], 1)}
    if same:
        return Judgement(False, "same_photo", True, measured)
    if not shown:
        return Judgement(False, "pose", False, measured)
    return Judgement(True, None, False, measured)
